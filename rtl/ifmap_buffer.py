"""Double-buffered IFMAP storage that reads any 3x3 window in one cycle.

Pixels arrive as 8-pixel beats (one 64-bit word of a row). The frame is spread over 8 banks:
row mod 4 (the three window rows always fall in three different banks) times word parity (the
window's columns x-1..x+1 span at most two neighbouring words, one even and one odd). Each bank
holds both frame slots, so one frame loads while the previous one is being computed.

Latency: `rd_en` at cycle t -> `window` valid (registered) at t + LATENCY, LATENCY = 3 =
`spec.WINDOW_READ_LATENCY`: bank read; the read data registered as they leave the banks (what a
BRAM's output register does, so no logic sits behind the memories' slow clock-to-out), together
with each window pixel's source; then the window register takes one byte select per pixel. Every
register is loaded only when a read was issued, so idle cycles leave them unchanged.
"""
from amaranth import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.hw import spec
from model.hw.spec import BEATS_PER_FRAME, H, K, PIXELS_PER_BEAT, TAPS, W

ROW_BANKS = 4
WORDS_PER_ROW = W // PIXELS_PER_BEAT  # 8
BANK_DEPTH = 2 * (H // ROW_BANKS) * (WORDS_PER_ROW // 2)  # 2 slots x 16 rows x 4 words = 128


class IfmapWindowBuffer(wiring.Component):
    LATENCY = spec.WINDOW_READ_LATENCY
    _STAGES = 3  # what elaborate builds: bank read, read data registered, window select

    def __init__(self):
        if self.LATENCY != self._STAGES:
            raise ValueError(f"the contract's WINDOW_READ_LATENCY is {self.LATENCY}; this buffer has {self._STAGES}")
        if (H, W, K, PIXELS_PER_BEAT) != (64, 64, 3, 8):  # the address bit slices below are written for it
            raise ValueError(f"this bank layout is written for 64x64 maps, 3x3 windows and 8-pixel beats, "
                             f"not {H}x{W}, {K}x{K}, {PIXELS_PER_BEAT}")
        super().__init__(
            {
                "wr_en": In(1),
                "wr_slot": In(1),
                "wr_beat": In(range(BEATS_PER_FRAME)),
                "wr_data": In(spec.BEAT_BITS),
                "rd_en": In(1),
                "rd_slot": In(1),
                "rd_y": In(range(H)),
                "rd_x": In(range(W)),
                "window": Out(unsigned(8)).array(TAPS),
            }
        )

    @staticmethod
    def _address(slot, row, word):
        return Cat(word[1:3], row[2:6], slot)

    def elaborate(self, platform):
        m = Module()
        banks = {}
        for rb in range(ROW_BANKS):
            for par in range(2):
                mem = Memory(shape=unsigned(spec.BEAT_BITS), depth=BANK_DEPTH, init=[])
                m.submodules[f"bank_r{rb}_w{par}"] = mem
                banks[rb, par] = (mem.write_port(), mem.read_port())

        # Write side: beat b is row b>>3, word b&7.
        wr_row = self.wr_beat[3:9]
        wr_word = self.wr_beat[0:3]
        for (rb, par), (wp, _) in banks.items():
            m.d.comb += [
                wp.addr.eq(self._address(self.wr_slot, wr_row, wr_word)),
                wp.data.eq(self.wr_data),
                wp.en.eq(self.wr_en & (wr_row[0:2] == rb) & (wr_word[0] == par)),
            ]

        # Read side: window rows y-1, y, y+1 and the words holding columns x-1 .. x+1.
        y = self.rd_y
        word = self.rd_x[3:6]
        offset = self.rd_x[0:3]
        other_word = Signal(4)  # may be -1 or 8 at the borders; then masked below
        m.d.comb += other_word.eq(Cat(word, 0) + 1)
        with m.If(offset == 0):
            m.d.comb += other_word.eq(Cat(word, 0) - 1)
        rows = [Signal(7, name=f"row{d}") for d in range(3)]  # y-1+d, 7 bits so -1 is visible
        m.d.comb += [rows[d].eq(Cat(y, 0) + d - 1) for d in range(3)]
        for (rb, par), (_, rp) in banks.items():
            word_for_bank = Signal(3, name=f"word_r{rb}_w{par}")
            # A bank of parity `par` reads the window's own word or its neighbour.
            m.d.comb += word_for_bank.eq(Mux(word[0] == par, word, other_word[0:3]))
            for d in range(3):
                with m.If(rows[d][0:2] == rb):
                    m.d.comb += rp.addr.eq(self._address(self.rd_slot, rows[d][0:6], word_for_bank))
            m.d.comb += rp.en.eq(self.rd_en)

        # Stage 1: the banks' read data go straight into registers (a BRAM's own output register),
        # and beside them each window pixel's source: pixel, word parity and row bank, or outside.
        issued = Signal()
        data_q = {bank: Signal(spec.BEAT_BITS, name=f"data_r{bank[0]}_w{bank[1]}", reset_less=True) for bank in banks}
        y_q = Signal.like(self.rd_y, reset_less=True)
        x_q = Signal.like(self.rd_x, reset_less=True)
        m.d.sync += issued.eq(self.rd_en)
        with m.If(self.rd_en):
            m.d.sync += [y_q.eq(self.rd_y), x_q.eq(self.rd_x)]
        rows_q = [Signal(7, name=f"row{d}_q") for d in range(K)]  # y-1+d, 7 bits so -1 and 64 are visible
        columns_q = [Signal(7, name=f"column{k}_q") for k in range(K)]  # x-1+k, likewise
        m.d.comb += [rows_q[d].eq(Cat(y_q, 0) + d - 1) for d in range(K)]
        m.d.comb += [columns_q[k].eq(Cat(x_q, 0) + k - 1) for k in range(K)]
        source = [Signal(6, name=f"source{i}", reset_less=True) for i in range(TAPS)]  # Cat(pixel, parity, row bank)
        inside = [Signal(name=f"inside{i}", reset_less=True) for i in range(TAPS)]
        with m.If(issued):
            m.d.sync += [data_q[bank].eq(rp.data) for bank, (_, rp) in banks.items()]
            for d, row in enumerate(rows_q):
                for k, column in enumerate(columns_q):
                    m.d.sync += [
                        source[K * d + k].eq(Cat(column[0:4], row[0:2])),
                        inside[K * d + k].eq((row < H) & (column < W)),
                    ]

        # Stage 2: each window pixel is one 64:1 byte select of registered data, or 0 at the border.
        pixels = Array(data_q[rb, par].word_select(p, 8)
                       for rb in range(ROW_BANKS) for par in range(2) for p in range(PIXELS_PER_BEAT))
        selected = Signal()
        m.d.sync += selected.eq(issued)
        with m.If(selected):
            m.d.sync += [self.window[i].eq(Mux(inside[i], pixels[source[i]], 0)) for i in range(TAPS)]
        return m

