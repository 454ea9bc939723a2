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

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.data import StructLayout
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


class RegisterSlice(wiring.Component):
    """A stream stage whose outputs all come from flip-flops, so no combinational path crosses it in
    either direction: `o.valid` and `o.payload` are its output register, and `i.ready` is decoded
    from its own state.

    With `full_rate`, a spare entry (a skid buffer) catches the transfer that arrives in the cycle
    `o.ready` falls, which `i.ready` cannot yet show: one transfer per cycle. Without it, the one
    register takes a transfer only when empty: at most one every other cycle, at half the cost.
    """

    def __init__(self, shape, *, full_rate: bool):
        self.shape, self.full_rate = shape, full_rate
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})
        # The spare entry (always empty without `full_rate`), made here so that a proof can name it.
        self.spare_valid, self.spare = Signal(), Signal(shape)

    def elaborate(self, platform):
        m = Module()
        i, o, spare_valid, spare = self.i, self.o, self.spare_valid, self.spare
        if not self.full_rate:
            m.d.comb += i.ready.eq(~o.valid)
            with m.If(i.valid & ~o.valid):
                m.d.sync += [o.valid.eq(1), o.payload.eq(i.payload)]
            with m.Elif(o.ready):
                m.d.sync += o.valid.eq(0)
            return m
        m.d.comb += i.ready.eq(~spare_valid)
        with m.If(~o.valid | o.ready):
            m.d.sync += [
                o.valid.eq(spare_valid | i.valid),
                o.payload.eq(Mux(spare_valid, spare, i.payload)),
                spare_valid.eq(0),
            ]
        with m.Elif(i.valid & ~spare_valid):
            m.d.sync += [spare_valid.eq(1), spare.eq(i.payload)]
        return m


class _Direction:
    """The state of one direction of `AxiLiteBridge`, made in the bridge's constructor so that
    formal/axil.py's proof can name it.

    `presented`: the request the targets see (valid flag and payload); `to[half]`: one bit per
    target, the VALID of that half of the presented request (AW and W, or AR) until the target
    takes it, so each target's VALID is a flip-flop. `waiting`: a request taken from the bus that
    may not be presented yet. `owed`: requests presented to the target `owner` (one bit per target)
    whose response has not yet entered `response`, the one still presented included. `response`:
    the response slice, which drives the bus.
    """

    def __init__(self, request_shape, response_shape, halves, *, targets: int, full_rate: bool,
                 max_outstanding: int):  # fmt: skip
        self.presented_valid, self.presented = Signal(), Signal(request_shape)
        self.to = {half: Signal(targets, name=f"{half}_to") for half in halves}
        self.waiting_valid, self.waiting = Signal(), Signal(request_shape)
        self.owed = Signal(range(max_outstanding + 1))
        self.owner = Signal(targets)
        self.response = RegisterSlice(response_shape, full_rate=full_rate)


