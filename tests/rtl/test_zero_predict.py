"""Zero-value prediction in the Amaranth simulator: the hot/dilation/flag logic, the AVG refresh
engine, the scanner's direct mode (phase B), and the whole core on prediction frames, compared with
the golden model (outputs, LAST_COMPUTED / LAST_PREDICTED / LAST_MACS) and the cycle model
(LAST_CYCLES of isolated frames, gaps of back-to-back frames)."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib.memory import Memory
from amaranth_sim import scan_trace, simulate
from core_driver import CoreDriver

from model.hw import cycles, golden, spec
from model.hw.image import control_word, zp_config_word
from model.hw.spec import H, N_OUTPUTS, W
from rtl.conv2d import VelcroConv2d
from rtl.mask_scan import MaskScanner
from rtl.zero_predict import AvgHotFlags, ZeroPredictor, anchor_bits


def to_int(bits: np.ndarray) -> int:
    flat = np.asarray(bits, dtype=bool).reshape(-1)
    return int.from_bytes(np.packbits(flat, bitorder="little").tobytes(), "little")


def to_bits(value: int) -> np.ndarray:
    raw = np.frombuffer(value.to_bytes(N_OUTPUTS // 8, "little"), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little").astype(bool).reshape(H, W)


def test_anchor_constants_match_golden():
    assert (spec.ZP_GRID2, spec.ZP_CHECKER) == (golden.ZP_GRID2, golden.ZP_CHECKER)
    for pattern in (spec.ZP_GRID2, spec.ZP_CHECKER):
        assert np.array_equal(to_bits(anchor_bits(pattern)), golden.anchors(pattern))


def blob_frame(rng, zero_fraction: float = 0.5) -> np.ndarray:
    """Random pixels with rectangular all-zero blobs (where prediction pays off)."""
    frame = rng.integers(0, 256, (H, W), dtype=np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, H, 2)
        size = int(rng.integers(4, 32))
        frame[y : y + size, x : x + size] = 0
    frame[rng.random((H, W)) < zero_fraction * 0.2] = 0
    return frame


def relu_heavy_config(rng, density: float, pattern: int, zp_max: int) -> golden.ConvConfig:
    """A configuration with many (near-)zero outputs: negative bias, small positive weights."""
    cfg = golden.random_config(rng, density)
    weights = rng.integers(-20, 40, size=(3, 3))
    return dataclasses.replace(cfg, weights=weights, bias=int(rng.integers(-8000, 0)), zp_en=True,
                               zp_pattern=pattern, zp_max=zp_max)  # fmt: skip


@pytest.mark.parametrize("pattern", [spec.ZP_GRID2, spec.ZP_CHECKER])
@pytest.mark.parametrize("density", [0.0, 0.3, 0.75])
def test_predictor_logic_matches_golden(pattern, density):
    """Given the hot results of phase A, the predictor's phase B bits, flags and predicted map are the rule's."""
    rng = np.random.default_rng(int(density * 10) + 7 * pattern)
    dut = ZeroPredictor()
    ifmap = blob_frame(rng)
    cases = []
    for zp_max in (0, 90, 255):
        cfg = relu_heavy_config(rng, density, pattern, zp_max)
        ofmap = golden.requantize(golden.accumulate(ifmap, cfg.weights, cfg.bias), cfg.mult, cfg.shift)
        cases.append((cfg, golden.frame_result(ifmap, cfg), ofmap))

    async def bench(ctx):
        for cfg, result, ofmap in cases:
            anchors = golden.anchors(pattern)
            compressed = result.compressed
            ctx.set(dut.pattern, pattern)
            ctx.set(dut.zp_max, cfg.zp_max)
            ctx.set(dut.compressed, to_int(compressed))
            ctx.set(dut.avg_hot, to_int(np.asarray(cfg.avg) > cfg.zp_max))
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            issued = np.flatnonzero((anchors & ~compressed).reshape(-1))
            assert to_int(anchors & ~compressed) == ctx.get(dut.bits_a)
            for index in issued:  # phase A results, one per cycle
                ctx.set(dut.result_valid, 1)
                ctx.set(dut.result_index, int(index))
                ctx.set(dut.result_pixel, int(ofmap.reshape(-1)[index]))
                await ctx.tick()
            ctx.set(dut.result_valid, 0)
            await ctx.tick()
            bits_b = to_bits(ctx.get(dut.bits_b))
            assert np.array_equal(bits_b, result.computed & ~anchors)
            assert np.array_equal(to_bits(ctx.get(dut.predicted)), result.predicted)
            flags = ctx.get(dut.flags_b)
            expect = np.packbits(bits_b.reshape(-1), bitorder="little") != 0
            assert [(flags >> g) & 1 for g in range(N_OUTPUTS // 8)] == expect.astype(int).tolist()

    simulate(dut, bench)


def test_avg_hot_flags_follow_writes_and_refresh():
    rng = np.random.default_rng(11)
    dut = AvgHotFlags()
    avg = rng.integers(0, 256, N_OUTPUTS, dtype=np.uint8)
    words = avg.view("<u4")
    mem = np.array(words, dtype=np.uint64)

    def expect(zp_max):
        return to_int(avg > zp_max)

    async def write(ctx, word, value, strobe=0xF):
        ctx.set(dut.wr_en, 1)
        ctx.set(dut.wr_word, word)
        ctx.set(dut.wr_data, value)
        ctx.set(dut.wr_strb, strobe)
        old = int(mem[word])
        merged = sum(((value if (strobe >> k) & 1 else old) >> (8 * k) & 0xFF) << (8 * k) for k in range(4))
        mem[word] = merged
        avg[4 * word : 4 * word + 4] = [(merged >> (8 * k)) & 0xFF for k in range(4)]

    async def cycle(ctx):
        # the memories behind the engine: word 2i in the low half, 2i+1 in the high half, one cycle late
        rd = ctx.get(dut.rd_en), ctx.get(dut.rd_addr)
        await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.restart, 0)
        if rd[0]:
            i = rd[1]
            ctx.set(dut.rd_data, int(mem[2 * i]) | int(mem[2 * i + 1]) << 32)

    async def bench(ctx):
        ctx.set(dut.zp_max, 0)
        for word in range(len(words)):  # fill through the write path at ZP_MAX = 0
            await write(ctx, word, int(words[word]))
            await cycle(ctx)
        assert ctx.get(dut.avg_hot) == expect(0)
        # ZP_MAX changes: refresh, with writes landing on the words being read
        ctx.set(dut.zp_max, 100)
        ctx.set(dut.restart, 1)
        await cycle(ctx)
        n = 0
        while ctx.get(dut.busy):
            if n % 3 == 0:
                target = 2 * int(ctx.get(dut.rd_addr)) + (n // 3) % 2  # the pair being read now
                await write(ctx, target, int(rng.integers(0, 2**32)), int(rng.integers(1, 16)))
            await cycle(ctx)
            n += 1
        assert n == AvgHotFlags.REFRESH_CYCLES
        await cycle(ctx)  # the last pair's write-back
        assert ctx.get(dut.avg_hot) == expect(100)

    simulate(dut, bench)


class DirectScanner(Elaboratable):
    """The scanner in direct mode (phase A or B of a prediction frame): issue bits from a vector."""

    def __init__(self, bits: np.ndarray):
        self.bits = bits
        self.scanner = MaskScanner()

    def elaborate(self, platform):
        m = Module()
        m.submodules.scanner = scanner = self.scanner
        m.submodules.mem = mem = Memory(shape=32, depth=128, init=[0xFFFFFFFF] * 128)  # must not be used
        port = mem.read_port()
        flags = np.packbits(self.bits.reshape(-1), bitorder="little") != 0
        m.d.comb += [port.addr.eq(scanner.mask_addr), port.en.eq(scanner.mask_en), scanner.mask_data.eq(port.data),
                     scanner.nonempty.eq(to_int(flags)), scanner.skip_en.eq(1), scanner.direct.eq(1),
                     scanner.bits.eq(to_int(self.bits))]  # fmt: skip
        return m


@pytest.mark.parametrize("density", [0.0, 0.02, 0.4, 1.0])
def test_scanner_direct_mode_issues_the_bits_back_to_back(density):
    bits = np.random.default_rng(int(density * 100)).random((H, W)) < density
    dut = DirectScanner(bits)
    expected = np.flatnonzero(bits.reshape(-1)).tolist()
    def no_mask_reads(ctx, s):
        assert not ctx.get(s.mask_en), "direct mode must not read the mask memory"

    trace = scan_trace(dut, N_OUTPUTS + 10, each_cycle=no_mask_reads)
    issued = [(c, i) for c, v, i, _ in trace if v]
    assert [i for _, i in issued] == expected
    startup = spec.MASK_SCAN_STARTUP
    assert [c for c, _ in issued] == list(range(startup, startup + len(expected)))
    assert trace[-1][3] and trace[-1][0] == startup + max(len(expected), 1) - 1


# ---------------------------------------------------------------- the whole core
def run_core(cfg, plan):
    """Configure once, then run `plan`: a list of (ZP_EN, pattern, zp_max, frames) steps, frames
    back to back within a step. Returns per step (outputs, lasts - firsts, gaps, counters)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))
    dut = VelcroConv2d()
    drv = CoreDriver(dut)
    results = []

    async def bench(ctx):
        await drv.configure(ctx, cfg)
        for zp_en, pattern, zp_max, frames in plan:
            step = dataclasses.replace(cfg, zp_en=bool(zp_en), zp_pattern=pattern, zp_max=zp_max)
            await drv.write(ctx, spec.addr("CONTROL"), control_word(step))
            await drv.write(ctx, spec.addr("ZP_CONFIG"), zp_config_word(step))
            outputs, firsts, lasts = await drv.run_frames(ctx, frames)
            counters = await drv.counters(ctx)
            results.append((outputs, [b - a for a, b in zip(firsts, lasts)],
                            [b - a for a, b in zip(lasts, lasts[1:])], counters))  # fmt: skip

    simulate(dut, bench)
    return results


