"""Zero-value prediction: which outputs a frame computes in each phase, and which it predicts zero.

The rule (rtl/README.md, section 8): with ZP_EN, the anchors of the pattern that are not compressed
are computed (phase A); every other uncompressed output is predicted 0 when no anchor within one
row and one column of it is "hot" (value above ZP_MAX), and computed otherwise (phase B). A
compressed anchor's value is its average.

Two components, both working on 4096-bit vectors indexed like the outputs (bit 64·y + x):

* `ZeroPredictor` keeps the `hot` flip-flop of every computed anchor (set when its result leaves
  the MAC pipeline above ZP_MAX, cleared by `clear` at the start of a frame) and derives, all
  combinationally, phase A's issue bits (uncompressed anchors), phase B's issue bits (uncompressed
  non-anchors next to a hot anchor), both per-group flags for the mask scanner, and the
  predicted-zero map. Compressed anchors are hot when their average is: `avg_hot` below.
* `AvgHotFlags` keeps `avg_hot` (average > ZP_MAX) for every output: each AVG write updates the
  written bytes' flags, and after a ZP_MAX change (`restart`) a small engine rereads the whole AVG
  memory, 8 averages per cycle (`REFRESH_CYCLES` = 512), while `busy` holds off compute starts
  (the last pair's flags land one cycle after `busy` falls, long before phase B reads them).
  A write that lands on the word the engine has just read wins over the engine's stale copy.
"""
from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw.spec import N_OUTPUTS, PIXELS_PER_BEAT, REG, ZP_CHECKER, ZP_GRID2, H, W

GROUPS = N_OUTPUTS // PIXELS_PER_BEAT
INDEX_BITS = (N_OUTPUTS - 1).bit_length()


def anchor_bits(pattern: int) -> int:
    """The anchors of a pattern as a 4096-bit integer (bit 64·y + x)."""
    rule = {ZP_GRID2: lambda y, x: y % 2 == 0 and x % 2 == 0, ZP_CHECKER: lambda y, x: (y + x) % 2 == 0}[pattern]
    return sum(1 << (W * y + x) for y in range(H) for x in range(W) if rule(y, x))


def _columns_except(column: int) -> int:
    return sum(1 << (W * y + x) for y in range(H) for x in range(W) if x != column)


