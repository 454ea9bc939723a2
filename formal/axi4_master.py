"""Formal proofs of the kernel's AXI4 master (rtl/axi4_master.py, rtl/README.md section 9 "Memory side").

The harnesses drive `BurstReader` / `BurstWriter` from free inputs: the command stream, the data
consumer or producer, and a subordinate that is free within the AXI4 rules (no R beat without an
outstanding read burst, RLAST on its burst's last beat, no B before its burst's last W beat, VALID
and payload held until READY). Commands carry 8-byte aligned addresses: the kernel refuses other
buffers before it moves data (rtl/README.md section 9, "One start").

k-induction needs invariants that tie the design's own state to the harness's bookkeeping (outstanding
bursts, the write burst queue's level, the issue address, the `active` flag beside the beat count).
Those signals are not ports, so the harness elaborates the design itself and picks them out of the
fragment by name (`_driven_signals`).
The write burst queue's contents are a memory, which the harness cannot state invariants about, so
"WLAST exactly on beat AWLEN" is bounded model checking; everything else is proved.
"""
from __future__ import annotations

from amaranth import Array, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover, Fragment
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from formal.job import FormalJob, hold_until_ready
from model.hw import spec
from rtl.axi4_master import (
    BEAT_BYTES, BEATS_WIDTH, INCR, LEN_WIDTH, MAX_OUTSTANDING, SIZE, BurstReader, BurstWriter,
)  # fmt: skip

BOUNDARY = spec.GMEM_BURST_BOUNDARY
OFFSET_BITS = (BOUNDARY - 1).bit_length()
ALIGN_BITS = (BEAT_BYTES - 1).bit_length()
COUNT = range(MAX_OUTSTANDING + 2)  # room for one burst too many, so a broken bound shows


def _driven_signals(fragment: Fragment) -> dict:
    """Name -> signal of everything the fragment's own statements drive."""
    return {signal.name: signal for statements in fragment.statements.values()
            for statement in statements for signal in statement._lhs_signals()}  # fmt: skip


def _subfragment(fragment: Fragment, name: str) -> Fragment:
    return next(sub for sub, sub_name, _ in fragment.subfragments if sub_name == name)


class _LengthQueue:
    """The harness's record of the burst lengths (AxLEN + 1) in the order their addresses were issued."""

    def __init__(self, m: Module, push, length, pop):
        self.entries = Array(Signal(LEN_WIDTH + 1, name=f"len{i}", init=1) for i in range(MAX_OUTSTANDING + 1))
        self.head = Signal(range(MAX_OUTSTANDING + 1), name="len_head")
        self.tail = Signal(range(MAX_OUTSTANDING + 1), name="len_tail")
        self.head_length = self.entries[self.head]
        with m.If(push):
            m.d.sync += [self.entries[self.tail].eq(length), self.tail.eq(_wrap(self.tail))]
        with m.If(pop):
            m.d.sync += self.head.eq(_wrap(self.head))


def _wrap(index):
    return Mux(index == MAX_OUTSTANDING, 0, index + 1)


def _address_rules(m: Module, valid, ready, addr, length, size, burst, channel: str, remaining) -> None:
    """AxVALID and the address payload held until AxREADY; the burst inside one 4 KB page; full-width
    INCR beats; 8-byte aligned addresses. Covers: a stall, and a transfer cut at a 4 KB boundary."""
    waited = hold_until_ready(m, Assert, valid, ready, [addr, length], channel)
    beats = length + 1
    end = addr[:OFFSET_BITS] + (beats << SIZE)
    with m.If(valid):
        m.d.comb += Assert(end <= BOUNDARY, f"{channel} burst crosses a 4 KB boundary")
    m.d.comb += [
        Assert((size == SIZE) & (burst == INCR), f"{channel}SIZE 3 and {channel}BURST INCR"),
        Assert(addr[:ALIGN_BITS] == 0, f"{channel}ADDR 8-byte aligned"),
        Cover(waited & valid & ready),
        Cover(valid & ready & (end == BOUNDARY) & (remaining > beats)),
    ]


def _command_assumptions(m: Module, addr) -> None:
    m.d.comb += Assume(addr[:ALIGN_BITS] == 0)