@pytest.mark.parametrize("density", [0.0, 0.3, 0.75])
def test_core_prediction_frames_match_golden_and_cycle_model(density):
    """Isolated prediction frames on both patterns at ZP_MAX 0, mid and 255: outputs, counters, LAST_CYCLES."""
    rng = np.random.default_rng(int(100 * density) + 1)
    base = relu_heavy_config(rng, density, spec.ZP_GRID2, 0)
    steps = []
    for pattern in (spec.ZP_GRID2, spec.ZP_CHECKER):
        for zp_max in (0, 60, 255):
            steps.append((True, pattern, zp_max, [blob_frame(rng)]))
    results = run_core(base, steps)
    for (zp_en, pattern, zp_max, frames), (outputs, latencies, _, counters) in zip(steps, results):
        cfg = dataclasses.replace(base, zp_pattern=pattern, zp_max=zp_max)
        expect = golden.frame_result(frames[-1], cfg)
        where = f"pattern {pattern}, ZP_MAX {zp_max}, density {density}"
        assert np.array_equal(outputs[-1], expect.ofmap), where
        assert counters["LAST_COMPUTED"] == expect.computed_outputs, where
        assert counters["LAST_PREDICTED"] == expect.predicted_outputs, where
        assert counters["LAST_MACS"] == expect.macs, where
        assert counters["LAST_CYCLES"] == latencies[-1] == cycles.isolated_latency(cfg, frames[-1]), where
        assert expect.compressed.sum() + expect.computed_outputs + expect.predicted_outputs == N_OUTPUTS


