"""The drain stage of `velcro_conv2d`: finished OFMAP slots out on m_axis, one 8-pixel beat per cycle.

Slots are drained in order (0, 1, 2, 0, ...). A read (`mem_read`) takes one OFMAP word, one MASK word,
two AVG words and, for a predicting frame, one word of the predicted-zero map; the memories stay in
conv2d.py, shared with the bus and the compute stage, and their data arrives in the next cycle. There
they go straight into registers (what a BRAM's output register does: no logic behind the memories'
slow clock-to-out). In the cycle after, the beat is merged from those registers (compressed positions
take their average, predicted ones 0) and pushed into the output FIFO, with tlast on the slot's last
beat. So a beat is in flight for two cycles after its read, and a read happens only when the FIFO has
room for it and for every beat in flight: nothing is ever dropped. Four entries still sustain one beat
per cycle: under steady flow two beats are in flight and one waits in the FIFO.

The output FIFO is flip-flops that match `amaranth.lib.fifo.SyncFIFO` port for port and cycle for
cycle, so that its state is visible: formal/stream.py proves m_axis by k-induction over it.
"""
from amaranth import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from model.hw.spec import BEATS_PER_FRAME, PIXELS_PER_BEAT
from rtl.interfaces import AxiStreamSignature

OUTPUT_FIFO_DEPTH = 4


