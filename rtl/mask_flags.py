"""What the compute stage needs to know about the MASK memory, kept up to date on every MASK write.

* Per group of 8 outputs, two flags: "an output at an even column is not compressed" and "... at an
  odd column". Their OR is "the group has a computed output" (a frame without prediction); one of
  them is "the group has an anchor to compute" (phase A of prediction: anchors sit at one column
  parity per row). Each is a 64 x 8 LUTRAM, one row of groups per word, read combinationally by the
  scanner's row stage (`row_addr` -> `even`, `odd`).
* Per row, the OR of each flag byte, in flip-flops (`rows_even`, `rows_odd`): the scanner loads the
  rows with work at once when a scan starts. A write recomputes its row's bit from the flags of the
  other half row (a second asynchronous read) and the bytes written.
* The mask itself, 4 rows per 256-bit word (a 16 x 256 LUTRAM): the prediction's dilate pass reads a
  word per cycle (`line_addr`, `line_en` -> `line` one cycle later), and the same word again two
  cycles later (`late_addr` -> `late_line`, combinationally from a second copy: cheaper than
  carrying 256 bits through a register).

After reset the flags describe an all-zero mask, as the memories do in simulation; a driver writes
the whole MASK anyway (rtl/README.md, section 4).
"""
from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.hw.spec import GROUPS_PER_ROW, REG, ZP_MAP_ROWS_PER_CYCLE, ZP_MAP_WRITE_CYCLES, H, W
from rtl.bits import decoded

WORDS_PER_ROW = W // 32  # MASK words per row
LINE_ROWS = ZP_MAP_ROWS_PER_CYCLE  # rows per word of the dilate pass's copy
LINES = ZP_MAP_WRITE_CYCLES
EVEN_COLUMNS = 0x55  # bit j of a mask byte is column 8g + j: even j, even column
ODD_COLUMNS = 0xAA


def flag_bytes_of_word(data, strobe_bits: int = 4):
    """(even flags, odd flags) of the 4 bytes of a MASK word: a 0 (uncompressed) at that parity."""
    even = Cat(((~data[8 * k : 8 * k + 8]) & EVEN_COLUMNS).any() for k in range(strobe_bits))
    odd = Cat(((~data[8 * k : 8 * k + 8]) & ODD_COLUMNS).any() for k in range(strobe_bits))
    return even, odd


class MaskFlags(wiring.Component):
    def __init__(self):
        super().__init__({
            "wr_en": In(1),  # a MASK word is written
            "wr_word": In(range(REG["MASK"].count)),
            "wr_data": In(32),
            "wr_strb": In(4),
            "row_addr": In(range(H)),
            "even": Out(GROUPS_PER_ROW),  # flags of row `row_addr`, same cycle
            "odd": Out(GROUPS_PER_ROW),
            "rows_even": Out(H, init=(1 << H) - 1),
            "rows_odd": Out(H, init=(1 << H) - 1),
            "line_addr": In(range(LINES)),
            "line_en": In(1),
            "line": Out(LINE_ROWS * W),  # mask bits of rows 4·line_addr .. +3, one cycle after line_en
            "late_addr": In(range(LINES)),
            "late_line": Out(LINE_ROWS * W),  # the same of `late_addr`, same cycle (a second LUTRAM copy)
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        row, half = self.wr_word[1:], self.wr_word[0]
        new_even = Signal(4)
        new_odd = Signal(4)
        lanes = Signal(GROUPS_PER_ROW)
        m.d.comb += [Cat(new_even, new_odd).eq(Cat(*flag_bytes_of_word(self.wr_data))),
                     lanes.eq(Mux(half, Cat(Const(0, 4), self.wr_strb), Cat(self.wr_strb, Const(0, 4))))]  # fmt: skip
        for name, new, rows_any in (("even", new_even, self.rows_even), ("odd", new_odd, self.rows_odd)):
            mem = Memory(shape=unsigned(GROUPS_PER_ROW), depth=H, init=[(1 << GROUPS_PER_ROW) - 1] * H)
            m.submodules[f"{name}_flags"] = mem
            write, scan, update = mem.write_port(granularity=1), mem.read_port(domain="comb"), mem.read_port(domain="comb")
            m.d.comb += [
                write.addr.eq(row), write.data.eq(Cat(new, new)), write.en.eq(Mux(self.wr_en, lanes, 0)),
                scan.addr.eq(self.row_addr), getattr(self, name).eq(scan.data),
                update.addr.eq(row),
            ]  # fmt: skip
            row_any = Signal(name=f"{name}_row_any")  # the written row's flags after the write
            m.d.comb += row_any.eq(Cat(Mux(lanes[k], Cat(new, new)[k], update.data[k]) for k in range(GROUPS_PER_ROW)).any())
            with m.If(self.wr_en):
                with m.Switch(row):
                    for r in range(H):
                        with m.Case(r):
                            m.d.sync += rows_any[r].eq(row_any)

        lines = Memory(shape=unsigned(LINE_ROWS * W), depth=LINES, init=[])
        m.submodules.lines = lines
        write, read, late = lines.write_port(granularity=8), lines.read_port(), lines.read_port(domain="comb")
        words_per_line = LINE_ROWS * WORDS_PER_ROW
        word_in_line = self.wr_word[: (words_per_line - 1).bit_length()]
        m.d.comb += [
            write.addr.eq(self.wr_word[(words_per_line - 1).bit_length():]),
            write.data.eq(self.wr_data.replicate(words_per_line)),
            write.en.eq(Mux(self.wr_en, decoded(word_in_line, words_per_line, self.wr_strb), 0)),
            read.addr.eq(self.line_addr), read.en.eq(self.line_en), self.line.eq(read.data),
            late.addr.eq(self.late_addr), self.late_line.eq(late.data),
        ]  # fmt: skip
        return m
