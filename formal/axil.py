"""Formal properties of the three AXI4-Lite subordinates: `AxiLiteRegisterBus` (an instance's front
end, alone and with the instance's register decode behind it), `AxiLiteBridge` (velcro_top's fan-out)
and `KernelControl` (velcro_krnl's s_axi_control).

Every harness puts the design under a free manager that only obeys the AXI4-Lite rules (VALID held
with a stable payload until READY), and the bridge over free targets that obey them too. The
properties are what rtl/README.md sections 4 and 9 promise: every VALID the design drives is held
with a stable payload until READY; one B per accepted AW+W pair and one R per accepted AR, none
without a request, all OKAY; the latencies of `spec.AXIL_*` and `spec.BRIDGE_*`; unmapped
addresses and instance-less selections read 0 and ignore writes. A mutation (BVALID dropped while
BREADY is low) shows the rules are strong enough to catch a broken subordinate.
"""
from __future__ import annotations

from functools import partial

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from formal.job import FormalJob, hold_until_ready, out_of_reset
from model.hw import spec
from rtl.axil import AxiLiteBridge, AxiLiteRegisterBus
from rtl.interfaces import AxiLiteSignature
from rtl.kernel_control import KernelControl
from rtl.registers import decode, region, storage

OKAY = 0
REGISTER_BUS_ADDR_WIDTH = 4  # the register bus is parametric in its address width: 4 bits (4 words) suffice
BRIDGE_TARGETS, BRIDGE_TARGET_ADDR_WIDTH, BRIDGE_SELECT_BITS = 2, 3, 2  # 2 targets + 2 holes (selections 2, 3)
BRIDGE_PROVE_DEPTH = 3  # with the harness's invariants, a 3-step induction closes


# ---------------------------------------------------------------- rules shared by the harnesses
def any_of(values):
    """OR of Amaranth values (0 when there are none)."""
    result = 0
    for value in values:
        result = result | value
    return result


class Ledger:
    """Outstanding transactions on one AXI4-Lite port, counted from its handshakes.

    `writes_owed`: AW+W pairs accepted whose B was not yet taken; `aw_only`/`w_only`: an AW (W)
    accepted whose partner has not come yet; `reads_owed`: ARs whose R was not yet taken. All count
    handshakes of earlier cycles. The design behind `bus` is the subordinate when `dut_answers`
    (its responses are asserted, the manager's requests assumed) and the manager otherwise.
    """

    def __init__(self, m, bus, name: str, *, dut_answers: bool, max_writes: int, max_reads: int):
        requests, responses = (Assume, Assert) if dut_answers else (Assert, Assume)
        self.aw_hs, self.w_hs = bus.awvalid & bus.awready, bus.wvalid & bus.wready
        self.b_hs, self.ar_hs, self.r_hs = bus.bvalid & bus.bready, bus.arvalid & bus.arready, bus.rvalid & bus.rready
        self.aw_only, self.w_only = Signal(2, name=f"{name}_aw_only"), Signal(2, name=f"{name}_w_only")
        self.writes_owed = Signal(range(max_writes + 2), name=f"{name}_writes_owed")
        self.reads_owed = Signal(range(max_reads + 2), name=f"{name}_reads_owed")
        aw_total, w_total = self.aw_only + self.aw_hs, self.w_only + self.w_hs
        self.pair = (aw_total != 0) & (w_total != 0)  # a pair completes in this cycle
        m.d.sync += [
            self.aw_only.eq(aw_total - self.pair),
            self.w_only.eq(w_total - self.pair),
            self.writes_owed.eq(self.writes_owed + self.pair - self.b_hs),
            self.reads_owed.eq(self.reads_owed + self.ar_hs - self.r_hs),
        ]
        hold_until_ready(m, requests, bus.awvalid, bus.awready, [bus.awaddr], f"{name}_aw")
        hold_until_ready(m, requests, bus.wvalid, bus.wready, [bus.wdata, bus.wstrb], f"{name}_w")
        hold_until_ready(m, requests, bus.arvalid, bus.arready, [bus.araddr], f"{name}_ar")
        hold_until_ready(m, responses, bus.bvalid, bus.bready, [bus.bresp], f"{name}_b")
        hold_until_ready(m, responses, bus.rvalid, bus.rready, [bus.rdata, bus.rresp], f"{name}_r")
        m.d.comb += [
            responses(~bus.bvalid | (self.writes_owed != 0), f"{name}: no B without an accepted AW+W pair"),
            responses(~bus.rvalid | (self.reads_owed != 0), f"{name}: no R without an accepted AR"),
            responses(~bus.bvalid | (bus.bresp == OKAY), f"{name}: BRESP is OKAY"),
            responses(~bus.rvalid | (bus.rresp == OKAY), f"{name}: RRESP is OKAY"),
            Assert(self.writes_owed <= max_writes, f"{name}: at most {max_writes} writes outstanding"),
            Assert(self.reads_owed <= max_reads, f"{name}: at most {max_reads} reads outstanding"),
            Assert((self.aw_only <= 1) & (self.w_only <= 1) & ((self.aw_only == 0) | (self.w_only == 0)),
                   f"{name}: at most one AW or one W waits for its partner"),
        ]  # fmt: skip

    def response_latency(self, m, bus, write_latency: int, read_latency: int, name: str) -> None:
        """While a response is owed, its VALID is low for fewer than `latency` cycles in a row.

        Counted from the handshake that completes the request, or from the previous response's
        handshake on that channel, so the bound holds whatever the manager does with BREADY/RREADY.
        """
        for owed, valid, latency, channel in ((self.writes_owed, bus.bvalid, write_latency, "B"),
                                              (self.reads_owed, bus.rvalid, read_latency, "R")):
            waiting = Signal(range(latency + 1), name=f"{name}_{channel}_waiting")
            now = Mux((owed != 0) & ~valid, waiting + 1, 0)
            m.d.sync += waiting.eq(now)
            m.d.comb += Assert(now < latency, f"{name}: {channel}VALID within {latency} cycle(s) of being owed")


