"""The arithmetic datapath: 9 multipliers, adder tree, requantization and ReLU clamp.

Bit-exact with `model.hw.golden` (the arithmetic of rtl/README.md). A fixed-latency pipeline:
`LATENCY` = `spec.MAC_LATENCY` = 4 cycles from `in_valid` to `out_valid`. Every data register is
loaded only when its stage holds a computed output, so cycles without a computed output (skipped
positions, idle time) leave the multiplier and adder operands frozen: no toggles, no dynamic
energy (operand isolation through clock enables).
"""
from amaranth import Const, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from model.hw.spec import TAPS


class MacRequant(wiring.Component):
    """out = clamp((bias + Σ w·x) * M + R >> S, 0, 255) for one 3x3 window per cycle."""

    LATENCY = spec.MAC_LATENCY
    _STAGES = 4  # what elaborate builds: products, sum, scaled product, requantized pixel

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

        # Stage 1: nine int8 x uint8 products.
        products = [Signal(signed(17), name=f"product{i}") for i in range(TAPS)]
        with m.If(self.in_valid):
            m.d.sync += [p.eq(w * x) for p, w, x in zip(products, self.weights, self.window)]

        # Stage 2: bias + sum, wrapping in int32.
        acc = Signal(signed(32))
        with m.If(valid[0]):
            m.d.sync += acc.eq(self.bias + sum(products))

        # Stage 3: acc * M in at least 48 bits (signed 32 x unsigned 16 -> 49 bits).
        scaled = Signal(signed(50))
        with m.If(valid[1]):
            m.d.sync += scaled.eq(acc * self.mult)

        # Stage 4: rounding, arithmetic (floor) shift, clamp to uint8 (ReLU at 0).
        rounding = Signal(unsigned(31))  # R = 1 << (S-1), and 0 for S = 0
        m.d.comb += rounding.eq((Const(1, 32) << self.shift) >> 1)
        shifted = Signal(signed(51))
        m.d.comb += shifted.eq((scaled + rounding) >> self.shift)
        with m.If(valid[2]):
            with m.If(shifted < 0):
                m.d.sync += self.out_pixel.eq(0)
            with m.Elif(shifted > 255):
                m.d.sync += self.out_pixel.eq(255)
            with m.Else():
                m.d.sync += self.out_pixel.eq(shifted[:8])

        m.d.comb += [self.out_valid.eq(valid[-1]), self.out_tag.eq(tags[-1])]
        return m
