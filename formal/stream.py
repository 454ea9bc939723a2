"""Formal proofs of velcro_conv2d's m_axis (rtl/README.md sections 2 and 5) on its drain stage.

The whole instance (4096-bit prediction vectors, large memories) is far beyond a solver, and m_axis
is driven by the drain stage alone (`rtl.drain.Drain`, the component conv2d.py instantiates), so the
harness proves the drain with everything around it free:

- the memories' read data (OFMAP, MASK, AVG, predicted-zero map) are free inputs, as are SKIP_EN and
  TREADY;
- the compute stage is a free `finish` input: it marks the next OFMAP slot finished, in slot order,
  when that slot is free, as conv2d.py's obuf_busy / obuf_ready handshake does. "A frame" below is
  such a finished slot; the load and compute stages are not part of these proofs.

The harness keeps conv2d.py's own `obuf_ready` bookkeeping (set on finish, cleared on `release`)
and counts the beats owed: 512 per finished frame, minus the beats handed over on m_axis. The
`induction:` asserts tie that bookkeeping to the drain's counters and its FIFO, so k-induction closes.
No cover reaches a TLAST: that takes 516 cycles from reset, far beyond a cover search; the liveness
proof (every owed beat comes within MAX_WAIT cycles) implies it.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from formal.job import FormalJob, hold_until_ready
from model.hw import spec
from model.hw.spec import BEATS_PER_FRAME
from rtl.conv2d import OBUF_SLOTS
from rtl.drain import OUTPUT_FIFO_DEPTH, Drain

MASK_WORD_BITS = 32
MAP_WORD_BITS = spec.N_OUTPUTS // spec.ZP_MAP_WRITE_CYCLES
BEAT_COUNT_BITS = (BEATS_PER_FRAME - 1).bit_length()
FAIR_STALL = 2  # liveness: TREADY is low for at most this many cycles in a row
# Liveness: with beats owed, one is handed over within this many cycles: a slot read, its memory data
# registered, its push into the FIFO, and FAIR_STALL cycles of TREADY low.
MAX_WAIT = FAIR_STALL + 3


class DrainHarness(wiring.Component):
    """`Drain` between a free compute stage and a free m_axis sink (module docstring).

    `check`: "safety" (the m_axis rules) or "liveness" (under fair backpressure).
    """

    def __init__(self, check: str = "safety"):
        self.check = check
        super().__init__({
            "finish": In(1), "finish_zp": In(1), "skip_en": In(1), "tready": In(1),
            "obuf_data": In(spec.BEAT_BITS), "mask_data": In(MASK_WORD_BITS), "avg_data": In(spec.BEAT_BITS),
            "map_data": In(MAP_WORD_BITS),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        m.submodules.drain = drain = Drain(OBUF_SLOTS, MASK_WORD_BITS, MAP_WORD_BITS)
        axis = drain.m_axis
        ready = Signal(OBUF_SLOTS)  # conv2d.py's obuf_ready
        slot_zp = Signal(OBUF_SLOTS)
        fill = Signal(range(OBUF_SLOTS))  # the slot the compute stage finishes next
        m.d.comb += [
            drain.skip_en.eq(self.skip_en), drain.slot_ready.eq(ready), drain.slot_zp.eq(slot_zp),
            drain.obuf_data.eq(self.obuf_data), drain.mask_data.eq(self.mask_data),
            drain.avg_data.eq(self.avg_data), drain.map_data.eq(self.map_data), axis.tready.eq(self.tready),
            Assume(~self.finish | ~ready.bit_select(fill, 1)),
        ]  # fmt: skip
        with m.If(self.finish):
            m.d.sync += [
                ready.bit_select(fill, 1).eq(1),
                slot_zp.bit_select(fill, 1).eq(self.finish_zp),
                fill.eq(Mux(fill == OBUF_SLOTS - 1, 0, fill + 1)),
            ]
        with m.If(drain.release):
            m.d.sync += ready.bit_select(drain.slot, 1).eq(0)

        take = axis.tvalid & axis.tready
        out_beat = Signal(BEAT_COUNT_BITS)  # beats handed over, modulo a frame
        owed = Signal(range(OBUF_SLOTS * BEATS_PER_FRAME + OUTPUT_FIFO_DEPTH + 2))
        m.d.sync += [
            out_beat.eq(out_beat + take),
            owed.eq(owed + Mux(self.finish, BEATS_PER_FRAME, 0) - take),
        ]
        self._invariants(m, drain, ready, fill, out_beat, owed)
        if self.check == "liveness":
            self._liveness(m, drain, axis, take, owed)
        else:
            self._safety(m, drain, axis, take, out_beat, owed)
        return m

    def _safety(self, m, drain, axis, take, out_beat, owed):
        waited = hold_until_ready(m, Assert, axis.tvalid, axis.tready, [axis.tdata, axis.tlast], "m_axis")
        with m.If(axis.tvalid):
            m.d.comb += Assert(axis.tlast == (out_beat == BEATS_PER_FRAME - 1), "TLAST on every 512th beat only")
        m.d.comb += [
            Assert(~take | (owed != 0), "no beat handed over that a finished frame did not produce"),
            Assert(~drain.pending[1] | (drain.fifo_level != OUTPUT_FIFO_DEPTH), "no merged beat dropped"),
            Cover(waited & take),
            Cover(drain.fifo_level == OUTPUT_FIFO_DEPTH),
        ]

    def _liveness(self, m, drain, axis, take, owed):
        stall = Signal(range(FAIR_STALL + 1))  # cycles in a row with TREADY low
        wait = Signal(range(MAX_WAIT + 2))  # cycles with beats owed and none handed over
        m.d.sync += [
            stall.eq(Mux(axis.tready, 0, stall + 1)),
            wait.eq(Mux(take | (owed == 0), 0, wait + 1)),
        ]
        m.d.comb += [
            Assume(axis.tready | (stall != FAIR_STALL)),
            Assert(wait <= MAX_WAIT, "under fair backpressure an owed beat comes within MAX_WAIT cycles"),
        ]
        with m.If(axis.tvalid):
            m.d.comb += Assert(wait <= stall + 3, "induction: a beat shown waits only for TREADY")
        with m.Elif(drain.pending[1]):
            m.d.comb += Assert(wait <= 2, "induction: a beat being merged was read in the first cycle owed")
        with m.Elif(drain.pending[0]):
            m.d.comb += Assert(wait <= 1, "induction: a beat being registered was read in the first cycle owed")
        with m.Else():
            m.d.comb += Assert(wait == 0, "induction: with nothing in flight an owed beat is read at once")

    def _invariants(self, m, drain, ready, fill, out_beat, owed):
        """What k-induction needs: the drain's beat counter, its FIFO and the owed count agree."""
        level, pending, pending_last = drain.fifo_level, drain.pending, drain.pending_last
        in_flight = pending[0] + pending[1]
        ready_count = Signal(range(OBUF_SLOTS + 1))
        m.d.comb += ready_count.eq(sum(ready[i] for i in range(OBUF_SLOTS)))
        in_order = Cat(ready.bit_select(_mod_slots(drain.slot + k), 1) == (k < ready_count) for k in range(OBUF_SLOTS))
        depth_bits = (OUTPUT_FIFO_DEPTH - 1).bit_length()
        m.d.comb += [
            Assert((drain.slot < OBUF_SLOTS) & (fill < OBUF_SLOTS), "induction: slot indices"),
            Assert(in_order.all() & (fill == _mod_slots(drain.slot + ready_count)),
                   "induction: finished slots are the next ones to drain, in order"),
            Assert((drain.beat == 0) | ready.bit_select(drain.slot, 1), "induction: a slot half drained is ready"),
            Assert(level + in_flight <= OUTPUT_FIFO_DEPTH, "induction: FIFO credit"),
            Assert((drain.fifo_produce - drain.fifo_consume)[:depth_bits] == level[:depth_bits],
                   "induction: FIFO pointers agree with its level"),
            Assert(drain.beat == (out_beat + level + in_flight)[:BEAT_COUNT_BITS],
                   "induction: beats read = beats handed over + in the FIFO + in flight"),
            Assert(~pending[0] | (pending_last[0] == (drain.beat == 0)), "induction: the registered beat's TLAST"),
            Assert(~pending[1] | (pending_last[1] == ((drain.beat - pending[0])[:BEAT_COUNT_BITS] == 0)),
                   "induction: the merged beat's TLAST"),
            Assert(owed == ready_count * BEATS_PER_FRAME - drain.beat + level + in_flight,
                   "induction: beats owed = beats not read yet + in the FIFO + in flight"),
        ]
        for i in range(OUTPUT_FIFO_DEPTH):
            entry = drain.fifo_entries[(drain.fifo_consume + i)[:depth_bits]]
            with m.If(i < level):
                m.d.comb += Assert(entry[spec.BEAT_BITS] == ((out_beat + i)[:BEAT_COUNT_BITS] == BEATS_PER_FRAME - 1),
                                   "induction: TLAST of each queued beat")


def _mod_slots(value):
    """value modulo OBUF_SLOTS, for value < 2 * OBUF_SLOTS."""
    return Mux(value >= OBUF_SLOTS, (value - OBUF_SLOTS).as_unsigned(), value)


_SAFETY = (
    "m_axis TVALID/TDATA/TLAST stable while TVALID & ~TREADY",
    "TLAST exactly on every 512th beat handed over",
    "no beat handed over beyond 512 per finished frame (no beat without a frame)",
    "no merged beat dropped at the output FIFO",
)
_LIVENESS = (
    f"with TREADY low at most {FAIR_STALL} cycles in a row, a beat owed by a finished frame is handed over "
    f"within {MAX_WAIT} cycles: with the two above, each frame yields exactly 512 beats, TLAST on the last",
)

JOBS = [
    FormalJob("stream_drain_prove", DrainHarness, "prove", 3, _SAFETY),
    FormalJob("stream_drain_liveness_prove", lambda: DrainHarness("liveness"), "prove", 3, _LIVENESS),
    FormalJob("stream_drain_cover", DrainHarness, "cover", 12, ("reachable: a stall then a handshake, a full "
              "output FIFO",)),
]