class Drain(wiring.Component):
    """Reads slot `slot` beat by beat while `slot_ready` holds it; `release` marks its last read.

    `mask_word_bits` and `map_word_bits` are the widths of a MASK word and of a predicted-zero map
    word (8 and 1 bits per pixel). The FIFO state (`fifo_entries`, `fifo_level`, `fifo_consume`) and
    the read pipeline are attributes for the formal harness: bit 0 of `pending` (and `pending_last`)
    is the beat whose memory data arrive this cycle, bit 1 the beat merged and pushed this cycle.
    """

    def __init__(self, slots: int, mask_word_bits: int, map_word_bits: int):
        self.slots = slots
        self.mask_lanes = mask_word_bits // PIXELS_PER_BEAT  # beats per MASK word
        self.map_lanes = map_word_bits // PIXELS_PER_BEAT  # beats per map word
        super().__init__({
            "skip_en": In(1),
            "slot_ready": In(slots),  # slot holds a finished OFMAP
            "slot_zp": In(slots),  # the frame in the slot predicts
            "slot": Out(range(slots)),
            "beat": Out(range(BEATS_PER_FRAME)),
            "mem_read": Out(1),  # read beat `beat` of slot `slot`: OFMAP, MASK and two AVG words
            "map_read": Out(1),  # ... and a predicted-zero map word
            "mask_addr": Out(range(BEATS_PER_FRAME // self.mask_lanes)),
            "map_addr": Out(range(BEATS_PER_FRAME // self.map_lanes)),  # map word within the slot's map
            "release": Out(1),  # this read is the slot's last: the slot is free after this cycle
            "obuf_data": In(spec.BEAT_BITS),
            "mask_data": In(mask_word_bits),
            "avg_data": In(spec.BEAT_BITS),  # the beat's 8 averages (even and odd AVG words)
            "map_data": In(map_word_bits),
            "m_axis": Out(AxiStreamSignature()),
        })  # fmt: skip
        self.pending = Signal(2)  # [0]: memories read last cycle, data arriving; [1]: registered, merged now
        self.pending_last = Signal(2)  # ... and that beat is its slot's last
        self.fifo_entries = Array(Signal(spec.BEAT_BITS + 1, name=f"fifo_entry{i}") for i in range(OUTPUT_FIFO_DEPTH))
        self.fifo_level = Signal(range(OUTPUT_FIFO_DEPTH + 1))
        self.fifo_produce = Signal(range(OUTPUT_FIFO_DEPTH))
        self.fifo_consume = Signal(range(OUTPUT_FIFO_DEPTH))

    def elaborate(self, platform):
        m = Module()
        pending, pending_last = self.pending, self.pending_last
        level = self.fifo_level
        in_flight = pending[0] + pending[1]
        # Per stage: the beat's mask byte in its MASK word, its byte in the map word, and whether its
        # frame predicts.
        lane = [Signal(range(self.mask_lanes), name=f"lane_{i}") for i in range(2)]
        map_lane = [Signal(range(self.map_lanes), name=f"map_lane_{i}") for i in range(2)]
        zp = [Signal(name=f"zp_{i}") for i in range(2)]
        m.d.comb += [
            self.mem_read.eq(self.slot_ready.bit_select(self.slot, 1) & (level + in_flight < OUTPUT_FIFO_DEPTH)),
            self.map_read.eq(self.mem_read & self.slot_zp.bit_select(self.slot, 1)),
            self.mask_addr.eq(self.beat[len(lane[0]):]),
            self.map_addr.eq(self.beat[len(map_lane[0]):]),
            self.release.eq(self.mem_read & (self.beat == BEATS_PER_FRAME - 1)),
        ]
        m.d.sync += pending.eq(Cat(self.mem_read, pending[0]))
        with m.If(self.mem_read):
            m.d.sync += [
                pending_last[0].eq(self.beat == BEATS_PER_FRAME - 1),
                lane[0].eq(self.beat[: len(lane[0])]),
                map_lane[0].eq(self.beat[: len(map_lane[0])]),
                zp[0].eq(self.slot_zp.bit_select(self.slot, 1)),
            ]
            with m.If(self.release):
                m.d.sync += [self.beat.eq(0), self.slot.eq(increment_modulo(self.slot, self.slots))]
            with m.Else():
                m.d.sync += self.beat.eq(self.beat + 1)

        # Stage 1: the memories' read data into registers; the map word only when it was read.
        obuf_q = Signal.like(self.obuf_data, reset_less=True)
        mask_q = Signal.like(self.mask_data, reset_less=True)
        avg_q = Signal.like(self.avg_data, reset_less=True)
        map_q = Signal.like(self.map_data, reset_less=True)
        with m.If(pending[0]):
            m.d.sync += [obuf_q.eq(self.obuf_data), mask_q.eq(self.mask_data), avg_q.eq(self.avg_data),
                         pending_last[1].eq(pending_last[0]), lane[1].eq(lane[0]), map_lane[1].eq(map_lane[0]),
                         zp[1].eq(zp[0])]  # fmt: skip
            with m.If(zp[0]):
                m.d.sync += map_q.eq(self.map_data)

        # Stage 2: merge.
        compressed = mask_q.word_select(lane[1], 8) & self.skip_en.replicate(8)
        predicted = map_q.word_select(map_lane[1], PIXELS_PER_BEAT) & zp[1].replicate(8)
        pixels = [
            Mux(compressed[p], avg_q[8 * p : 8 * p + 8], Mux(predicted[p], 0, obuf_q[8 * p : 8 * p + 8]))
            for p in range(PIXELS_PER_BEAT)
        ]

        # The FIFO, as SyncFIFO(depth=OUTPUT_FIFO_DEPTH) builds it: the head entry is shown whenever the
        # FIFO is not empty, and a push into a full FIFO is dropped (mem_read's credit rules that out).
        produce, consume = self.fifo_produce, self.fifo_consume
        push = pending[1] & (level != OUTPUT_FIFO_DEPTH)
        pop = (level != 0) & self.m_axis.tready
        head = self.fifo_entries[consume]
        m.d.comb += [
            self.m_axis.tvalid.eq(level != 0),
            self.m_axis.tdata.eq(head[: spec.BEAT_BITS]),
            self.m_axis.tlast.eq(head[spec.BEAT_BITS]),
        ]
        with m.If(push):
            m.d.sync += [self.fifo_entries[produce].eq(Cat(*pixels, pending_last[1])),
                         produce.eq(increment_modulo(produce, OUTPUT_FIFO_DEPTH))]  # fmt: skip
        with m.If(pop):
            m.d.sync += consume.eq(increment_modulo(consume, OUTPUT_FIFO_DEPTH))
        with m.If(push & ~pop):
            m.d.sync += level.eq(level + 1)
        with m.If(pop & ~push):
            m.d.sync += level.eq(level - 1)
        return m


def increment_modulo(index, count: int):
    """index + 1 modulo count (FIFO pointers, OFMAP slots)."""
    return Mux(index == count - 1, 0, index + 1)
