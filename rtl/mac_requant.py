"""The arithmetic datapath: 9 multipliers, adder tree, requantization and ReLU clamp.

Bit-exact with `model.hw.golden` (the arithmetic of rtl/README.md). A fixed-latency pipeline of
`LATENCY` = `spec.MAC_LATENCY` = 6 stages, cut so that no register-to-register path is deeper than
about two adders or five LUT levels (300 MHz on UltraScale+):

1. nine int8 x uint8 products;
2. three partial sums: p0..p3, p4..p7, bias + p8;
3. the int32 accumulator (wrapping);
4. acc * M as two partial products, acc[0:17] * M and acc[17:32] * M, one DSP48E2 each with its
   output register (a 32 x 16 product is wider than one DSP, and a DSP cascade in one cycle is too
   slow);
5. t = acc * M + R from the two products and the rounding term, one three-input adder, 48 bits
   (|acc * M| < 2^47); beside it the clamp decision t >= 2^(S+8), i.e. t >> S > 255, as the sign
   of the same sum with R - 2^(S+8) in place of R (both terms are 32-entry tables of S);
6. the clamp, without shifting t: t >> S is negative when t is, above 255 by the decision of stage
   5, and otherwise t[S : S+8]. So the 51-bit barrel shifter becomes an 8-bit 32:1 select.

Every data register is loaded only when its stage holds a computed output, so cycles without one
(skipped positions, idle time) leave the multiplier and adder operands frozen: no toggles, no
dynamic energy (operand isolation through clock enables). Only the valid bits are reset: data
registers need no reset, and without one the synthesiser can absorb them into the DSP48E2s' own
pipeline registers. `bias`, `mult` and `shift` are configuration, held steady while outputs are
computed; each is read by the stage that uses it.
"""
from amaranth import Array, Const, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from model.hw.spec import TAPS

LOW_BITS = 17  # acc[0:17] is the unsigned operand of the low partial product (a DSP48E2 B port is 18 bits signed)
SCALED_BITS = 48  # acc * M + R: |acc * M| <= 2^31 * 65535 < 2^47, plus R <= 2^30 stays below 2^47
ROUNDING = [(1 << s) >> 1 for s in range(32)]  # R for each shift S: 2^(S-1), and 0 for S = 0


class MacRequant(wiring.Component):
    """out = clamp((bias + Σ w·x) * M + R >> S, 0, 255) for one 3x3 window per cycle."""

    LATENCY = spec.MAC_LATENCY
    _STAGES = 6  # what elaborate builds: products, partial sums, acc, partial products, scaled, clamp

    def __init__(self, tag_width: int = 1):
        if self.LATENCY != self._STAGES:
            raise ValueError(f"the contract's MAC_LATENCY is {self.LATENCY}; this datapath has {self._STAGES} stages")
        if not isinstance(tag_width, int) or tag_width < 1:
            raise ValueError(f"tag_width must be a positive integer, got {tag_width!r}")
        self.tag_width = tag_width
        super().__init__(
            {
                "in_valid": In(1),
                "in_tag": In(tag_width),
                "window": In(unsigned(8)).array(TAPS),
                "weights": In(signed(8)).array(TAPS),
                "bias": In(signed(32)),
                "mult": In(unsigned(16)),
                "shift": In(unsigned(5)),
                "out_valid": Out(1),
                "out_tag": Out(tag_width),
                "out_pixel": Out(unsigned(8)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        valid = [Signal(name=f"valid_s{i}") for i in range(1, self.LATENCY + 1)]
        tags = [Signal(self.tag_width, name=f"tag_s{i}") for i in range(1, self.LATENCY + 1)]
        m.d.sync += [valid[0].eq(self.in_valid), tags[0].eq(self.in_tag)]
        for i in range(1, self.LATENCY):
            m.d.sync += [valid[i].eq(valid[i - 1]), tags[i].eq(tags[i - 1])]

        # Stage 1: nine products; int8 x uint8 lies in [-32640, 32385], so int16 holds it.
        products = [Signal(signed(16), name=f"product{i}", reset_less=True) for i in range(TAPS)]
        with m.If(self.in_valid):
            m.d.sync += [p.eq(w * x) for p, w, x in zip(products, self.weights, self.window)]

        # Stage 2: the first two levels of the adder tree, the bias in the shortest branch.
        sum_a = Signal(signed(18), reset_less=True)
        sum_b = Signal(signed(18), reset_less=True)
        sum_c = Signal(signed(32), reset_less=True)
        with m.If(valid[0]):
            m.d.sync += [
                sum_a.eq((products[0] + products[1]) + (products[2] + products[3])),
                sum_b.eq((products[4] + products[5]) + (products[6] + products[7])),
                sum_c.eq(self.bias + products[8]),  # wraps in int32, as the accumulator does
            ]

        # Stage 3: the accumulator, wrapping in int32.
        acc = Signal(signed(32), reset_less=True)
        with m.If(valid[1]):
            m.d.sync += acc.eq((sum_a + sum_b) + sum_c)

        # Stage 4: acc * M = (acc_hi << 17) * M + acc_lo * M.
        low = Signal(unsigned(LOW_BITS + 16), reset_less=True)
        high = Signal(signed(32 - LOW_BITS + 16), reset_less=True)
        with m.If(valid[2]):
            m.d.sync += [
                low.eq(acc[:LOW_BITS] * self.mult),
                high.eq(acc[LOW_BITS:].as_signed() * self.mult),
            ]

        # Stage 5: t = acc * M + R, and whether t >= 2^(S+8): the sign of t - 2^(S+8), summed alongside.
        rounding = Array(Const(r, unsigned(31)) for r in ROUNDING)[self.shift]
        rounding_less_limit = Array(Const(r - (1 << (s + 8)), signed(41)) for s, r in enumerate(ROUNDING))[self.shift]
        scaled = Signal(signed(SCALED_BITS), reset_less=True)
        overflow = Signal(reset_less=True)
        with m.If(valid[3]):
            m.d.sync += [
                scaled.eq((high << LOW_BITS) + low + rounding),
                overflow.eq((high << LOW_BITS) + low + rounding_less_limit >= 0),
            ]

        # Stage 6: clamp(t >> S, 0, 255) from t's sign, the overflow decision and the byte at S, selected
        # in two 4:1 and 8:1 steps (S = 8g + r) rather than one 32:1 select.
        coarse = Array(scaled[8 * g : 8 * g + 15] for g in range(4))[self.shift[3:]]
        byte = coarse.bit_select(self.shift[:3], 8)
        with m.If(valid[4]):
            with m.If(scaled[-1]):
                m.d.sync += self.out_pixel.eq(0)
            with m.Elif(overflow):
                m.d.sync += self.out_pixel.eq(255)
            with m.Else():
                m.d.sync += self.out_pixel.eq(byte)

        m.d.comb += [self.out_valid.eq(valid[-1]), self.out_tag.eq(tags[-1])]
        return m
