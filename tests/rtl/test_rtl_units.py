"""Fast Amaranth-simulator tests of the conv2d's internal pieces: mask scan, window read, requant.

Each piece's latency is measured here and must equal the contract's (model.hw.spec), which the
cycle model is written in terms of."""
from __future__ import annotations

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib.memory import Memory

from amaranth_sim import scan_trace, simulate

from model.hw import golden, spec
from model.hw.spec import H, W
from rtl.ifmap_buffer import IfmapWindowBuffer
from rtl.mac_requant import MacRequant
from rtl.mask_scan import MaskScanner


class ScannerWithMask(Elaboratable):
    """The scanner wired to a mask memory, as in the core."""

    def __init__(self, mask: np.ndarray):
        self.words = golden.mask_words(mask)
        flags = np.packbits(mask.reshape(-1), bitorder="little") != 0xFF
        self.nonempty = int("".join("1" if f else "0" for f in flags[::-1]), 2)
        self.scanner = MaskScanner()

    def elaborate(self, platform):
        m = Module()
        m.submodules.scanner = scanner = self.scanner
        m.submodules.mem = mem = Memory(shape=32, depth=128, init=self.words)
        port = mem.read_port()
        m.d.comb += [port.addr.eq(scanner.mask_addr), port.en.eq(scanner.mask_en),
                     scanner.mask_data.eq(port.data), scanner.nonempty.eq(self.nonempty),
                     scanner.skip_en.eq(1)]  # fmt: skip
        return m


MASKS = {
    "none": np.zeros((H, W), bool),
    "all": np.ones((H, W), bool),
    "random_0.3": np.random.default_rng(1).random((H, W)) < 0.3,
    "random_0.9": np.random.default_rng(2).random((H, W)) < 0.9,
    "clustered": np.pad(np.zeros((8, 8), bool), 28, constant_values=True),  # long all-skipped runs
}


@pytest.mark.parametrize("name", MASKS)
def test_mask_scan_issues_computed_indices_back_to_back(name):
    mask = MASKS[name]
    dut = ScannerWithMask(mask)
    expected = np.flatnonzero(~mask.reshape(-1)).tolist()
    trace = scan_trace(dut, 4200)
    issued = [(c, i) for c, v, i, _ in trace if v]
    assert [i for _, i in issued] == expected
    done_cycle = [c for c, *_, d in trace if d]
    assert len(done_cycle) == 1
    startup = spec.MASK_SCAN_STARTUP
    if expected:  # consecutive cycles from the contract's startup on: skipped outputs cost nothing
        assert [c for c, _ in issued] == list(range(startup, startup + len(expected)))
        assert done_cycle[0] == issued[-1][0]
    else:
        assert done_cycle[0] == startup


def test_window_read_every_position_with_padding():
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (H, W), dtype=np.uint8)
    padded = np.pad(frame, 1)
    dut = IfmapWindowBuffer()
    positions = [(0, 0), (0, 63), (63, 0), (63, 63), (0, 7), (0, 8), (5, 15), (62, 56)]
    positions += [(int(y), int(x)) for y, x in rng.integers(0, 64, (40, 2))]
    results = {}

    async def bench(ctx):
        ctx.set(dut.wr_slot, 1)
        for beat, word in enumerate(golden.frame_to_beats(frame)):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_beat, beat)
            ctx.set(dut.wr_data, word)
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.rd_slot, 1)
        for n, (y, x) in enumerate(positions + [(0, 0)] * IfmapWindowBuffer.LATENCY):
            ctx.set(dut.rd_en, n < len(positions))
            ctx.set(dut.rd_y, y)
            ctx.set(dut.rd_x, x)
            await ctx.tick()
            if n >= IfmapWindowBuffer.LATENCY - 1 and n - IfmapWindowBuffer.LATENCY + 1 < len(positions):
                results[n - IfmapWindowBuffer.LATENCY + 1] = [ctx.get(dut.window[i]) for i in range(9)]

    simulate(dut, bench)
    for n, (y, x) in enumerate(positions):
        expect = padded[y : y + 3, x : x + 3].reshape(-1).tolist()
        assert results[n] == expect, f"window at ({y}, {x})"