def group_any(m: Module, bits, name: str):
    """Per group of 8 outputs: any bit set (the mask scanner's group flags), one signal per row."""
    rows = []
    for y in range(H):
        row = Signal(W // PIXELS_PER_BEAT, name=f"{name}_row{y}")
        groups = range(y * W // PIXELS_PER_BEAT, (y + 1) * W // PIXELS_PER_BEAT)
        m.d.comb += row.eq(Cat(bits[PIXELS_PER_BEAT * g : PIXELS_PER_BEAT * (g + 1)].any() for g in groups))
        rows.append(row)
    return Cat(*rows)


class ZeroPredictor(wiring.Component):
    """Hot anchors of the frame in flight and everything derived from them (module docstring)."""

    def __init__(self):
        super().__init__(
            {
                "pattern": In(REG["ZP_CONFIG"].field("PATTERN").width),
                "zp_max": In(8),
                "compressed": In(N_OUTPUTS),  # mask & SKIP_EN
                "avg_hot": In(N_OUTPUTS),  # average > ZP_MAX
                "clear": In(1),  # start of a frame's phase A
                "result_valid": In(1),  # an anchor's result leaves the MAC pipeline
                "result_index": In(INDEX_BITS),
                "result_pixel": In(8),
                "bits_a": Out(N_OUTPUTS),  # phase A issues: uncompressed anchors
                "flags_a": Out(GROUPS),
                "bits_b": Out(N_OUTPUTS),  # phase B issues: uncompressed non-anchors near a hot anchor
                "flags_b": Out(GROUPS),
                "predicted": Out(N_OUTPUTS),  # uncompressed non-anchors near no hot anchor
            }
        )

    def elaborate(self, platform):
        m = Module()
        hot = Signal(N_OUTPUTS)  # computed anchors of this frame above ZP_MAX
        with m.If(self.clear):
            m.d.sync += hot.eq(0)
        with m.Elif(self.result_valid):
            one = (Const(1, N_OUTPUTS) << self.result_index)[:N_OUTPUTS]
            m.d.sync += hot.eq(hot | Mux(self.result_pixel > self.zp_max, one, 0))

        anchor = Signal(N_OUTPUTS)
        m.d.comb += anchor.eq(Mux(self.pattern == ZP_CHECKER, anchor_bits(ZP_CHECKER), anchor_bits(ZP_GRID2)))
        hot_anchor = Signal(N_OUTPUTS)
        m.d.comb += hot_anchor.eq(anchor & (self.compressed & self.avg_hot | ~self.compressed & hot))
        full = (1 << N_OUTPUTS) - 1
        row = Signal(N_OUTPUTS)  # horizontal dilation, then vertical
        m.d.comb += row.eq(
            hot_anchor
            | ((hot_anchor << 1)[:N_OUTPUTS] & _columns_except(0))
            | ((hot_anchor >> 1) & _columns_except(W - 1))
        )
        near_hot = Signal(N_OUTPUTS)
        m.d.comb += near_hot.eq((row | (row << W)[:N_OUTPUTS] | (row >> W)) & full)
        open_ = Signal(N_OUTPUTS)  # neither compressed nor an anchor: computed or predicted
        m.d.comb += [
            open_.eq(~self.compressed & ~anchor),
            self.bits_a.eq(~self.compressed & anchor),
            self.flags_a.eq(group_any(m, self.bits_a, "flags_a")),
            self.bits_b.eq(open_ & near_hot),
            self.flags_b.eq(group_any(m, self.bits_b, "flags_b")),
            self.predicted.eq(open_ & ~near_hot),
        ]
        return m


class AvgHotFlags(wiring.Component):
    """`avg_hot[p]` = AVG[p] > ZP_MAX, kept up to date on AVG writes and refreshed after `restart`."""

    REFRESH_CYCLES = REG["AVG"].count // 2  # word pairs: 8 averages per cycle from the two AVG memories

    def __init__(self):
        super().__init__(
            {
                "zp_max": In(8),
                "restart": In(1),  # ZP_MAX may have changed: reread every average
                "wr_en": In(1),  # an AVG word is written
                "wr_word": In(range(REG["AVG"].count)),
                "wr_data": In(32),
                "wr_strb": In(4),
                "rd_addr": Out(range(self.REFRESH_CYCLES)),  # word pair: word 2i in memory 0, 2i+1 in 1
                "rd_en": Out(1),
                "rd_data": In(64),  # memory 1's word above memory 0's, one cycle after rd_en
                "busy": Out(1),
                "avg_hot": Out(N_OUTPUTS),
            }
        )

    def elaborate(self, platform):
        m = Module()
        running = Signal()
        index = Signal(range(self.REFRESH_CYCLES))
        back = Signal()  # the pair read last cycle is back: write its flags
        back_index = Signal.like(index)
        # Bytes of the pair read last cycle that the bus wrote in that same cycle: the read saw the
        # old value, the bus write already set the right flags.
        written = Signal(PIXELS_PER_BEAT)
        m.d.comb += [self.rd_addr.eq(index), self.rd_en.eq(running), self.busy.eq(running)]
        m.d.sync += [back.eq(running & ~self.restart), back_index.eq(index)]
        same_pair = self.wr_en & (self.wr_word[1:] == index) & running
        m.d.sync += written.eq(Mux(same_pair, Mux(self.wr_word[0], Cat(Const(0, 4), self.wr_strb),
                                                 Cat(self.wr_strb, Const(0, 4))), 0))
        with m.If(self.restart):
            m.d.sync += [running.eq(1), index.eq(0)]
        with m.Elif(running):
            m.d.sync += index.eq(index + 1)
            with m.If(index == self.REFRESH_CYCLES - 1):
                m.d.sync += running.eq(0)

        def over(data, n):
            return Cat(data[8 * k : 8 * k + 8] > self.zp_max for k in range(n))

        flags = self.avg_hot
        refreshed = Signal(N_OUTPUTS)  # after the engine's write-back; the bus write goes on top
        keep = ~written
        pair_mask = (Cat(keep, Const(0, N_OUTPUTS - PIXELS_PER_BEAT)) << Cat(Const(0, 3), back_index))[:N_OUTPUTS]
        pair_value = (Cat(over(self.rd_data, 8) & keep, Const(0, N_OUTPUTS - PIXELS_PER_BEAT))
                      << Cat(Const(0, 3), back_index))[:N_OUTPUTS]
        m.d.comb += refreshed.eq(Mux(back, flags & ~pair_mask | pair_value, flags))
        word_mask = (Cat(self.wr_strb, Const(0, N_OUTPUTS - 4)) << Cat(Const(0, 2), self.wr_word))[:N_OUTPUTS]
        word_value = (Cat(over(self.wr_data, 4) & self.wr_strb, Const(0, N_OUTPUTS - 4))
                      << Cat(Const(0, 2), self.wr_word))[:N_OUTPUTS]
        m.d.sync += flags.eq(Mux(self.wr_en, refreshed & ~word_mask | word_value, refreshed))
        return m
