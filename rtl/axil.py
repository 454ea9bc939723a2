"""AXI4-Lite building blocks: an instance's register front end, and the top's fan-out bridge.

`AxiLiteRegisterBus` turns bus transactions into one-cycle register strobes, so the register file
behind it stays a plain synchronous design: a write is one `wr_stb` cycle with address, data and
byte strobes; a read is one `rd_stb` cycle, and the data must be presented on `rd_data` in the
following cycle (one cycle of latency, so block-RAM read ports fit behind it).

`AxiLiteBridge` is velcro_top's address decoder: one subordinate port in, one manager port per
instance out, the instance selected by the address bits above the instance's own.

Both answer every address with OKAY, so nothing ever hangs the bus.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from rtl.interfaces import AxiLiteSignature


def _any(values):
    """OR of a sequence of Amaranth values (0 when empty)."""
    return reduce(operator.or_, values, 0)


class AxiLiteRegisterBus(wiring.Component):
    """AXI4-Lite subordinate front end with one-cycle register strobes (see the module docstring).

    Writes: AW and W may arrive in either order or together; each is held on its own until the
    other is there. The write strobes in the cycle the later of the two is handshaken (or, when
    both were already held, as soon as the B channel is free), and BVALID rises the cycle after
    (`WRITE_LATENCY`). AWREADY/WREADY depend only on the holding registers, so a manager that
    presents AW and W together and keeps BREADY high writes one word per cycle (`WRITE_INTERVAL`).

    Reads: one at a time; RVALID rises `READ_LATENCY` cycles after the AR handshake.
    BRESP and RRESP are always OKAY.
    """

    WRITE_LATENCY = spec.AXIL_WRITE_LATENCY
    WRITE_INTERVAL = spec.AXIL_WRITE_INTERVAL
    READ_LATENCY = spec.AXIL_READ_LATENCY

    def __init__(self, addr_width: int):
        self.addr_width = addr_width
        super().__init__(
            {
                "axil": In(AxiLiteSignature(addr_width)),
                "wr_stb": Out(1),
                "wr_addr": Out(addr_width),
                "wr_data": Out(spec.AXIL_DATA_WIDTH),
                "wr_strb": Out(spec.AXIL_DATA_WIDTH // 8),
                "rd_stb": Out(1),
                "rd_addr": Out(addr_width),
                "rd_data": In(spec.AXIL_DATA_WIDTH),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus = self.axil

        # ------------------------------------------------------------ write
        aw_full, w_full = Signal(), Signal()  # a request is held, waiting for its partner
        aw_addr, w_data, w_strb = Signal.like(bus.awaddr), Signal.like(bus.wdata), Signal.like(bus.wstrb)
        aw_here = aw_full | bus.awvalid
        w_here = w_full | bus.wvalid
        b_free = ~bus.bvalid | bus.bready
        m.d.comb += [
            bus.awready.eq(~aw_full),
            bus.wready.eq(~w_full),
            bus.bresp.eq(0),
            self.wr_stb.eq(aw_here & w_here & b_free),
            self.wr_addr.eq(Mux(aw_full, aw_addr, bus.awaddr)),
            self.wr_data.eq(Mux(w_full, w_data, bus.wdata)),
            self.wr_strb.eq(Mux(w_full, w_strb, bus.wstrb)),
        ]
        with m.If(self.wr_stb):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), bus.bvalid.eq(1)]
        with m.Else():
            with m.If(bus.awvalid & ~aw_full):
                m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
            with m.If(bus.wvalid & ~w_full):
                m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
            with m.If(bus.bvalid & bus.bready):
                m.d.sync += bus.bvalid.eq(0)

        # ------------------------------------------------------------ read
        # Strobe on the AR handshake, capture the data one cycle later, hold it until taken.
        capture = Signal()
        m.d.comb += [
            bus.arready.eq(~capture & ~bus.rvalid),
            self.rd_stb.eq(bus.arvalid & bus.arready),
            self.rd_addr.eq(bus.araddr),
            bus.rresp.eq(0),
        ]
        m.d.sync += capture.eq(self.rd_stb)
        with m.If(capture):
            m.d.sync += [bus.rdata.eq(self.rd_data), bus.rvalid.eq(1)]
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m


class AxiLiteBridge(wiring.Component):
    """One AXI4-Lite subordinate port fanned out to `targets` managers by the upper address bits.

    Address bits [target_addr_width + select_bits - 1 : target_addr_width] select target i, the
    bits below go to it. Selections without a target (`targets < 2**select_bits`) are holes: a
    write is answered OKAY and dropped, a read returns 0 with OKAY.

    Request side, one pipeline register per direction (`LATENCY` = 1 cycle): a write enters the
    register when AW and W are both valid (AWREADY and WREADY rise together), a read when AR is
    valid; the register empties into the selected target once the target has accepted it (AW and
    W may be accepted in different cycles; velcro_conv2d takes both at once) and refills in the
    same cycle, so a target that takes a write per cycle gets one per cycle.
    Only the register drives the targets, so the decode stays off the paths from the bus.
    AW and W enter together so that W, which carries no address, always knows its target.

    Response side, passed through: B and R come straight from the target that owns the oldest
    outstanding request (a multiplexer, no register). AXI4-Lite has no IDs, so responses must
    return in request order; the bridge guarantees it by sending a request to a different target
    only once every response of the previous target has been taken. A request therefore waits
    only for the target it addresses, or for the bus master to take the responses it is owed:
    the bridge never waits on a third party and cannot deadlock. Holes answer from a one-deep
    response register of their own.
    """

    LATENCY = spec.BRIDGE_LATENCY
    MAX_OUTSTANDING = 3  # per direction; one instance holds at most 2 writes and 1 read

    def __init__(self, targets: int, target_addr_width: int, select_bits: int):
        if not isinstance(targets, int) or isinstance(targets, bool) or not 1 <= targets <= 1 << select_bits:
            raise ValueError(f"targets must be an int in 1..{1 << select_bits}, got {targets!r}")
        self.n_targets, self.target_addr_width, self.select_bits = targets, target_addr_width, select_bits
        super().__init__(
            {
                "bus": In(AxiLiteSignature(target_addr_width + select_bits)),
                "targets": Out(AxiLiteSignature(target_addr_width)).array(targets),
            }
        )

    def elaborate(self, platform):
        m = Module()
        bus, targets, low = self.bus, self.targets, self.target_addr_width

        # ------------------------------------------------------------ writes
        w_valid = Signal()  # the request register holds a write
        w_addr, w_sel = Signal(low), Signal(self.select_bits)
        w_data, w_strb = Signal.like(bus.wdata), Signal.like(bus.wstrb)
        w_pending = Signal(range(self.MAX_OUTSTANDING + 1))  # issued, B not yet taken by the bus
        b_sel = Signal(self.select_bits)  # target that owes those B responses
        hole_bvalid = Signal()
        w_hole = w_sel >= self.n_targets
        w_go = w_valid & ((w_pending == 0) | ((b_sel == w_sel) & (w_pending != self.MAX_OUTSTANDING)))
        aw_sent, w_sent = Signal(), Signal()  # the target took AW (W) of the held write already
        aw_take = _any(t.awvalid & t.awready for t in targets)
        w_take = _any(t.wvalid & t.wready for t in targets)
        for i, t in enumerate(targets):
            hit = w_go & (w_sel == i)
            m.d.comb += [
                t.awaddr.eq(w_addr), t.wdata.eq(w_data), t.wstrb.eq(w_strb),
                t.awvalid.eq(hit & ~aw_sent),
                t.wvalid.eq(hit & ~w_sent),
                t.bready.eq(bus.bready & (b_sel == i)),
            ]  # fmt: skip
        w_issue = Signal()  # the held write leaves the register (both halves taken, or a hole)
        m.d.comb += w_issue.eq(((aw_sent | aw_take) & (w_sent | w_take)) | (w_go & w_hole & ~hole_bvalid))
        with m.If(w_issue):
            m.d.sync += [aw_sent.eq(0), w_sent.eq(0)]
        with m.Else():
            m.d.sync += [aw_sent.eq(aw_sent | aw_take), w_sent.eq(w_sent | w_take)]
        w_load = bus.awvalid & bus.wvalid & (~w_valid | w_issue)
        m.d.comb += [bus.awready.eq(w_load), bus.wready.eq(w_load)]
        with m.If(w_load):
            m.d.sync += [
                w_valid.eq(1),
                w_addr.eq(bus.awaddr[:low]),
                w_sel.eq(bus.awaddr[low:]),
                w_data.eq(bus.wdata),
                w_strb.eq(bus.wstrb),
            ]
        with m.Elif(w_issue):
            m.d.sync += w_valid.eq(0)
        with m.If(w_issue):
            m.d.sync += b_sel.eq(w_sel)
            with m.If(w_hole):
                m.d.sync += hole_bvalid.eq(1)
        b_take = bus.bvalid & bus.bready
        with m.If(b_take & hole_bvalid):
            m.d.sync += hole_bvalid.eq(0)
        m.d.sync += w_pending.eq(w_pending + w_issue - b_take)
        m.d.comb += [
            bus.bvalid.eq(hole_bvalid | _any(t.bvalid & (b_sel == i) for i, t in enumerate(targets))),
            bus.bresp.eq(_any(Mux(b_sel == i, t.bresp, 0) for i, t in enumerate(targets))),
        ]

        # ------------------------------------------------------------ reads
        r_valid = Signal()
        r_addr, r_sel = Signal(low), Signal(self.select_bits)
        r_pending = Signal(range(self.MAX_OUTSTANDING + 1))
        rd_sel = Signal(self.select_bits)  # target that owes those R responses
        hole_rvalid = Signal()
        r_hole = r_sel >= self.n_targets
        r_go = r_valid & ((r_pending == 0) | ((rd_sel == r_sel) & (r_pending != self.MAX_OUTSTANDING)))
        for i, t in enumerate(targets):
            m.d.comb += [
                t.araddr.eq(r_addr),
                t.arvalid.eq(r_go & (r_sel == i)),
                t.rready.eq(bus.rready & (rd_sel == i)),
            ]
        r_issue = Signal()
        m.d.comb += r_issue.eq(_any(t.arvalid & t.arready for t in targets) | (r_go & r_hole & ~hole_rvalid))
        r_load = bus.arvalid & (~r_valid | r_issue)
        m.d.comb += bus.arready.eq(~r_valid | r_issue)
        with m.If(r_load):
            m.d.sync += [r_valid.eq(1), r_addr.eq(bus.araddr[:low]), r_sel.eq(bus.araddr[low:])]
        with m.Elif(r_issue):
            m.d.sync += r_valid.eq(0)
        with m.If(r_issue):
            m.d.sync += rd_sel.eq(r_sel)
            with m.If(r_hole):
                m.d.sync += hole_rvalid.eq(1)
        r_take = bus.rvalid & bus.rready
        with m.If(r_take & hole_rvalid):
            m.d.sync += hole_rvalid.eq(0)
        m.d.sync += r_pending.eq(r_pending + r_issue - r_take)
        m.d.comb += [
            bus.rvalid.eq(hole_rvalid | _any(t.rvalid & (rd_sel == i) for i, t in enumerate(targets))),
            bus.rdata.eq(_any(Mux(rd_sel == i, t.rdata, 0) for i, t in enumerate(targets))),
            bus.rresp.eq(_any(Mux(rd_sel == i, t.rresp, 0) for i, t in enumerate(targets))),
        ]
        return m