def test_window_read_latency_equals_spec():
    """One read, then idle: the window shows the new position exactly WINDOW_READ_LATENCY cycles later."""
    rng = np.random.default_rng(5)
    frame = rng.integers(1, 256, (H, W), dtype=np.uint8)  # no zeros: the window changes on arrival
    expect = np.pad(frame, 1)[10:13, 20:23].reshape(-1).tolist()
    dut = IfmapWindowBuffer()
    seen = []

    async def bench(ctx):
        for beat, word in enumerate(golden.frame_to_beats(frame)):
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_beat, beat)
            ctx.set(dut.wr_data, word)
            await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.rd_y, 10)
        ctx.set(dut.rd_x, 20)
        ctx.set(dut.rd_en, 1)
        for cycle in range(1, 8):
            await ctx.tick()
            ctx.set(dut.rd_en, 0)
            seen.append((cycle, [ctx.get(dut.window[i]) for i in range(9)]))

    simulate(dut, bench)
    arrival = next(cycle for cycle, window in seen if window == expect)
    assert arrival == spec.WINDOW_READ_LATENCY == IfmapWindowBuffer.LATENCY
    assert all(window == expect for cycle, window in seen if cycle >= arrival), "the window holds while idle"


def test_requant_latency_equals_spec():
    dut = MacRequant()
    latency = []

    async def bench(ctx):
        ctx.set(dut.in_valid, 1)
        for cycle in range(1, 10):
            await ctx.tick()
            ctx.set(dut.in_valid, 0)
            if ctx.get(dut.out_valid):
                latency.append(cycle)

    simulate(dut, bench)
    assert latency == [spec.MAC_LATENCY] and MacRequant.LATENCY == spec.MAC_LATENCY


def test_requant_matches_golden_and_isolates_operands():
    rng = np.random.default_rng(4)
    dut = MacRequant(tag_width=4)
    cases = []
    for k in range(60):
        w = rng.integers(-128, 128, 9)
        x = rng.integers(0, 256, 9)
        bias = int(rng.integers(-(2**31), 2**31)) if k % 7 == 0 else int(rng.integers(-50000, 50000))
        mult = 65535 if k % 5 == 0 else int(rng.integers(0, 65536))
        shift = [0, 31][k % 2] if k % 3 == 0 else int(rng.integers(0, 32))
        acc = golden.wrap_int32(bias + int(np.dot(w, x)))
        cases.append((w, x, bias, mult, shift, int(golden.requantize(acc, mult, shift))))

    async def bench(ctx):
        for w, x, bias, mult, shift, expect in cases:
            for i in range(9):
                ctx.set(dut.weights[i], int(w[i]))
                ctx.set(dut.window[i], int(x[i]))
            ctx.set(dut.bias, bias)
            ctx.set(dut.mult, mult)
            ctx.set(dut.shift, shift)
            ctx.set(dut.in_valid, 1)
            await ctx.tick()
            ctx.set(dut.in_valid, 0)
            await ctx.tick().repeat(MacRequant.LATENCY - 1)
            assert ctx.get(dut.out_valid) == 1
            assert ctx.get(dut.out_pixel) == expect, (w, x, bias, mult, shift)
        # Operand isolation: with in_valid low, new operands must not reach the output.
        held = ctx.get(dut.out_pixel)
        ctx.set(dut.weights[0], 0 if cases[-1][0][0] else 1)
        ctx.set(dut.window[0], 255)
        ctx.set(dut.bias, 12345)
        await ctx.tick().repeat(MacRequant.LATENCY + 2)
        assert ctx.get(dut.out_valid) == 0 and ctx.get(dut.out_pixel) == held

    simulate(dut, bench)
