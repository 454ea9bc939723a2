"""Double-buffered IFMAP storage that reads any 3x3 window in one cycle.

Pixels arrive as 8-pixel beats (one 64-bit word of a row). The frame is spread over 8 banks:
row mod 4 (the three window rows always fall in three different banks) times word parity (the
window's columns x-1..x+1 span at most two neighbouring words, one even and one odd). Each bank
holds both frame slots, so one frame loads while the previous one is being computed.

Latency: `rd_en` at cycle t -> `window` valid (registered) at t + LATENCY, LATENCY = 2 =
`spec.WINDOW_READ_LATENCY` (bank read, then strip select into the window register). The window
register is loaded only when a read was issued, so idle cycles leave it unchanged.
"""
from amaranth import Cat, Module, Mux, Signal, unsigned
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
    _STAGES = 2  # what elaborate builds: bank read, then strip select into the window register

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

        # One cycle later: assemble each row's 24-pixel strip [left word, word, right word].
        issued = Signal()
        row_q = [Signal(7, name=f"row{d}_q") for d in range(3)]
        word_q = Signal(3)
        offset_q = Signal(3)
        m.d.sync += issued.eq(self.rd_en)
        with m.If(self.rd_en):
            m.d.sync += [r.eq(rows[d]) for d, r in enumerate(row_q)]
            m.d.sync += [word_q.eq(word), offset_q.eq(offset)]
        with m.If(issued):
            for d in range(3):
                row_valid = row_q[d] < H  # -1 wraps to 127 in 7 bits
                current = Signal(64, name=f"current{d}")
                neighbour = Signal(64, name=f"neighbour{d}")
                for rb in range(ROW_BANKS):
                    with m.If(row_q[d][0:2] == rb):
                        for par in range(2):
                            with m.If(word_q[0] == par):
                                m.d.comb += current.eq(banks[rb, par][1].data)
                            with m.Else():
                                m.d.comb += neighbour.eq(banks[rb, par][1].data)
                left = Signal(64, name=f"left{d}")
                right = Signal(64, name=f"right{d}")
                with m.If((offset_q == 0) & (word_q != 0)):
                    m.d.comb += left.eq(neighbour)
                with m.If((offset_q == 7) & (word_q != WORDS_PER_ROW - 1)):
                    m.d.comb += right.eq(neighbour)
                strip = Signal(192, name=f"strip{d}")
                m.d.comb += strip.eq(Mux(row_valid, Cat(left, current, right), 0))
                # Pixels x-1, x, x+1 sit at strip pixel positions 7+offset .. 9+offset.
                three = strip.bit_select((offset_q + 7) * 8, 24)
                m.d.sync += [self.window[3 * d + k].eq(three[8 * k : 8 * k + 8]) for k in range(3)]
        return m

