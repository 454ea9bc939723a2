"""Zero-value prediction: the anchors' hot flags, and the pass that turns them into phase B's work.

The rule (rtl/README.md, section 8): with ZP_EN the uncompressed anchors of the pattern are computed
first (phase A); every other uncompressed output is predicted 0 when no anchor within one row and one
column of it is hot (value above ZP_MAX), and computed otherwise (phase B). A compressed anchor's
value is its average.

Anchors of both patterns sit, in row y, at the columns of parity y % 2 (GRID2 has none in odd rows),
so per-anchor state lives in *anchor slots*: row y, slot s = column 2s + y % 2, 64 rows x 32 slots,
stored 4 rows (128 slots) per memory word like the dilate pass reads them.

* `AvgHotFlags`: "average > ZP_MAX" of every anchor slot, a 16 x 128 LUTRAM written from AVG writes
  and, after a ZP_MAX change (`restart`), by an engine that rereads the AVG memories 8 averages per
  cycle (`REFRESH_CYCLES` = 512) while `busy` holds off the compute start of prediction frames. The
  engine yields the memory's one write port to the bus: a pair whose write-back meets a bus AVG
  write is read again, and it never reads in a cycle the bus writes AVG, so no stale flag lands.
* `ZeroPredictor`: phase A's results, in raster order, build each row's 32 hot flags in a register
  that is written through to a 16 x 128 LUTRAM (a row with no computed anchor keeps old flags, but
  then all its anchors are compressed and their averages count instead). After the last result the
  dilate pass reads 4 rows per cycle of the three memories (mask, averages, hot flags), keeps a
  one-row line buffer on each side, and writes per 4 rows: phase B's issue bits (uncompressed
  non-anchors next to a hot anchor) into a 16 x 256 LUTRAM the scanner reads in phase B, their group
  flags and per-row summary, and the predicted-zero map (uncompressed non-anchors next to none) for
  the drain; a pipelined popcount of the map gives LAST_PREDICTED.
"""
from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.hw import spec
from model.hw.spec import GROUPS_PER_ROW, INDEX_BITS, PIXELS_PER_BEAT, REG, ZP_CHECKER, H, W
from rtl.bits import decoded
from rtl.mask_flags import LINE_ROWS, LINES  # the dilate pass's lines: 4 rows per memory word

SLOTS_PER_ROW = W // 2
LINE_SLOTS = LINE_ROWS * SLOTS_PER_ROW  # 128
LINE_BITS = LINE_ROWS * W  # 256
LINE_GROUPS = LINE_ROWS * GROUPS_PER_ROW  # 32


def slots_of_row(bits, row_parity: int):
    """The 32 anchor-slot bits of a 64-bit row of outputs (the columns of the row's anchor parity)."""
    return Cat(bits[2 * s + row_parity] for s in range(SLOTS_PER_ROW))


def _over(data, zp_max, count: int):
    return Cat(data[8 * k : 8 * k + 8] > zp_max for k in range(count))


