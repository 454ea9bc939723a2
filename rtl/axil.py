"""AXI4-Lite slave that turns bus transactions into one-cycle register strobes.

The register file behind it stays a plain synchronous design: a write is one `wr_stb` cycle with
address, data and byte strobes; a read is one `rd_stb` cycle and the data must be presented on
`rd_data` in the following cycle (one cycle of latency, so block-RAM read ports fit behind it).
AW and W may arrive in either order or together; every address answers OKAY, so nothing hangs.
"""
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def axil_slave_members(addr_width: int) -> dict:
    """The AXI4-Lite slave ports with the Xilinx names of DESIGN §4."""
    return {
        "s_axil_awaddr": In(addr_width),
        "s_axil_awvalid": In(1),
        "s_axil_awready": Out(1),
        "s_axil_wdata": In(32),
        "s_axil_wstrb": In(4),
        "s_axil_wvalid": In(1),
        "s_axil_wready": Out(1),
        "s_axil_bresp": Out(2),
        "s_axil_bvalid": Out(1),
        "s_axil_bready": In(1),
        "s_axil_araddr": In(addr_width),
        "s_axil_arvalid": In(1),
        "s_axil_arready": Out(1),
        "s_axil_rdata": Out(32),
        "s_axil_rresp": Out(2),
        "s_axil_rvalid": Out(1),
        "s_axil_rready": In(1),
    }


class AxiLiteRegisterBus(wiring.Component):
    """AXI4-Lite slave front end; see the module docstring for the register-side protocol."""

    def __init__(self, addr_width: int):
        if not isinstance(addr_width, int) or not 2 < addr_width <= 32:
            raise ValueError(f"addr_width must be an integer in 3..32, got {addr_width!r}")
        self.addr_width = addr_width
        super().__init__(
            {
                **axil_slave_members(addr_width),
                "wr_stb": Out(1),
                "wr_addr": Out(addr_width),
                "wr_data": Out(32),
                "wr_strb": Out(4),
                "rd_stb": Out(1),
                "rd_addr": Out(addr_width),
                "rd_data": In(32),
            }
        )

    def elaborate(self, platform):
        m = Module()

        # Write: hold AW and W independently until both are present, then strobe once.
        aw_full = Signal()
        w_full = Signal()
        aw_addr = Signal(self.addr_width)
        w_data = Signal(32)
        w_strb = Signal(4)
        m.d.comb += [
            self.s_axil_awready.eq(~aw_full),
            self.s_axil_wready.eq(~w_full),
            self.s_axil_bresp.eq(0),
            self.wr_addr.eq(aw_addr),
            self.wr_data.eq(w_data),
            self.wr_strb.eq(w_strb),
        ]
        with m.If(self.s_axil_awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(self.s_axil_awaddr)]
        with m.If(self.s_axil_wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(self.s_axil_wdata), w_strb.eq(self.s_axil_wstrb)]
        with m.If(self.s_axil_bvalid & self.s_axil_bready):
            m.d.sync += self.s_axil_bvalid.eq(0)
        with m.If(aw_full & w_full & ~self.s_axil_bvalid):
            m.d.comb += self.wr_stb.eq(1)
            m.d.sync += [aw_full.eq(0), w_full.eq(0), self.s_axil_bvalid.eq(1)]

        # Read: strobe on the AR handshake, capture the data one cycle later, hold it until taken.
        capture = Signal()
        ar_take = Signal()
        m.d.comb += [
            self.s_axil_arready.eq(~capture & ~self.s_axil_rvalid),
            ar_take.eq(self.s_axil_arvalid & self.s_axil_arready),
            self.rd_stb.eq(ar_take),
            self.rd_addr.eq(self.s_axil_araddr),
            self.s_axil_rresp.eq(0),
        ]
        m.d.sync += capture.eq(ar_take)
        with m.If(capture):
            m.d.sync += [self.s_axil_rdata.eq(self.rd_data), self.s_axil_rvalid.eq(1)]
        with m.Elif(self.s_axil_rvalid & self.s_axil_rready):
            m.d.sync += self.s_axil_rvalid.eq(0)
        return m