def test_core_back_to_back_gaps_and_prediction_off_unchanged():
    rng = np.random.default_rng(5)
    base = relu_heavy_config(rng, 0.3, spec.ZP_CHECKER, 30)
    zeros = np.zeros((H, W), np.uint8)
    zp_frames = [blob_frame(rng), zeros, blob_frame(rng, 0.9), rng.integers(0, 256, (H, W), dtype=np.uint8), zeros]
    off_frames = [blob_frame(rng) for _ in range(3)]
    steps = [(True, spec.ZP_CHECKER, 30, zp_frames), (False, spec.ZP_CHECKER, 30, off_frames)]
    (zp_out, _, zp_gaps, zp_counters), (off_out, off_lat, off_gaps, off_counters) = run_core(base, steps)
    cfg = base
    for frame, out in zip(zp_frames, zp_out):
        assert np.array_equal(out, golden.frame_result(frame, cfg).ofmap)
    assert zp_gaps == cycles.back_to_back_gaps(cfg, zp_frames)
    for gap, frame in zip(zp_gaps, zp_frames[1:]):  # the contract's bound on every interval
        assert gap <= max(512, golden.frame_result(frame, cfg).computed_outputs + 3) + 64
    assert zp_counters["LAST_PREDICTED"] == golden.frame_result(zp_frames[-1], cfg).predicted_outputs
    off = dataclasses.replace(cfg, zp_en=False)
    for frame, out in zip(off_frames, off_out):
        assert np.array_equal(out, golden.conv2d(frame, off))
    assert off_counters["LAST_PREDICTED"] == 0 and off_counters["LAST_COMPUTED"] == off.computed_outputs
    assert off_gaps == cycles.back_to_back_gaps(off, off_frames)
    assert off_gaps[-1] == cycles.frame_interval(off.computed_outputs)
    assert off_counters["LAST_CYCLES"] == off_lat[-1]