class ReaderHarness(wiring.Component):
    """BurstReader against a free command source, consumer and AXI4 read subordinate."""

    def __init__(self):
        super().__init__({
            "cmd_valid": In(1), "cmd_addr": In(spec.GMEM_ADDR_WIDTH), "cmd_beats": In(BEATS_WIDTH),
            "data_ready": In(1),
            "arready": In(1), "rvalid": In(1), "rdata": In(spec.GMEM_DATA_WIDTH), "rresp": In(2), "rlast": In(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        dut = BurstReader()
        m.submodules.dut = fragment = Fragment.get(dut, platform)
        state = _driven_signals(fragment)
        bus = dut.bus
        m.d.comb += [
            dut.cmd.valid.eq(self.cmd_valid), dut.cmd.payload.addr.eq(self.cmd_addr),
            dut.cmd.payload.beats.eq(self.cmd_beats), dut.data.ready.eq(self.data_ready),
            bus.arready.eq(self.arready), bus.rvalid.eq(self.rvalid), bus.rdata.eq(self.rdata),
            bus.rresp.eq(self.rresp), bus.rlast.eq(self.rlast),
        ]  # fmt: skip
        _command_assumptions(m, self.cmd_addr)

        ar_take = bus.arvalid & bus.arready
        r_take = bus.rvalid & bus.rready
        outstanding = Signal(COUNT)  # AR handshakes whose last R beat was not taken yet
        m.d.sync += outstanding.eq(outstanding + ar_take - (r_take & bus.rlast))
        lengths = _LengthQueue(m, ar_take, bus.arlen + 1, r_take & bus.rlast)
        r_beat = Signal(LEN_WIDTH + 1)  # beat of the oldest outstanding burst
        with m.If(r_take):
            m.d.sync += r_beat.eq(Mux(bus.rlast, 0, r_beat + 1))
        m.d.comb += [
            Assume(~bus.rvalid | (outstanding != 0)),
            Assume(~bus.rvalid | (bus.rlast == (r_beat == lengths.head_length - 1))),
        ]
        hold_until_ready(m, Assume, bus.rvalid, bus.rready, [bus.rdata, bus.rresp, bus.rlast], "R")

        _address_rules(m, bus.arvalid, bus.arready, bus.araddr, bus.arlen, bus.arsize, bus.arburst, "AR",
                       state["remaining"])
        m.d.comb += [
            Assert(outstanding <= MAX_OUTSTANDING, "at most 4 read bursts outstanding"),
            Assert(state["outstanding"] == outstanding, "induction: the reader counts the bursts the bus has"),
            Assert(state["active"] == (state["remaining"] != 0), "induction: `active` is the beat count's zero test"),
            Assert((lengths.head <= MAX_OUTSTANDING) & (lengths.tail <= MAX_OUTSTANDING), "induction: queue pointers"),
            *(Assert((entry >= 1) & (entry <= spec.GMEM_MAX_BURST_BEATS), "induction: recorded lengths")
              for entry in lengths.entries),
            Assert((lengths.tail - lengths.head + Mux(lengths.tail < lengths.head, MAX_OUTSTANDING + 1, 0))
                   == outstanding, "induction: one recorded length per outstanding burst"),
            Assert((bus.rready == dut.data.ready) & (dut.data.valid == bus.rvalid)
                   & (dut.data.payload == bus.rdata), "R passes straight to the consumer, RREADY its ready"),
            Cover(r_take & bus.rlast),
            Cover(outstanding == MAX_OUTSTANDING),
        ]
        with m.If(outstanding == 0):
            m.d.comb += Assert(r_beat == 0, "induction: no R burst half received")
        with m.Else():
            m.d.comb += Assert(r_beat < lengths.head_length, "induction: R beat inside its burst")
        return m


class WriterHarness(wiring.Component):
    """BurstWriter against a free command source, producer and AXI4 write subordinate.

    `wlast`: check WLAST against the AWLEN of each burst instead (bounded: see the module docstring).
    """

    def __init__(self, wlast: bool = False):
        self.check_wlast = wlast
        super().__init__({
            "cmd_valid": In(1), "cmd_addr": In(spec.GMEM_ADDR_WIDTH), "cmd_beats": In(BEATS_WIDTH),
            "cmd_strb": In(BEAT_BYTES), "data_valid": In(1), "data_payload": In(spec.GMEM_DATA_WIDTH),
            "awready": In(1), "wready": In(1), "bvalid": In(1), "bresp": In(2),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        dut = BurstWriter()
        m.submodules.dut = fragment = Fragment.get(dut, platform)
        state = _driven_signals(fragment)
        queue = _driven_signals(_subfragment(fragment, "bursts"))
        bus = dut.bus
        m.d.comb += [
            dut.cmd.valid.eq(self.cmd_valid), dut.cmd.payload.addr.eq(self.cmd_addr),
            dut.cmd.payload.beats.eq(self.cmd_beats), dut.cmd.payload.strb.eq(self.cmd_strb),
            dut.data.valid.eq(self.data_valid), dut.data.payload.eq(self.data_payload),
            bus.awready.eq(self.awready), bus.wready.eq(self.wready), bus.bvalid.eq(self.bvalid),
            bus.bresp.eq(self.bresp),
        ]  # fmt: skip
        _command_assumptions(m, self.cmd_addr)

        aw_take = bus.awvalid & bus.awready
        w_take = bus.wvalid & bus.wready
        b_take = bus.bvalid & bus.bready
        outstanding = Signal(COUNT)  # AW handshakes without their B response
        aw_ahead = Signal(COUNT)  # AW handshakes whose last W beat was not taken yet
        m.d.sync += [
            outstanding.eq(outstanding + aw_take - b_take),
            aw_ahead.eq(aw_ahead + aw_take - (w_take & bus.wlast)),
        ]
        # The producer keeps a beat until it is taken (an AXI4-Stream source: conv2d's m_axis,
        # formal/stream.py); the subordinate answers a burst only after its last W beat.
        hold_until_ready(m, Assume, dut.data.valid, dut.data.ready, [dut.data.payload], "data")
        hold_until_ready(m, Assume, bus.bvalid, bus.bready, [bus.bresp], "B")
        m.d.comb += Assume(~bus.bvalid | (outstanding > aw_ahead))

        if self.check_wlast:
            self._wlast(m, bus, aw_take, w_take)
            return m
        _address_rules(m, bus.awvalid, bus.awready, bus.awaddr, bus.awlen, bus.awsize, bus.awburst, "AW",
                       state["remaining"])
        hold_until_ready(m, Assert, bus.wvalid, bus.wready, [bus.wdata, bus.wstrb, bus.wlast], "W")
        m.d.comb += [
            Assert(outstanding <= MAX_OUTSTANDING, "at most 4 write bursts without B"),
            Assert(~bus.wvalid | (aw_ahead != 0), "no W beat before its burst's AW"),
            Assert(bus.bready, "BREADY always high: responses never hold W"),
            Assert(state["outstanding"] == outstanding, "induction: the writer counts the bursts the bus has"),
            Assert(state["active"] == (state["remaining"] != 0), "induction: `active` is the beat count's zero test"),
            Assert(queue["level"] == aw_ahead, "induction: one queued burst per AW ahead of its data"),
            Assert(aw_ahead <= outstanding, "induction: a burst's data completes before its B"),
            Assert((queue["produce"] - queue["consume"])[:2] == queue["level"][:2],
                   "induction: the burst queue's pointers agree with its level"),
            Cover(w_take & bus.wlast),
            Cover(b_take),
            Cover(outstanding == MAX_OUTSTANDING),
            Cover(aw_ahead == MAX_OUTSTANDING),
        ]
        with m.If(aw_ahead == 0):
            m.d.comb += Assert(state["beat"] == 0, "induction: no W burst half sent")
        return m

    def _wlast(self, m, bus, aw_take, w_take):
        """WLAST against the harness's record of AWLEN. Burst lengths depend only on the address within
        its 4 KB page and the beats left, so commands below 64 KB of at most 4,095 beats reach every
        length; that keeps the bounded search fast."""
        m.d.comb += Assume((self.cmd_addr >> 16 == 0) & (self.cmd_beats < 4096))
        lengths = _LengthQueue(m, aw_take, bus.awlen + 1, w_take & bus.wlast)
        w_beat = Signal(LEN_WIDTH + 1)  # beat of the oldest burst still sending data
        with m.If(w_take):
            m.d.sync += w_beat.eq(Mux(bus.wlast, 0, w_beat + 1))
        with m.If(bus.wvalid):
            m.d.comb += Assert(bus.wlast == (w_beat == lengths.head_length - 1),
                               "WLAST exactly on beat AWLEN of the burst (AWLEN + 1 beats)")


_READER = ("AR VALID/ADDR/LEN held until ARREADY", "no read burst crosses 4 KB; ARSIZE 3, ARBURST INCR, "
           "aligned ARADDR", "at most 4 read bursts outstanding", "RREADY is the consumer's ready, R passes "
           "straight through")
_WRITER = ("AW VALID/ADDR/LEN held until AWREADY", "no write burst crosses 4 KB; AWSIZE 3, AWBURST INCR, "
           "aligned AWADDR", "W VALID/DATA/STRB/LAST held until WREADY", "no W beat before its AW",
           "at most 4 write bursts without B", "BREADY always high")
_WLAST = ("WLAST exactly on beat AWLEN: AWLEN + 1 beats per burst",)

JOBS = [
    FormalJob("axi4_reader_prove", ReaderHarness, "prove", 4, _READER),
    FormalJob("axi4_reader_cover", ReaderHarness, "cover", 12, ("reachable: a read burst completes, a transfer "
              "cut at 4 KB, 4 bursts outstanding, an AR stall",)),
    FormalJob("axi4_writer_prove", WriterHarness, "prove", 4, _WRITER),
    FormalJob("axi4_writer_cover", WriterHarness, "cover", 14, ("reachable: a write burst completes, a B, a "
              "transfer cut at 4 KB, 4 bursts without B, AW 4 bursts ahead of W, an AW stall",)),
    FormalJob("axi4_writer_wlast_bmc", lambda: WriterHarness(wlast=True), "bmc", 8, _WLAST),
]