def register_bus_rules(m, bus) -> Ledger:
    """The rules of a subordinate built on `AxiLiteRegisterBus`, seen at its port `bus`: the Ledger's
    one-response-per-request rules, the `spec.AXIL_*` latencies, and its holding registers as the
    READY signals show them (what the induction needs to close)."""
    ledger = Ledger(m, bus, "bus", dut_answers=True, max_writes=2, max_reads=1)
    ledger.response_latency(m, bus, spec.AXIL_WRITE_LATENCY, spec.AXIL_READ_LATENCY, "bus")
    m.d.comb += [
        Assert(bus.arready == (ledger.reads_owed == 0), "ARREADY exactly when no read is owed"),
        Assert(ledger.aw_only == (~bus.awready & bus.wready), "an AW without its W is held (AWREADY low)"),
        Assert(ledger.w_only == (bus.awready & ~bus.wready), "a W without its AW is held (WREADY low)"),
        Assert(ledger.writes_owed == bus.bvalid + (~bus.awready & ~bus.wready),
               "every owed pair is answered on B or parked whole (AWREADY and WREADY low)"),
    ]
    return ledger


class Fifo:
    """A first-in first-out record of values (the payloads the bridge must pass on, in order)."""

    def __init__(self, m, depth: int, width: int, push, value, pop, name: str):
        self.items = [Signal(width, name=f"{name}_{k}") for k in range(depth)]
        self.count = Signal(range(depth + 2), name=f"{name}_count")
        self.head = self.items[0]
        slot = self.count - pop
        for k, item in enumerate(self.items):
            kept = Mux(pop, self.items[k + 1] if k + 1 < depth else 0, item)
            m.d.sync += item.eq(Mux(push & (slot == k), value, kept))
        m.d.sync += self.count.eq(self.count + push - pop)
        m.d.comb += Assert(self.count <= depth, f"{name}: at most {depth} held")


class RequestQueue:
    """The requests outstanding at a bridge's bus port, oldest first: pushed at the request's
    handshake, popped at its response's. Each item keeps its selection, a flag per half of the
    request (AW and W, or AR) "a target has taken it" and a flag "its response has left the target".
    A hole is pushed with every flag set: no target ever sees it, the bridge answers it itself.
    `oldest_untaken[half]` and `oldest_unanswered` flag, per item, "the oldest item whose flag is
    low": where the next handshake on a target's channel must land if the order is kept.

    """

    def __init__(self, m, depth: int, n_targets: int, sel, halves, name: str):
        self.depth, self.n_targets = depth, n_targets
        self._m, self._name, self._new = m, name, (sel, halves)
        self.count = Signal(range(depth + 2), name=f"{name}_count")
        item = lambda what: [Signal(name=f"{name}_{what}_{k}") for k in range(depth)]  # noqa: E731
        self.sel = [Signal(len(sel), name=f"{name}_sel_{k}") for k in range(depth)]
        self.taken = {half: item(f"{half}_taken") for half in halves}
        self.answered = item("answered")
        self.live = self._named([self.count > k for k in range(depth)], "live")
        self.oldest_untaken = {half: self.first(self.taken[half], f"{half}_untaken") for half in halves}
        self.oldest_unanswered = self.first(self.answered, "unanswered")

    def _named(self, values, what):
        """`values` as signals: an expression used many times would be rebuilt at every use."""
        signals = [Signal(name=f"{self._name}_{what}_{k}") for k in range(len(values))]
        self._m.d.comb += [signal.eq(value) for signal, value in zip(signals, values)]
        return signals

    def first(self, flags, what: str):
        """Per item: live, flag low, and no older live item with its flag low."""
        result, none_older = [], 1
        for live, flag in zip(self.live, flags):
            here = live & ~flag
            result.append(none_older & here)
            none_older = none_older & ~here
        return self._named(result, f"first_{what}")

    def hole(self, k):
        return self.sel[k] >= self.n_targets

    def update(self, push, pop, taken: dict, answered) -> None:
        """Push the new request, mark the oldest untaken half (each of `taken`) and the oldest
        unanswered item (`answered`), pop the head: all as of this cycle's handshakes."""
        m, (sel, halves) = self._m, self._new
        is_hole = sel >= self.n_targets
        fields = [(self.sel, self.sel, sel),
                  *((self.taken[h], [f | (taken[h] & here) for f, here in zip(self.taken[h], self.oldest_untaken[h])],
                     is_hole) for h in halves),
                  (self.answered, [f | (answered & here) for f, here in zip(self.answered, self.oldest_unanswered)],
                   is_hole)]  # fmt: skip
        slot = self.count - pop
        for state, now, new in fields:
            for k in range(self.depth):
                kept = Mux(pop, now[k + 1] if k + 1 < self.depth else 0, now[k])
                m.d.sync += state[k].eq(Mux(push & (slot == k), new, kept))
        m.d.sync += self.count.eq(self.count + push - pop)
        m.d.comb += Assert(self.count <= self.depth, f"{self._name}: at most {self.depth} requests outstanding")



