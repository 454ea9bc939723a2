"""The kernel's configuration image: loaded from memory into the instance, counters written back.

The image (`spec.IMAGE_BYTES`, at the `cfg` argument) is the instance's register space laid out in
memory (rtl/README.md, section 9). `ImageMover` does the two transfers between it and the instance,
whose own AXI4-Lite port it drives, so the verified core is configured exactly as a host would:

* **load**: reads the `spec.IMAGE_LOADED` registers in that order, as `load_segments()` (registers
  that follow each other in memory share one read), and writes every word into the instance, one
  AXI4-Lite write per cycle while the memory keeps up (two per 64-bit beat; RREADY stalls R in
  between). It is done when every write has its B response.
* **save**: reads the `spec.IMAGE_WRITTEN_BACK` counters from the instance, one read at a time, then
  writes them into the image at their own addresses with single-beat writes whose byte strobes
  cover only the counters (`writeback_beats()`), so the configuration words sharing those 64-bit
  words (ZP_CONFIG beside LAST_PREDICTED) are left as they are. It is done when the last beat was
  handed to the memory writer; the kernel then waits for the writer's B responses.

Reads and writes go through the kernel's `BurstReader` / `BurstWriter` (their command and data
streams here); `base` is the image's address and must stay stable while busy.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from rtl.axi4_master import BEAT_BYTES, command_layout
from rtl.interfaces import AxiLiteSignature

WORD_BYTES = spec.AXIL_DATA_WIDTH // 8
WORDS_PER_BEAT = BEAT_BYTES // WORD_BYTES


def load_segments() -> list[tuple[int, int]]:
    """(byte offset, words) of each read the load makes, in `spec.IMAGE_LOADED` order."""
    segments: list[list[int]] = []
    for name in spec.IMAGE_LOADED:
        reg = spec.REG[name]
        if segments and segments[-1][0] + WORD_BYTES * segments[-1][1] == reg.offset:
            segments[-1][1] += reg.count
        else:
            segments.append([reg.offset, reg.count])
    for offset, _ in segments:
        if offset % BEAT_BYTES:
            raise ValueError(f"image segment at 0x{offset:x} does not start on a {BEAT_BYTES}-byte memory word")
    return [(offset, words) for offset, words in segments]


def writeback_beats() -> list[tuple[int, int, list[tuple[int, int]]]]:
    """(byte offset, byte strobes, [(word in the beat, counter index)]) of each single-beat write of
    the save, counters indexed as in `spec.IMAGE_WRITTEN_BACK`."""
    beats: dict[int, list[tuple[int, int]]] = {}
    for index, name in enumerate(spec.IMAGE_WRITTEN_BACK):
        offset = spec.REG[name].offset
        beats.setdefault(offset - offset % BEAT_BYTES, []).append((offset % BEAT_BYTES // WORD_BYTES, index))
    word_strobe = (1 << WORD_BYTES) - 1
    return [(offset, sum(word_strobe << (WORD_BYTES * w) for w, _ in words), words)
            for offset, words in sorted(beats.items())]  # fmt: skip


def _table(m: Module, index: Signal, rows: list[tuple], widths: tuple[int, ...], name: str) -> list[Signal]:
    """Columns of a constant table, selected by `index` (0 past the last row)."""
    columns = [Signal(width, name=f"{name}_{k}") for k, width in enumerate(widths)]
    with m.Switch(index):
        for i, row in enumerate(rows):
            with m.Case(i):
                m.d.comb += [column.eq(value) for column, value in zip(columns, row)]
    return columns


class ImageMover(wiring.Component):
    """Load and save of the configuration image (module docstring). `load` / `save` pulse while
    not `busy`."""

    def __init__(self):
        super().__init__({
            "base": In(spec.GMEM_ADDR_WIDTH),
            "load": In(1),
            "save": In(1),
            "busy": Out(1),
            "core": Out(AxiLiteSignature(spec.CORE_ADDR_WIDTH)),
            "read_cmd": Out(stream.Signature(command_layout())),
            "read_data": In(stream.Signature(spec.GMEM_DATA_WIDTH)),
            "write_cmd": Out(stream.Signature(command_layout(strobes=True))),
            "write_data": Out(stream.Signature(spec.GMEM_DATA_WIDTH)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        core = self.core
        segments = load_segments()
        counters = [spec.REG[name].offset for name in spec.IMAGE_WRITTEN_BACK]
        beats = writeback_beats()
        max_words = max(words for _, words in segments)

        loading, reading, writing = Signal(), Signal(), Signal()  # load; save: counter reads, image writes
        m.d.comb += self.busy.eq(loading | reading | writing)

        # ------------------------------------------------------------ load: read commands
        cmd_segment = Signal(range(len(segments) + 1))
        cmd_offset, cmd_beats = _table(m, cmd_segment, [(o, (w + 1) // WORDS_PER_BEAT) for o, w in segments],
                                       (spec.CORE_ADDR_WIDTH, max_words.bit_length()), "cmd")  # fmt: skip
        m.d.comb += [
            self.read_cmd.valid.eq(loading & (cmd_segment != len(segments))),
            self.read_cmd.payload.addr.eq(self.base + cmd_offset),
            self.read_cmd.payload.beats.eq(cmd_beats),
        ]
        with m.If(self.read_cmd.valid & self.read_cmd.ready):
            m.d.sync += cmd_segment.eq(cmd_segment + 1)

        # ------------------------------------------------------------ load: data into the instance
        segment = Signal(range(len(segments) + 1))
        word = Signal(range(max_words))
        # The address and "last word of the segment" are flip-flops, computed a word ahead, so that
        # neither the instance's AWADDR nor the R handshake waits for a table lookup and a compare.
        addr, last_word = Signal(spec.CORE_ADDR_WIDTH), Signal()
        rows = [(offset, words == 1, max(words - 2, 0)) for offset, words in segments]
        widths = (spec.CORE_ADDR_WIDTH, 1, max_words.bit_length())
        _, _, seg_penultimate = _table(m, segment, rows, widths, "seg")
        next_offset, next_single, _ = _table(m, segment + 1, rows, widths, "next")
        beat = Signal(spec.GMEM_DATA_WIDTH)
        beat_full = Signal()
        aw_sent, w_sent = Signal(), Signal()  # the instance took AW (W) of the current word already
        aw_take = core.awvalid & core.awready
        w_take = core.wvalid & core.wready
        written = (aw_sent | aw_take) & (w_sent | w_take)
        beat_done = written & (word[0] | last_word)  # segments start on a beat, so word 2k+1 ends one
        m.d.comb += [
            core.awaddr.eq(addr),
            core.awvalid.eq(beat_full & ~aw_sent),
            core.wdata.eq(beat.word_select(word[0], spec.AXIL_DATA_WIDTH)),
            core.wstrb.eq((1 << WORD_BYTES) - 1),
            core.wvalid.eq(beat_full & ~w_sent),
            core.bready.eq(1),
            self.read_data.ready.eq(loading & (segment != len(segments)) & (~beat_full | beat_done)),
        ]
        with m.If(written):
            m.d.sync += [aw_sent.eq(0), w_sent.eq(0), word.eq(Mux(last_word, 0, word + 1)),
                         addr.eq(Mux(last_word, next_offset, addr + WORD_BYTES)),
                         last_word.eq(Mux(last_word, next_single, word == seg_penultimate))]  # fmt: skip
            with m.If(last_word):
                m.d.sync += segment.eq(segment + 1)
        with m.Else():
            m.d.sync += [aw_sent.eq(aw_sent | aw_take), w_sent.eq(w_sent | w_take)]
        with m.If(self.read_data.valid & self.read_data.ready):
            m.d.sync += [beat.eq(self.read_data.payload), beat_full.eq(1)]
        with m.Elif(beat_done):
            m.d.sync += beat_full.eq(0)
        b_pending = Signal(range(4))  # writes whose B has not come back (the instance holds at most 2)
        m.d.sync += b_pending.eq(b_pending + written - (core.bvalid & core.bready))

        with m.If(self.load):
            m.d.sync += [loading.eq(1), cmd_segment.eq(0), segment.eq(0), word.eq(0), addr.eq(segments[0][0]),
                         last_word.eq(segments[0][1] == 1)]  # fmt: skip
        with m.Elif(loading & (cmd_segment == len(segments)) & (segment == len(segments)) & (b_pending == 0)):
            m.d.sync += loading.eq(0)

        # ------------------------------------------------------------ save: counters from the instance
        counter = Signal(range(len(counters) + 1))
        values = [Signal(spec.AXIL_DATA_WIDTH, name=f"counter{i}") for i in range(len(counters))]
        (counter_addr,) = _table(m, counter, [(a,) for a in counters], (spec.CORE_ADDR_WIDTH,), "counter")
        ar_sent = Signal()
        m.d.comb += [
            core.araddr.eq(counter_addr),
            core.arvalid.eq(reading & ~ar_sent),
            core.rready.eq(1),
        ]
        with m.If(core.arvalid & core.arready):
            m.d.sync += ar_sent.eq(1)
        with m.If(core.rvalid & core.rready):
            m.d.sync += [ar_sent.eq(0), counter.eq(counter + 1)]
            with m.Switch(counter):
                for i, value in enumerate(values):
                    with m.Case(i):
                        m.d.sync += value.eq(core.rdata)
            with m.If(counter == len(counters) - 1):
                m.d.sync += [reading.eq(0), writing.eq(1)]

        # ------------------------------------------------------------ save: counters into the image
        wb_cmd, wb_data = Signal(range(len(beats) + 1)), Signal(range(len(beats) + 1))
        rows = [(offset, strb) for offset, strb, _ in beats]
        wb_offset, wb_strb = _table(m, wb_cmd, rows, (spec.CORE_ADDR_WIDTH, BEAT_BYTES), "wb")
        m.d.comb += [
            self.write_cmd.valid.eq(writing & (wb_cmd != len(beats))),
            self.write_cmd.payload.addr.eq(self.base + wb_offset),
            self.write_cmd.payload.beats.eq(1),
            self.write_cmd.payload.strb.eq(wb_strb),
            self.write_data.valid.eq(writing & (wb_data != len(beats))),
        ]
        with m.Switch(wb_data):
            for i, (_, _, words) in enumerate(beats):
                with m.Case(i):
                    for w, index in words:
                        m.d.comb += self.write_data.payload.word_select(w, spec.AXIL_DATA_WIDTH).eq(values[index])
        with m.If(self.write_cmd.valid & self.write_cmd.ready):
            m.d.sync += wb_cmd.eq(wb_cmd + 1)
        with m.If(self.write_data.valid & self.write_data.ready):
            m.d.sync += wb_data.eq(wb_data + 1)
        with m.If(self.save):
            m.d.sync += [reading.eq(1), counter.eq(0), ar_sent.eq(0), wb_cmd.eq(0), wb_data.eq(0)]
        with m.Elif(writing & (wb_cmd == len(beats)) & (wb_data == len(beats))):
            m.d.sync += writing.eq(0)
        return m
