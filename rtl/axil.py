"""AXI4-Lite slave that turns bus transactions into one-cycle register strobes.

The register file behind it stays a plain synchronous design: a write is one `wr_stb` cycle with
address, data and byte strobes; a read is one `rd_stb` cycle and the data must be presented on
`rd_data` in the following cycle (one cycle of latency, so block-RAM read ports fit behind it).
AW and W may arrive in either order or together; every address answers OKAY, so nothing hangs.
"""
from types import SimpleNamespace

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


def hold_write_request(m: Module, port, addr_width: int) -> SimpleNamespace:
    """Take AW and W in either order or together and hold them until the caller has used both.

    `port` carries the s_axil_* signals. The caller clears `aw_full` and `w_full` when it consumes
    the write and raises BVALID; BVALID drops here on its handshake.
    """
    held = SimpleNamespace(aw_full=Signal(name="aw_full"), w_full=Signal(name="w_full"),
                           addr=Signal(addr_width, name="aw_addr"), data=Signal(32, name="w_data"),
                           strb=Signal(4, name="w_strb"))  # fmt: skip
    m.d.comb += [port.s_axil_awready.eq(~held.aw_full), port.s_axil_wready.eq(~held.w_full)]
    with m.If(port.s_axil_awvalid & ~held.aw_full):
        m.d.sync += [held.aw_full.eq(1), held.addr.eq(port.s_axil_awaddr)]
    with m.If(port.s_axil_wvalid & ~held.w_full):
        m.d.sync += [held.w_full.eq(1), held.data.eq(port.s_axil_wdata), held.strb.eq(port.s_axil_wstrb)]
    with m.If(port.s_axil_bvalid & port.s_axil_bready):
        m.d.sync += port.s_axil_bvalid.eq(0)
    return held


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

        # Write: hold AW and W until both are present, then strobe once.
        held = hold_write_request(m, self, self.addr_width)
        m.d.comb += [
            self.s_axil_bresp.eq(0),
            self.wr_addr.eq(held.addr),
            self.wr_data.eq(held.data),
            self.wr_strb.eq(held.strb),
        ]
        with m.If(held.aw_full & held.w_full & ~self.s_axil_bvalid):
            m.d.comb += self.wr_stb.eq(1)
            m.d.sync += [held.aw_full.eq(0), held.w_full.eq(0), self.s_axil_bvalid.eq(1)]

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