class AvgHotFlags(wiring.Component):
    """`avg > ZP_MAX` of every anchor slot, kept up to date on AVG writes and refreshed after `restart`."""

    REFRESH_CYCLES = REG["AVG"].count // 2  # word pairs: 8 averages per cycle from the two AVG memories

    def __init__(self):
        super().__init__({
            "zp_max": In(8),
            "restart": In(1),  # ZP_MAX may have changed: reread every average
            "wr_en": In(1),  # an AVG word is written by the bus
            "wr_word": In(range(REG["AVG"].count)),
            "wr_data": In(32),
            "wr_strb": In(4),
            "rd_addr": Out(range(self.REFRESH_CYCLES)),  # word pair: word 2i in memory 0, 2i+1 in 1
            "rd_en": Out(1),
            "rd_data": In(64),  # memory 1's word above memory 0's, one cycle after rd_en
            "busy": Out(1),
            "line_addr": In(range(LINES)),
            "line_en": In(1),
            "line": Out(LINE_SLOTS),  # flags of the anchor slots of rows 4·line_addr .. +3, one cycle later
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        flags = Memory(shape=unsigned(LINE_SLOTS), depth=LINES, init=[])
        m.submodules.flags = flags
        write, read = flags.write_port(granularity=1), flags.read_port()
        m.d.comb += [read.addr.eq(self.line_addr), read.en.eq(self.line_en), self.line.eq(read.data)]

        # Refresh engine: read a pair, register the data, write its 4 slot flags back.
        running = Signal()
        index = Signal(range(self.REFRESH_CYCLES))
        read_valid = Signal()  # a pair was read last cycle
        read_index = Signal.like(index)
        back_valid = Signal()  # its data, registered
        back_index = Signal.like(index)
        back_data = Signal(64)
        fetch = running & ~self.wr_en
        m.d.comb += [self.rd_addr.eq(index), self.rd_en.eq(fetch), self.busy.eq(running)]
        m.d.sync += [read_valid.eq(fetch), read_index.eq(index), back_valid.eq(read_valid), back_index.eq(read_index)]
        with m.If(read_valid):
            m.d.sync += back_data.eq(self.rd_data)
        with m.If(fetch):
            m.d.sync += index.eq(index + 1)
            with m.If(index == self.REFRESH_CYCLES - 1):
                m.d.sync += running.eq(0)
        with m.If(back_valid & self.wr_en):  # the write port is the bus's: read this pair again
            m.d.sync += [index.eq(back_index), running.eq(1), read_valid.eq(0), back_valid.eq(0)]
        with m.If(self.restart):
            m.d.sync += [running.eq(1), index.eq(0), read_valid.eq(0), back_valid.eq(0)]

        # A pair (8 outputs of row i >> 3) holds 4 anchor slots; a word (4 outputs of row i >> 4) 2.
        pair_over = Signal(8)
        pair_flags = Signal(4)
        word_over = Signal(4)
        word_flags = Signal(2)
        word_strobes = Signal(2)
        m.d.comb += [
            pair_over.eq(_over(back_data, self.zp_max, 8)),
            pair_flags.eq(Mux(back_index[3], pair_over[1::2], pair_over[0::2])),  # the row's anchor parity
            word_over.eq(_over(self.wr_data, self.zp_max, 4)),
            word_flags.eq(Mux(self.wr_word[4], word_over[1::2], word_over[0::2])),
            word_strobes.eq(Mux(self.wr_word[4], self.wr_strb[1::2], self.wr_strb[0::2])),
        ]
        with m.If(self.wr_en):
            m.d.comb += [
                write.addr.eq(self.wr_word[6:]),
                write.data.eq(word_flags.replicate(LINE_SLOTS // 2)),
                write.en.eq(decoded(self.wr_word[:6], LINE_SLOTS // 2, word_strobes)),
            ]
        with m.Elif(back_valid):
            m.d.comb += [
                write.addr.eq(back_index[5:]),
                write.data.eq(pair_flags.replicate(LINE_SLOTS // 4)),
                write.en.eq(decoded(back_index[:5], LINE_SLOTS // 4, Const(0xF, 4))),
            ]
        return m


class ZeroPredictor(wiring.Component):
    """Hot flags of phase A's anchors and the dilate pass (module docstring)."""

    # Dilate pass, in cycles after `dilate_start`: line L is read at 1 + L, its anchors' hot flags are
    # registered at 2 + L, its issue bits and map written at 3 + L, its group flags at 4 + L.
    FLAGS_READY = LINES + 4  # `rows_b` and the group flags are complete: phase B may start
    COUNT_READY = LINES + 5  # `predicted` is final (popcount: per group, per 8 groups, accumulate)

    def __init__(self):
        super().__init__({
            "pattern": In(REG["ZP_CONFIG"].field("PATTERN").width),
            "zp_max": In(8),
            "skip_en": In(1),
            "clear": In(1),  # phase A starts
            "result_valid": In(1),  # an anchor's result leaves the MAC pipeline (raster order)
            "result_index": In(INDEX_BITS),
            "result_pixel": In(8),
            "dilate_start": In(1),  # every result of phase A is in
            "line_addr": Out(range(LINES)),  # read of the mask and average-flag lines
            "line_en": Out(1),
            "mask_line": In(LINE_BITS),  # one cycle after line_en
            "late_addr": Out(range(LINES)),  # the mask line again, for the stage that needs it whole
            "late_mask_line": In(LINE_BITS),  # same cycle
            "avg_line": In(LINE_SLOTS),
            "map_write": Out(1),  # predicted-zero map word `map_addr` (4 rows)
            "map_addr": Out(range(LINES)),
            "map_data": Out(LINE_BITS),
            "rows_b": Out(H),  # rows with phase-B work
            "b_row": In(range(H)),
            "b_flags": Out(GROUPS_PER_ROW),  # groups of row `b_row` with phase-B work, same cycle
            "b_group": In(range(spec.N_GROUPS)),
            "b_read": In(1),
            "b_bits": Out(PIXELS_PER_BEAT),  # phase-B issue bits of `b_group`, one cycle after `b_read`
            "predicted": Out(range(spec.N_OUTPUTS + 1)),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        hot = Memory(shape=unsigned(LINE_SLOTS), depth=LINES, init=[])
        m.submodules.hot = hot
        self._collect_hot(m, hot.write_port(granularity=SLOTS_PER_ROW))
        hot_read = hot.read_port()
        issue_b = Memory(shape=unsigned(LINE_BITS), depth=LINES, init=[])
        flags_b = Memory(shape=unsigned(LINE_GROUPS), depth=LINES, init=[])
        m.submodules.issue_b, m.submodules.flags_b = issue_b, flags_b

        # Line reads: one per cycle for LINES cycles after `dilate_start`.
        reading = Signal()
        read_line = Signal(range(LINES))
        with m.If(self.dilate_start):
            m.d.sync += [reading.eq(1), read_line.eq(0)]
        with m.Elif(reading):
            m.d.sync += read_line.eq(read_line + 1)
            with m.If(read_line == LINES - 1):
                m.d.sync += reading.eq(0)
        m.d.comb += [self.line_addr.eq(read_line), self.line_en.eq(reading),
                     hot_read.addr.eq(read_line), hot_read.en.eq(reading)]  # fmt: skip

        # Stage 1 (data back): hot flags of the line's anchors; registered with the mask line.
        fresh_anchors = Signal(LINE_SLOTS)
        m.d.comb += fresh_anchors.eq(self._hot_anchors(self.mask_line, self.avg_line, hot_read.data))
        loaded = Signal()
        line1 = Signal(range(LINES))
        anchors1 = Signal(LINE_SLOTS)
        above = Signal(SLOTS_PER_ROW)
        m.d.sync += [loaded.eq(reading), line1.eq(read_line)]
        with m.If(loaded):
            m.d.sync += anchors1.eq(fresh_anchors)
        # Stage 2: rows 4L-1 .. 4L+4 are at hand (the row below is line L+1's first, arriving now).
        below = Mux(loaded, fresh_anchors[:SLOTS_PER_ROW], 0)
        processing = Signal()
        line2 = Signal(range(LINES))
        m.d.sync += [processing.eq(loaded), line2.eq(line1)]
        m.d.comb += self.late_addr.eq(line2)
        with m.If(self.dilate_start):
            m.d.sync += above.eq(0)
        with m.Elif(processing):
            m.d.sync += above.eq(anchors1[3 * SLOTS_PER_ROW :])
        slot_rows = [above] + [anchors1[r * SLOTS_PER_ROW : (r + 1) * SLOTS_PER_ROW] for r in range(LINE_ROWS)] + [below]
        near_hot = Signal(LINE_BITS)
        open_ = Signal(LINE_BITS)
        m.d.comb += [near_hot.eq(self._near_hot(slot_rows)),
                     open_.eq(~(self.late_mask_line & self.skip_en.replicate(LINE_BITS)) & ~self._anchor_positions())]  # fmt: skip
        issue_bits = Signal(LINE_BITS)
        predicted_bits = Signal(LINE_BITS)
        m.d.comb += [issue_bits.eq(open_ & near_hot), predicted_bits.eq(open_ & ~near_hot)]
        issue_write = issue_b.write_port()
        m.d.comb += [
            issue_write.addr.eq(line2), issue_write.data.eq(issue_bits), issue_write.en.eq(processing),
            self.map_write.eq(processing), self.map_addr.eq(line2), self.map_data.eq(predicted_bits),
        ]  # fmt: skip
        # Stage 3: the issue bits' group flags (registered) to the scanner's memory and row summary.
        flagging = Signal()
        line3 = Signal(range(LINES))
        group_flags = Signal(LINE_GROUPS)
        m.d.sync += [flagging.eq(processing), line3.eq(line2)]
        with m.If(processing):
            m.d.sync += group_flags.eq(Cat(issue_bits[8 * g : 8 * g + 8].any() for g in range(LINE_GROUPS)))
        flags_write = flags_b.write_port()
        m.d.comb += [flags_write.addr.eq(line3), flags_write.data.eq(group_flags), flags_write.en.eq(flagging)]
        with m.If(flagging):
            with m.Switch(line3):
                for line in range(LINES):
                    with m.Case(line):
                        m.d.sync += self.rows_b[LINE_ROWS * line : LINE_ROWS * (line + 1)].eq(
                            Cat(group_flags[GROUPS_PER_ROW * r : GROUPS_PER_ROW * (r + 1)].any()
                                for r in range(LINE_ROWS)))  # fmt: skip
        self._count_predicted(m, processing, predicted_bits)

        # The scanner's view in phase B: a row's flags (combinational), a group's bits (next cycle).
        flags_read = flags_b.read_port(domain="comb")
        m.d.comb += [flags_read.addr.eq(self.b_row[2:]),
                     self.b_flags.eq(flags_read.data.word_select(self.b_row[:2], GROUPS_PER_ROW))]  # fmt: skip
        bits_read = issue_b.read_port()
        byte = Signal(range(LINE_GROUPS))
        with m.If(self.b_read):
            m.d.sync += byte.eq(self.b_group[:5])
        m.d.comb += [bits_read.addr.eq(self.b_group[5:]), bits_read.en.eq(self.b_read),
                     self.b_bits.eq(bits_read.data.word_select(byte, PIXELS_PER_BEAT))]  # fmt: skip
        return m

    def _collect_hot(self, m, write):
        """A row's hot flags accumulate in a register as its results arrive, written through."""
        row = Signal(range(H))
        flags = Signal(SLOTS_PER_ROW)
        valid = Signal()
        y, slot = self.result_index[6:], self.result_index[1:6]
        merged = Signal(SLOTS_PER_ROW)
        m.d.comb += merged.eq(Mux(valid & (row == y), flags, 0)
                              | Mux(self.result_pixel > self.zp_max, decoded(slot, SLOTS_PER_ROW), 0))
        m.d.comb += [
            write.addr.eq(y[2:]),
            write.data.eq(merged.replicate(LINE_ROWS)),
            write.en.eq(Mux(self.result_valid, decoded(y[:2], LINE_ROWS), 0)),
        ]
        with m.If(self.result_valid):
            m.d.sync += [row.eq(y), flags.eq(merged), valid.eq(1)]
        with m.If(self.clear):
            m.d.sync += valid.eq(0)

    def _has_anchors(self, row_parity: int):
        return (self.pattern == ZP_CHECKER) | (row_parity == 0)

    def _hot_anchors(self, mask_line, avg_line, hot_line):
        """Per anchor slot of a line: hot (its average if compressed, its result if computed)."""
        rows = []
        for r in range(LINE_ROWS):
            compressed = slots_of_row(mask_line[W * r : W * (r + 1)], r % 2) & self.skip_en.replicate(SLOTS_PER_ROW)
            avg, hot = (v[SLOTS_PER_ROW * r : SLOTS_PER_ROW * (r + 1)] for v in (avg_line, hot_line))
            rows.append(Mux(self._has_anchors(r % 2), compressed & avg | ~compressed & hot, 0))
        return Cat(*rows)

    def _anchor_positions(self):
        """The anchors of a line as output bits (rows 4L .. 4L+3 have the parities 0, 1, 0, 1)."""
        rows = []
        for r in range(LINE_ROWS):
            parity_bits = sum(1 << (2 * s + r % 2) for s in range(SLOTS_PER_ROW))
            rows.append(Mux(self._has_anchors(r % 2), Const(parity_bits, W), 0))
        return Cat(*rows)

    @staticmethod
    def _near_hot(slot_rows):
        """Rows 1..4 of `slot_rows` (6 rows of 32 slot flags, row parities 1, 0, 1, 0, 1, 0) dilated 3x3."""
        def positions(slots, parity):
            return Cat(*(slots[x // 2] if x % 2 == parity else Const(0, 1) for x in range(W)))

        spread = []
        for i, slots in enumerate(slot_rows):
            p = positions(slots, (i + 1) % 2)
            spread.append(p | (p << 1)[:W] | (p >> 1))
        return Cat(*(spread[i - 1] | spread[i] | spread[i + 1] for i in range(1, LINE_ROWS + 1)))

    def _count_predicted(self, m, valid, bits):
        """`predicted` += popcount(bits) over three registered stages (group, 8 groups, accumulate)."""
        group_counts = Signal(4 * LINE_GROUPS)
        valid_a = Signal()
        valid_b = Signal()
        partial = [Signal(7, name=f"predicted_part{i}") for i in range(LINE_GROUPS // 8)]
        m.d.sync += [valid_a.eq(valid), valid_b.eq(valid_a)]
        with m.If(valid):
            m.d.sync += group_counts.eq(Cat(sum(bits[8 * g + i] for i in range(8))[:4] for g in range(LINE_GROUPS)))
        with m.If(valid_a):
            m.d.sync += [p.eq(sum(group_counts[4 * (8 * i + g) : 4 * (8 * i + g) + 4] for g in range(8)))
                         for i, p in enumerate(partial)]  # fmt: skip
        with m.If(valid_b):
            m.d.sync += self.predicted.eq(self.predicted + sum(partial))
        with m.If(self.dilate_start):
            m.d.sync += self.predicted.eq(0)