class AxiLiteBridge(wiring.Component):
    """One AXI4-Lite subordinate port fanned out to `targets` managers by the upper address bits.

    Address bits [target_addr_width + select_bits - 1 : target_addr_width] select target i, the
    bits below go to it. Selections without a target (`targets < 2**select_bits`) are holes: a
    write is answered OKAY and dropped, a read returns 0 with OKAY.

    Everything the bridge drives comes from its own flip-flops: toward a target, the presented
    request and its VALIDs, and READY for its response (through one LUT); toward the bus, the
    response registers and READY ("the waiting register is empty"; AWREADY and WREADY also see the
    partner's VALID, below). No path runs from a target through the bridge's multiplexers to the
    bus port or back into a target, so a bridge with 16 targets costs one register stage of logic
    depth, not a bus round trip.

    Requests (`LATENCY` = 1 cycle): a write is taken when AW and W are both valid (AWREADY and
    WREADY rise together, so W, which carries no address, always knows its target), a read when AR
    is valid. It goes straight into the `presented` register if it may go now, else into the
    `waiting` register, which moves on as soon as it may; the target takes the presented request
    (AW and W may be taken in different cycles; velcro_conv2d takes both at once).

    Responses (`RESPONSE_LATENCY` = 1 cycle): B and R are taken from the target that owes them into
    a response slice, which drives the bus. AXI4-Lite has no IDs, so responses must return in
    request order; a slice is first in, first out, so the bridge keeps the order by presenting a
    request to a different target only once every response of the previous target has entered the
    slice. A request therefore waits only for the target it addresses, or for the bus master to
    take the responses it is owed: the bridge never waits on a third party and cannot deadlock.
    Holes answer by putting their response into the same slice, in turn, without being presented.

    Rate: the B slice has a spare entry, so back-to-back writes to one target pass at one per cycle;
    the R slice does not, since an instance takes one read at a time anyway. Switching to another
    target costs one idle cycle (it waits for `owed` to read 0).
    """

    LATENCY = spec.BRIDGE_LATENCY
    RESPONSE_LATENCY = spec.BRIDGE_RESPONSE_LATENCY
    # Per target: requests presented whose response has not reached the bridge (velcro_conv2d holds
    # 2 writes, so a third one presented keeps it busy).
    MAX_OUTSTANDING = 3

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
        data_width = len(self.bus.wdata)
        address = {"addr": target_addr_width, "sel": select_bits}
        common = {"targets": targets, "max_outstanding": self.MAX_OUTSTANDING}
        write = StructLayout({**address, "data": data_width, "strb": data_width // 8})
        self.writes = _Direction(write, 2, ("aw", "w"), full_rate=True, **common)  # BRESP
        self.reads = _Direction(StructLayout(address), StructLayout({"data": data_width, "resp": 2}), ("ar",),
                                full_rate=False, **common)  # fmt: skip

    def _route(self, m, direction, taken, request, readies, responses):
        """One direction: take `request` from the bus when `taken`, present it to its target (or
        answer a hole), and move the targets' responses into the response slice in request order.
        `readies[half]` are the targets' READYs of each half of the request, `responses` their
        response channels as (valid, payload, ready)."""
        d, response = direction, direction.response.i
        left = {half: to & ~Cat(*readies[half]) for half, to in d.to.items()}  # not taken by this cycle's end
        delivered = d.presented_valid & ~Cat(*left.values()).any()
        candidate = Signal.like(d.presented)  # the oldest request not yet presented: waiting, else the bus's
        m.d.comb += candidate.eq(Mux(d.waiting_valid, d.waiting, request))
        there = d.waiting_valid | taken
        hole = candidate.sel >= self.n_targets
        may_go = (d.owed == 0) | (d.owner.bit_select(candidate.sel, 1) & (d.owed != self.MAX_OUTSTANDING))
        present = there & ~hole & may_go & (~d.presented_valid | delivered)
        hole_answer = there & hole & (d.owed == 0)  # its turn: its OKAY (and 0) joins the slice
        from_target = _any(valid & d.owner[i] for i, (valid, _, _) in enumerate(responses))
        m.d.comb += [
            response.valid.eq(hole_answer | from_target),
            response.payload.eq(Mux(hole_answer, 0, _any(Mux(d.owner[i], payload, 0)
                                                         for i, (_, payload, _) in enumerate(responses)))),
        ]
        for i, (_, _, ready) in enumerate(responses):
            m.d.comb += ready.eq(response.ready & d.owner[i])
        with m.If(present):
            m.d.sync += [d.presented_valid.eq(1), d.presented.eq(candidate)]
            m.d.sync += [one_hot.eq(1 << candidate.sel) for one_hot in (d.owner, *d.to.values())]
        with m.Else():
            m.d.sync += d.presented_valid.eq(d.presented_valid & ~delivered)
            m.d.sync += [d.to[half].eq(left[half]) for half in d.to]
        gone = present | (hole_answer & response.ready)
        with m.If(d.waiting_valid):
            m.d.sync += d.waiting_valid.eq(~gone)
        with m.Elif(taken & ~gone):
            m.d.sync += [d.waiting_valid.eq(1), d.waiting.eq(request)]
        m.d.sync += d.owed.eq(d.owed + present - (from_target & response.ready))

    def elaborate(self, platform):
        m = Module()
        bus, targets = self.bus, self.targets

        # ------------------------------------------------------------ writes
        w = self.writes
        m.submodules.write_response = w.response
        m.d.comb += [
            bus.awready.eq(bus.wvalid & ~w.waiting_valid),
            bus.wready.eq(bus.awvalid & ~w.waiting_valid),
            bus.bvalid.eq(w.response.o.valid),
            bus.bresp.eq(w.response.o.payload),
            w.response.o.ready.eq(bus.bready),
        ]
        for i, t in enumerate(targets):
            m.d.comb += [
                t.awaddr.eq(w.presented.addr), t.wdata.eq(w.presented.data), t.wstrb.eq(w.presented.strb),
                t.awvalid.eq(w.to["aw"][i]), t.wvalid.eq(w.to["w"][i]),
            ]  # fmt: skip
        self._route(m, w, bus.awvalid & bus.wvalid & ~w.waiting_valid, Cat(bus.awaddr, bus.wdata, bus.wstrb),
                    {"aw": [t.awready for t in targets], "w": [t.wready for t in targets]},
                    [(t.bvalid, t.bresp, t.bready) for t in targets])

        # ------------------------------------------------------------ reads
        r = self.reads
        m.submodules.read_response = r.response
        m.d.comb += [
            bus.arready.eq(~r.waiting_valid),
            bus.rvalid.eq(r.response.o.valid),
            bus.rdata.eq(r.response.o.payload.data),
            bus.rresp.eq(r.response.o.payload.resp),
            r.response.o.ready.eq(bus.rready),
        ]
        for i, t in enumerate(targets):
            m.d.comb += [t.araddr.eq(r.presented.addr), t.arvalid.eq(r.to["ar"][i])]
        self._route(m, r, bus.arvalid & ~r.waiting_valid, bus.araddr, {"ar": [t.arready for t in targets]},
                    [(t.rvalid, Cat(t.rdata, t.rresp), t.rready) for t in targets])
        return m