# ---------------------------------------------------------------- (a) AxiLiteRegisterBus
class BvalidDroppedWhileStalled(AxiLiteRegisterBus):
    """Mutation: an `AxiLiteRegisterBus` whose BVALID falls after one cycle with BREADY low (illegal)."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = AxiLiteRegisterBus(self.addr_width)
        stalled = Signal()  # BVALID was shown and not taken in the previous cycle
        for name in self.signature.members:
            if name != "axil":
                outer, nested = getattr(self, name), getattr(inner, name)
                m.d.comb += nested.eq(outer) if name == "rd_data" else outer.eq(nested)
        for name, member in self.axil.signature.members.items():
            outer, nested = getattr(self.axil, name), getattr(inner.axil, name)
            if name != "bvalid":
                m.d.comb += nested.eq(outer) if member.flow == In else outer.eq(nested)
        m.d.comb += self.axil.bvalid.eq(inner.axil.bvalid & ~stalled)
        m.d.sync += stalled.eq(self.axil.bvalid & ~self.axil.bready)
        return m


class RegisterBusHarness(wiring.Component):
    """`AxiLiteRegisterBus` (4-bit addresses) under a free manager, with free register read data."""

    def __init__(self, dut_class=AxiLiteRegisterBus):
        self.dut_class = dut_class
        super().__init__({"bus": In(AxiLiteSignature(REGISTER_BUS_ADDR_WIDTH)), "rd_data": In(32)})

    def elaborate(self, platform):
        m = Module()
        out_of_reset(m)
        m.submodules.dut = dut = self.dut_class(REGISTER_BUS_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.bus), dut.axil)
        m.d.comb += dut.rd_data.eq(self.rd_data)
        bus = self.bus
        ledger = register_bus_rules(m, bus)

        # Writes: the strobe performs the oldest accepted AW and W, once, as soon as the B channel is free.
        aw_waiting, w_waiting = Signal(), Signal()  # accepted, not yet performed
        aw_addr, w_data, w_strb = Signal.like(bus.awaddr), Signal.like(bus.wdata), Signal.like(bus.wstrb)
        aw_there, w_there = aw_waiting | ledger.aw_hs, w_waiting | ledger.w_hs
        performed = Signal()  # a write was performed and its B not yet taken
        b_free = ~bus.bvalid | bus.bready
        with m.If(ledger.aw_hs):
            m.d.sync += aw_addr.eq(bus.awaddr)
        with m.If(ledger.w_hs):
            m.d.sync += [w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        m.d.sync += [
            aw_waiting.eq(aw_there & ~dut.wr_stb),
            w_waiting.eq(w_there & ~dut.wr_stb),
            performed.eq(dut.wr_stb | (performed & ~ledger.b_hs)),
        ]
        m.d.comb += [
            Assert(~dut.wr_stb | (aw_there & w_there), "wr_stb only for an accepted, unperformed AW and W"),
            Assert(dut.wr_stb == (aw_there & w_there & b_free),
                   "the write is performed as soon as AW and W are both there and the B channel is free"),
            Assert(~aw_waiting | (dut.wr_addr == aw_addr), "wr_addr is the held AW's address"),
            Assert(aw_waiting | ~ledger.aw_hs | (dut.wr_addr == bus.awaddr), "wr_addr is the AW being accepted"),
            Assert(~w_waiting | ((dut.wr_data == w_data) & (dut.wr_strb == w_strb)),
                   "wr_data/wr_strb are the held W's"),
            Assert(w_waiting | ~ledger.w_hs | ((dut.wr_data == bus.wdata) & (dut.wr_strb == bus.wstrb)),
                   "wr_data/wr_strb are the W being accepted"),
            Assert(ledger.writes_owed == performed + (aw_waiting & w_waiting),
                   "every owed pair is either answered on B or parked whole in the holding registers"),
            Assert((ledger.aw_only == (aw_waiting & ~w_waiting)) & (ledger.w_only == (w_waiting & ~aw_waiting)),
                   "an AW (W) without its partner is held, not lost"),
            Assert(bus.bvalid == performed, f"BVALID exactly from {spec.AXIL_WRITE_LATENCY} cycle after the write "
                                            "is performed until BREADY"),
            Assert(bus.awready == ~aw_waiting, "AWREADY whenever no accepted AW waits"),
            Assert(bus.wready == ~w_waiting, "WREADY whenever no accepted W waits"),
        ]  # fmt: skip

        # Reads: rd_stb on the AR handshake, RVALID READ_LATENCY cycles later with the next cycle's rd_data.
        strobed, data_due = Signal(), Signal()
        expected = Signal.like(bus.rdata)
        m.d.sync += strobed.eq(dut.rd_stb)
        with m.If(strobed):
            m.d.sync += expected.eq(self.rd_data)
        m.d.sync += data_due.eq(strobed | (data_due & ~ledger.r_hs))
        m.d.comb += [
            Assert(dut.rd_stb == ledger.ar_hs, "rd_stb exactly on the AR handshake"),
            Assert(~dut.rd_stb | (dut.rd_addr == bus.araddr), "rd_addr is the AR's address"),
            Assert(bus.rvalid == data_due,
                   f"RVALID exactly from {spec.AXIL_READ_LATENCY} cycles after AR until RREADY"),
            Assert(~bus.rvalid | (bus.rdata == expected), "RDATA is rd_data of the cycle after rd_stb"),
        ]  # fmt: skip

        b_taken_before = Signal()
        m.d.sync += b_taken_before.eq(ledger.b_hs)
        m.d.comb += [
            Cover(ledger.b_hs, "a write completes"),
            Cover(ledger.r_hs, "a read completes"),
            Cover(ledger.b_hs & b_taken_before, "back-to-back writes, one per cycle"),
            Cover(ledger.aw_only == 1, "AW before W"),
            Cover(ledger.w_only == 1, "W before AW"),
            Cover(ledger.writes_owed == 2, "two writes owed with BREADY low"),
            Cover(ledger.r_hs & (bus.rdata == 0xC0FFEE01), "a read returns the register's data"),
        ]
        return m


REGISTER_BUS_PROPERTIES = (
    "manager assumed legal: AWVALID/WVALID/ARVALID held with stable payload until READY",
    "BVALID and RVALID held with stable BRESP/RDATA/RRESP until READY; BRESP = RRESP = OKAY",
    "no B without an accepted AW+W pair, no R without an accepted AR; at most 2 writes and 1 read owed",
    f"B owed -> BVALID within {spec.AXIL_WRITE_LATENCY} cycle, R owed -> RVALID within "
    f"{spec.AXIL_READ_LATENCY} cycles (AXIL_*_LATENCY), from the request or the previous response",
    "wr_stb once per accepted AW+W pair, with its address, data and strobes, as soon as the B channel is free",
    "AWREADY/WREADY exactly when nothing waits in the holding register (one write per cycle)",
    "rd_stb exactly on the AR handshake with its address; RDATA = rd_data of the next cycle",
    "4-bit addresses (the component is parametric in the address width)",
)


# ---------------------------------------------------------------- (b) AxiLiteBridge
class BridgeHarness(wiring.Component):
    """`AxiLiteBridge` with 2 targets of 3-bit addresses, 2 select bits (selections 2 and 3 are holes),
    a free manager and free AXI-legal targets that always answer OKAY (velcro_conv2d does).

    The bridge's write and read paths share no state, so each job exercises one `direction` with
    the other's VALIDs held low: two halves are far cheaper for the solver than the whole.

    The harness keeps its own record of the bus's outstanding requests (`RequestQueue`), of the
    payloads not yet delivered and of the read data returned (`Fifo`), and states the properties
    against it. For the induction to close, it also states how the bridge's state (its slices and
    `owed`/`owner`, which the bridge makes in its constructor for this) agrees with that record.
    """

    def __init__(self, direction: str):
        if direction not in ("write", "read"):
            raise ValueError(f"direction must be 'write' or 'read', got {direction!r}")
        self.direction = direction
        bus_width = BRIDGE_TARGET_ADDR_WIDTH + BRIDGE_SELECT_BITS
        target = AxiLiteSignature(BRIDGE_TARGET_ADDR_WIDTH)
        super().__init__({"bus": In(AxiLiteSignature(bus_width)), "targets": Out(target).array(BRIDGE_TARGETS)})

    def elaborate(self, platform):
        m = Module()
        out_of_reset(m)
        n, low, limit = BRIDGE_TARGETS, BRIDGE_TARGET_ADDR_WIDTH, AxiLiteBridge.MAX_OUTSTANDING
        m.submodules.dut = dut = AxiLiteBridge(n, low, BRIDGE_SELECT_BITS)
        wiring.connect(m, wiring.flipped(self.bus), dut.bus)
        for ours, theirs in zip(self.targets, dut.targets):
            wiring.connect(m, theirs, wiring.flipped(ours))
        bus, targets = self.bus, self.targets
        writes = self.direction == "write"
        direction, idle = (dut.writes, dut.reads) if writes else (dut.reads, dut.writes)
        # Owed at the bus: the responses in the response slice (B: 2, R: 1), `limit` presented to the
        # target (the one still presented included), and one waiting.
        held = 2 if writes else 1
        owed_at_bus = held + limit + 1
        ledger = Ledger(m, bus, "bus", dut_answers=True, max_writes=owed_at_bus, max_reads=owed_at_bus)
        at = [Ledger(m, t, f"t{i}", dut_answers=False, max_writes=limit, max_reads=limit)
              for i, t in enumerate(targets)]
        m.d.comb += [
            Assume(~bus.arvalid if writes else ~(bus.awvalid | bus.wvalid)),
            Assert(ledger.aw_hs == ledger.w_hs, "AW and W are accepted together"),
        ]

        # This direction's channels: on the bus, and per target (valid, ready, payload).
        if writes:
            sel, pushed, popped = bus.awaddr[low:], ledger.aw_hs, ledger.b_hs
            bus_valid, bus_ready = bus.bvalid, bus.bready
            halves = {"aw": bus.awaddr[:low], "w": Cat(bus.wdata, bus.wstrb)}
            sent = {"aw": [(t.awvalid, t.awready, t.awaddr) for t in targets],
                    "w": [(t.wvalid, t.wready, Cat(t.wdata, t.wstrb)) for t in targets]}
            answers = [(t.bvalid, t.bready) for t in targets]
            owes = [a.writes_owed for a in at]
            request_fields = lambda p: Cat(p.addr, p.data, p.strb)  # noqa: E731
            response_code = lambda p: p  # noqa: E731
        else:
            sel, pushed, popped = bus.araddr[low:], ledger.ar_hs, ledger.r_hs
            bus_valid, bus_ready = bus.rvalid, bus.rready
            halves = {"ar": bus.araddr[:low]}
            sent = {"ar": [(t.arvalid, t.arready, t.araddr) for t in targets]}
            answers = [(t.rvalid, t.rready) for t in targets]
            owes = [a.reads_owed for a in at]
            request_fields = lambda p: p.addr  # noqa: E731
            response_code = lambda p: p.resp  # noqa: E731
        handshake = {h: [v & r for v, r, _ in sent[h]] for h in halves}
        answer_hs = [v & r for v, r in answers]

        # ------------------------------------------------ the record
        queue = RequestQueue(m, owed_at_bus, n, sel, halves, f"{self.direction}_queue")
        queue.update(pushed, popped, {h: any_of(handshake[h]) for h in halves}, any_of(answer_hs))
        all_taken = [Cat(*(queue.taken[h][k] for h in halves)) for k in range(queue.depth)]
        undelivered = queue.first([taken.all() for taken in all_taken], "undelivered")
        delivered = any_of(u & Cat(*(queue.taken[h][k] | any_of(handshake[h]) for h in halves)).all()
                           for k, u in enumerate(undelivered))
        pending = Fifo(m, 2, len(Cat(*halves.values())), pushed & (sel < n), Cat(*halves.values()), delivered,
                       f"{self.direction}_pending")  # the payloads of the requests not yet delivered
        m.d.comb += [
            Assert(queue.count == (ledger.writes_owed if writes else ledger.reads_owed), "the queue tracks the bus"),
            Assert(sum((count != 0) for count in owes) <= 1, "at most one target owes responses"),
        ]

        # ------------------------------------------------ requests: each reaches its own target once, whole, in order
        offset = 0
        for h, value in halves.items():
            expected = pending.head[offset : offset + len(value)]
            offset += len(value)
            here = [o & u for o, u in zip(queue.oldest_untaken[h], undelivered)]  # where this half must land
            for i, (hs, (_, _, payload)) in enumerate(zip(handshake[h], sent[h])):
                m.d.comb += [
                    Assert(~hs | any_of(at_k & (queue.sel[k] == i) for k, at_k in enumerate(here)),
                           f"a target's {h.upper()} is the oldest undelivered request's, to its own selection, once"),
                    Assert(~hs | (payload == expected), f"a target's {h.upper()} carries that request's payload"),
                ]  # fmt: skip
        # No needless stall: the oldest undelivered request, if not presented, is presented in the next
        # cycle unless another target owes responses, its own owes `limit`, or an older hole waits.
        older_hole = any_of(queue.live[k] & queue.hole(k) & ~any_of(undelivered[:k]) for k in range(queue.depth))
        for i in range(n):
            clear = ~older_hole & (owes[i] != limit) & ~any_of(count != 0 for j, count in enumerate(owes) if j != i)
            oldest_here = any_of(u & (queue.sel[k] == i) for k, u in enumerate(undelivered))
            valids = Cat(*(sent[h][i][0] for h in halves))
            stalled = Signal(name=f"stalled_{i}")
            m.d.sync += stalled.eq(oldest_here & ~valids.any() & clear)
            m.d.comb += Assert(~stalled | valids.all(), "a request not presented is presented in the next cycle "
                               f"unless another target owes, its own owes {limit}, or an older hole waits")

        # ------------------------------------------------ responses: in order, registered, with the target's data
        for i, hs in enumerate(answer_hs):
            m.d.comb += Assert(~hs | any_of(u & (queue.sel[k] == i) for k, u in enumerate(queue.oldest_unanswered)),
                               "a target's response answers the oldest unanswered request, which is its own")
        m.d.comb += Assert(~bus_valid | (queue.live[0] & queue.answered[0]),
                           "the bus gets a response only after its target answered (the response is registered)")
        if not writes:
            data = any_of(Mux(hs, t.rdata, 0) for hs, t in zip(answer_hs, targets))
            returned = Fifo(m, held, len(bus.rdata), any_of(answer_hs), data, popped & ~queue.hole(0), "returned")
            m.d.comb += Assert(~bus.rvalid | (bus.rdata == Mux(queue.hole(0), 0, returned.head)),
                               "RDATA is what the owing target returned; a hole reads 0")

        # ------------------------------------------------ latencies
        # BRIDGE_LATENCY cycle to the target when nothing is owed; BRIDGE_RESPONSE_LATENCY cycle from the
        # target's response to the bus when the bus channel is free; holes within hole_wait cycles.
        fresh_request, fresh_sel, fresh_response = Signal(), Signal(BRIDGE_SELECT_BITS), Signal()
        m.d.sync += [fresh_request.eq(pushed & (queue.count == 0)), fresh_sel.eq(sel),
                     fresh_response.eq(any_of(answer_hs) & (~bus_valid | bus_ready))]  # fmt: skip
        for i in range(n):
            m.d.comb += Assert(~fresh_request | (fresh_sel != i) | Cat(*(sent[h][i][0] for h in halves)).all(),
                               f"a request reaches its target {spec.BRIDGE_LATENCY} cycle after its handshake "
                               "when nothing is owed")  # fmt: skip
        m.d.comb += Assert(~fresh_response | bus_valid, f"a response reaches the bus {spec.BRIDGE_RESPONSE_LATENCY} "
                                                        "cycle after the target's when the bus channel is free")
        hole_wait = spec.BRIDGE_LATENCY + spec.BRIDGE_RESPONSE_LATENCY  # at most: taken, then answered
        waiting = Signal(range(hole_wait + 1), name="hole_waiting")
        now = Mux(queue.live[0] & queue.hole(0) & ~bus_valid, waiting + 1, 0)
        m.d.sync += waiting.eq(now)
        m.d.comb += Assert(now < hole_wait, f"a hole's response comes within {hole_wait} cycles of it being the oldest")

        # ------------------------------------------------ invariants: the bridge's state agrees with the record
        # The bus's requests, oldest first, are: the responses in the response slice (in_resp), the
        # requests presented to the owner (owed; the last of them may still be presented), the waiting one.
        resp, owed, owner = direction.response, direction.owed, direction.owner
        in_resp = resp.o.valid + resp.spare_valid
        presented, waiting_valid = direction.presented_valid, direction.waiting_valid
        p_sel, w_sel = direction.presented.sel, direction.waiting.sel
        w_target = waiting_valid & (w_sel < n)
        to = {h: direction.to[h] for h in halves}
        invariants = [
            ~resp.spare_valid | resp.o.valid,
            queue.count == in_resp + owed + waiting_valid,
            (owed == 0) | any_of(owner == (1 << i) for i in range(n)),
            ~presented | ((owed != 0) & (p_sel < n) & (owner == (1 << p_sel)) & Cat(*to.values()).any()),
            *(to[h] == Mux(presented, to[h] & (1 << p_sel), 0) for h in halves),
            *(owes[i] == Mux(owner[i], owed - presented, 0) for i in range(n)),
            ~resp.o.valid | (response_code(resp.o.payload) == OKAY),
            ~resp.spare_valid | (response_code(resp.spare) == OKAY),
            pending.count == presented + w_target,
            ~presented | (pending.head == request_fields(direction.presented)),
            ~w_target | (Mux(presented, pending.items[-1], pending.head) == request_fields(direction.waiting)),
            (ledger.aw_only == 0) & (ledger.w_only == 0),
            # the other direction stays empty
            ~Cat(idle.presented_valid, idle.waiting_valid, idle.response.o.valid, idle.response.spare_valid,
                 *idle.to.values()).any(),
            idle.owed == 0,
            *((a.reads_owed if writes else a.writes_owed) == 0 for a in [ledger, *at]),
        ]  # fmt: skip
        if writes:
            for i, a in enumerate(at):
                here = presented & (p_sel == i)
                invariants += [a.aw_only == (here & ~to["aw"][i]), a.w_only == (here & ~to["w"][i])]
        else:
            invariants += [
                *((a.aw_only == 0) & (a.w_only == 0) for a in at),
                returned.count == (resp.o.valid & ~queue.hole(0)),
                (returned.count == 0) | (returned.head == resp.o.payload.data),
                ~(resp.o.valid & queue.hole(0)) | (resp.o.payload.data == 0),
            ]
        presented_taken = Cat(*(~to[h].any() for h in halves))
        for k in range(queue.depth):
            hole_k, live = queue.hole(k), queue.live[k]
            last_presented = presented & (k == in_resp + owed - 1)
            waiting_taken = hole_k.replicate(len(halves))  # a hole counts as taken from the start
            invariants += [
                ~(live & (k < in_resp)) | (queue.answered[k] & all_taken[k].all()),
                ~(live & (k >= in_resp) & (k < in_resp + owed))
                | (~hole_k & owner.bit_select(queue.sel[k], 1) & ~queue.answered[k]
                   & (all_taken[k] == Mux(last_presented, presented_taken, (1 << len(halves)) - 1))),
                ~(live & (k == in_resp + owed))
                | ((queue.sel[k] == w_sel) & (queue.answered[k] == hole_k) & (all_taken[k] == waiting_taken)),
            ]  # fmt: skip
        m.d.comb += [Assert(invariant, f"invariant {j}: the bridge's state agrees with the record")
                     for j, invariant in enumerate(invariants)]  # fmt: skip

        # ------------------------------------------------ covers
        hole = (1 << BRIDGE_SELECT_BITS) - 1
        name = self.direction
        done = popped & queue.live[0]
        first_half = next(iter(halves))
        waits_for_1 = any_of(u & (queue.sel[k] == 1) for k, u in enumerate(undelivered))
        m.d.comb += [
            Cover(done & (queue.sel[0] == 1) & (writes | (bus.rdata == 0x5A5A5A5A)),
                  f"a {name} through target 1 completes"),
            Cover(done & (queue.sel[0] == hole), f"a {name} of the hole completes"),
            Cover(owes[0] == limit, f"{limit} {name}s outstanding at one target"),
            Cover(waits_for_1 & (owes[0] != 0), f"a {name} waits for another target's responses"),
            Cover(answer_hs[0] & (owes[0] == 1) & waits_for_1,
                  f"a {name} to another target is pending as the last response of the previous one is taken"),
            Cover(handshake[first_half][1] & queue.live[0] & (queue.sel[0] == 0),
                  f"a {name} reaches target 1 while target 0's response waits in the bridge"),
            Cover(pending.count == 2, f"the bridge holds 2 undelivered {name}s"),
        ]  # fmt: skip
        if writes:
            m.d.comb += Cover(bus.bvalid & ~bus.bready & any_of(answer_hs),
                              "a B enters the slice's spare entry while the bus stalls")
        return m


BRIDGE_PROPERTIES = (
    "2 targets of 3-bit addresses, 2 select bits (selections 2 and 3 have no target: holes)",
    "manager assumed legal; targets assumed legal (responses held until READY, none unrequested, OKAY)",
    "bus: BVALID/RVALID held with stable payload until READY, OKAY, none without a request; AW with W",
    f"targets: AWVALID/WVALID/ARVALID held with stable payload until READY; at most "
    f"{AxiLiteBridge.MAX_OUTSTANDING} owed per target",
    "each request reaches its own target once, whole (low address bits, data and strobes), in bus order; holes never",
    "each target's response answers the oldest unanswered request, which is its own; one target owes at a time",
    "the bus returns a response only after its target answered (registered), in request order, with its RDATA",
    f"holes answer OKAY and read 0, within {spec.BRIDGE_LATENCY + spec.BRIDGE_RESPONSE_LATENCY} cycles of being "
    "the oldest request",
    f"a request reaches its target {spec.BRIDGE_LATENCY} cycle after its handshake when nothing is owed; one not "
    f"presented is presented the next cycle unless another target (or {AxiLiteBridge.MAX_OUTSTANDING}) owes "
    "responses or an older hole waits",
    f"a target's response reaches the bus {spec.BRIDGE_RESPONSE_LATENCY} cycle later when the bus channel is free",
    "invariants (what the induction needs): the bridge's registers (presented, waiting, response slice, owed, "
    "owner) agree with the harness's record of the outstanding requests",
)


# ---------------------------------------------------------------- (c) KernelControl
def readable_bits(word: int) -> int:
    """Bits a read of kernel control word `word` may return as 1 (0 for unmapped words)."""
    for reg in spec.KERNEL_REGISTERS:
        if reg.word <= word < reg.word + reg.count:
            return sum(f.mask for f in reg.fields) if reg.fields else (1 << reg.width) - 1
    return 0


class KernelControlHarness(wiring.Component):
    """`KernelControl` under a free manager and a free kernel (started, done, idle, error)."""

    def __init__(self, writes_unmapped_only: bool = False):
        self.writes_unmapped_only = writes_unmapped_only
        super().__init__({
            "bus": In(AxiLiteSignature(spec.KERNEL_CONTROL_ADDR_WIDTH)),
            "started": In(1), "done": In(1), "idle": In(1), "error": In(spec.KREG["ERROR"].width),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        out_of_reset(m)
        m.submodules.dut = dut = KernelControl()
        wiring.connect(m, wiring.flipped(self.bus), dut.bus)
        m.d.comb += [dut.started.eq(self.started), dut.done.eq(self.done), dut.idle.eq(self.idle),
                     dut.error.eq(self.error)]  # fmt: skip
        bus = self.bus
        ledger = register_bus_rules(m, bus)

        mapped_words = [w for reg in spec.KERNEL_REGISTERS for w in range(reg.word, reg.word + reg.count)]
        readable = Signal(32)  # of the read owed
        with m.If(ledger.ar_hs):
            m.d.sync += readable.eq(0)
            with m.Switch(bus.araddr[2:]):
                for word in mapped_words:
                    with m.Case(word):
                        m.d.sync += readable.eq(readable_bits(word))
        m.d.comb += Assert(~bus.rvalid | ((bus.rdata & ~readable) == 0),
                           "unmapped words read 0; bits a register does not hold read 0")

        if self.writes_unmapped_only:
            mapped = Signal()
            with m.Switch(bus.awaddr[2:]):
                for word in mapped_words:
                    with m.Case(word):
                        m.d.comb += mapped.eq(1)
            m.d.comb += [
                Assume(~bus.awvalid | ~mapped),
                Assert(dut.args.as_value() == 0, "writes to unmapped words leave the arguments at 0"),
                Assert(~dut.start, "writes to unmapped words never set ap_start"),
                Assert(~dut.interrupt, "writes to unmapped words never enable the interrupt"),
                Cover(ledger.b_hs & (ledger.writes_owed == 1), "an unmapped write completes"),
            ]
        else:
            m.d.comb += [
                Cover(ledger.b_hs, "a write completes"),
                Cover(ledger.r_hs & (readable == 0), "an unmapped read completes"),
                Cover(ledger.r_hs & (bus.rdata == 0x0E), "AP_CTRL reads done, idle, ready"),
                Cover(ledger.r_hs & (readable == 0xFFFFFFFF) & (bus.rdata == 0x12345678), "an argument reads back"),
                Cover(dut.interrupt, "the interrupt rises"),
                Cover(dut.start, "ap_start is set"),
            ]
        return m


class InstanceRegistersHarness(wiring.Component):
    """An instance's register front end as conv2d.py builds it: `AxiLiteRegisterBus` with the register
    decode of `spec.REGISTERS` behind it (`rtl.registers`), read-only registers reading a free value and
    the MASK and AVG regions free memory data, under a free manager."""

    def __init__(self, writes_unmapped_only: bool = False):
        self.writes_unmapped_only = writes_unmapped_only
        super().__init__({
            "bus": In(AxiLiteSignature(spec.CORE_ADDR_WIDTH)),
            "readonly_value": In(spec.AXIL_DATA_WIDTH), "memory_data": In(spec.AXIL_DATA_WIDTH),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        out_of_reset(m)
        m.submodules.dut = dut = AxiLiteRegisterBus(spec.CORE_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.bus), dut.axil)
        flops = {r.name: storage(r) for r in spec.REGISTERS if r.writable and not r.is_memory}
        readonly = {r.name: self.readonly_value for r in spec.REGISTERS if not r.writable and not r.is_memory}
        rd_addr = Signal(spec.CORE_ADDR_WIDTH)  # latched on the strobe, as conv2d.py does
        with m.If(dut.rd_stb):
            m.d.sync += rd_addr.eq(dut.rd_addr)
        value, _ = decode(m, dut, rd_addr, flops, readonly)
        memories = [reg for reg in spec.REGISTERS if reg.is_memory]
        m.d.comb += dut.rd_data.eq(Mux(any_of(region(rd_addr, reg)[0] for reg in memories), self.memory_data, value))

        bus = self.bus
        ledger = register_bus_rules(m, bus)

        def mapped(addr):
            register_words = [w for reg in spec.REGISTERS if not reg.is_memory for w in range(reg.word, reg.word + reg.count)]
            return any_of([addr[2:] == w for w in register_words] + [region(addr, reg)[0] for reg in memories])

        read_mapped = Signal()  # of the read owed
        with m.If(ledger.ar_hs):
            m.d.sync += read_mapped.eq(mapped(bus.araddr))
        m.d.comb += Assert(~bus.rvalid | read_mapped | (bus.rdata == 0), "words no register or memory occupies read 0")

        if self.writes_unmapped_only:
            state = Cat(*(f for words in flops.values() for f in words))
            m.d.comb += [
                Assume(~bus.awvalid | ~mapped(bus.awaddr)),
                Assert(state == Cat(*(f.init for words in flops.values() for f in words)),
                       "writes to unmapped words leave every register at its reset value"),
                Cover(ledger.b_hs & (ledger.writes_owed == 1), "an unmapped write completes"),
            ]
        else:
            m.d.comb += [
                Cover(ledger.r_hs & ~read_mapped, "an unmapped read completes"),
                Cover(ledger.r_hs & read_mapped & (bus.rdata == 0x12345678), "a mapped word reads back"),
            ]
        return m


INSTANCE_REGISTERS_PROPERTIES = (
    "manager assumed legal; read-only registers and the MASK/AVG memories read a free value",
    "BVALID and RVALID held with stable payload until READY; BRESP = RRESP = OKAY",
    "no B without an accepted AW+W pair, no R without an accepted AR; at most 2 writes and 1 read owed",
    f"BVALID within {spec.AXIL_WRITE_LATENCY}, RVALID within {spec.AXIL_READ_LATENCY} cycles of being owed",
    "words that neither a register nor the MASK/AVG regions occupy read 0",
)
INSTANCE_UNMAPPED_WRITE_PROPERTIES = (
    "every write to a word that neither a register nor the MASK/AVG regions occupy (assumed)",
    "every register keeps its reset value",
)


KERNEL_CONTROL_PROPERTIES = (
    "manager assumed legal; kernel inputs (started, done, idle, error) free",
    "BVALID and RVALID held with stable payload until READY; BRESP = RRESP = OKAY",
    "no B without an accepted AW+W pair, no R without an accepted AR; at most 2 writes and 1 read owed",
    f"BVALID within {spec.AXIL_WRITE_LATENCY}, RVALID within {spec.AXIL_READ_LATENCY} cycles of being owed",
    "unmapped words read 0; bits a register does not hold read 0",
)
KERNEL_CONTROL_UNMAPPED_WRITE_PROPERTIES = (
    "every write to a word no register occupies (assumed), kernel inputs free",
    "the arguments stay 0, ap_start stays 0 and the interrupt stays low",
)


JOBS: list[FormalJob] = [
    FormalJob("axil_register_bus_prove", RegisterBusHarness, "prove", 4, REGISTER_BUS_PROPERTIES),
    FormalJob("axil_register_bus_cover", RegisterBusHarness, "cover", 8, ("every Cover of the proof is reachable",)),
    FormalJob("axil_register_bus_mutant_bvalid_drop", lambda: RegisterBusHarness(BvalidDroppedWhileStalled), "prove",
              4, ("mutation: BVALID dropped after one cycle with BREADY low; the proof above must fail",),
              expect="FAIL"),
    *(FormalJob(f"axil_bridge_{direction}s_prove", partial(BridgeHarness, direction), "prove", BRIDGE_PROVE_DEPTH,
                (f"{direction}s only (the other direction idle; the two paths share no state)", *BRIDGE_PROPERTIES))
      for direction in ("write", "read")),
    *(FormalJob(f"axil_bridge_{direction}s_cover", partial(BridgeHarness, direction), "cover", 8,
                (f"every Cover of the {direction} path is reachable",))
      for direction in ("write", "read")),
    FormalJob("instance_registers_prove", InstanceRegistersHarness, "prove", 4, INSTANCE_REGISTERS_PROPERTIES),
    FormalJob("instance_registers_cover", InstanceRegistersHarness, "cover", 8, ("every Cover is reachable",)),
    FormalJob("instance_registers_unmapped_writes_bmc", lambda: InstanceRegistersHarness(writes_unmapped_only=True),
              "bmc", 12, INSTANCE_UNMAPPED_WRITE_PROPERTIES),
    FormalJob("kernel_control_prove", KernelControlHarness, "prove", 4, KERNEL_CONTROL_PROPERTIES),
    FormalJob("kernel_control_cover", KernelControlHarness, "cover", 8, ("every Cover is reachable",)),
    FormalJob("kernel_control_unmapped_writes_bmc", lambda: KernelControlHarness(writes_unmapped_only=True), "bmc",
              12, KERNEL_CONTROL_UNMAPPED_WRITE_PROPERTIES),
]  # fmt: skip
