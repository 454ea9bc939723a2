"""Zero-value prediction in the Amaranth simulator: the state kept on MASK and AVG writes (group flags,
the anchors' average flags and their refresh engine), the predictor's dilate pass, and the whole core
on prediction frames, compared with the golden model (outputs, LAST_COMPUTED / LAST_PREDICTED /
LAST_MACS) and the cycle model (LAST_CYCLES of isolated frames, gaps of back-to-back frames)."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
from amaranth_sim import simulate
from core_driver import CoreDriver

from model.hw import cycles, golden, spec
from model.hw.image import control_word, zp_config_word
from model.hw.spec import H, N_OUTPUTS, W
from rtl.conv2d import VelcroConv2d
from rtl.mask_flags import MaskFlags
from rtl.zero_predict import LINES, AvgHotFlags, ZeroPredictor


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


def anchor_slots(values: np.ndarray) -> np.ndarray:
    """(64, 32) anchor-slot view of a (64, 64) map: row y, slot s is column 2s + y % 2."""
    return np.stack([values[y, y % 2 :: 2] for y in range(H)])


def line_bits(bits: np.ndarray, line: int) -> int:
    """Rows 4·line .. +3 of a (64, n) bit map as one integer, row-major (how the LUTRAM words hold them)."""
    return to_int_flat(bits[4 * line : 4 * line + 4].reshape(-1))


def to_int_flat(bits: np.ndarray) -> int:
    return sum(1 << i for i, b in enumerate(np.asarray(bits, bool).reshape(-1)) if b)


def test_mask_flags_follow_writes_with_strobes():
    rng = np.random.default_rng(21)
    dut = MaskFlags()
    mask = np.zeros((H, W), bool)

    async def bench(ctx):
        for step in range(400):
            word = int(rng.integers(0, 128)) if step >= 128 else step  # every word once, then at random
            value = int(rng.integers(0, 2**32)) if rng.random() < 0.7 else int(rng.choice([0, 0xFFFFFFFF]))
            strobe = 0xF if step < 128 else int(rng.integers(0, 16))
            ctx.set(dut.wr_en, 1)
            ctx.set(dut.wr_word, word)
            ctx.set(dut.wr_data, value)
            ctx.set(dut.wr_strb, strobe)
            flat = mask.reshape(-1)
            for k in range(4):
                if (strobe >> k) & 1:
                    flat[32 * word + 8 * k : 32 * word + 8 * k + 8] = [(value >> (8 * k + j)) & 1 for j in range(8)]
            await ctx.tick()
            ctx.set(dut.wr_en, 0)
            if step % 50 == 49:
                await check(ctx)

    async def check(ctx):
        even = ~mask[:, 0::2].reshape(H, 8, 4)
        odd = ~mask[:, 1::2].reshape(H, 8, 4)
        for y in range(H):
            ctx.set(dut.row_addr, y)
            assert ctx.get(dut.even) == to_int_flat(even[y].any(axis=1)), y
            assert ctx.get(dut.odd) == to_int_flat(odd[y].any(axis=1)), y
        assert ctx.get(dut.rows_even) == to_int_flat(even.any(axis=(1, 2)))
        assert ctx.get(dut.rows_odd) == to_int_flat(odd.any(axis=(1, 2)))
        for line in range(LINES):
            ctx.set(dut.line_addr, line)
            ctx.set(dut.late_addr, line)
            ctx.set(dut.line_en, 1)
            await ctx.tick()
            ctx.set(dut.line_en, 0)
            assert ctx.get(dut.line) == ctx.get(dut.late_line) == line_bits(mask, line), line

    simulate(dut, bench)


def test_avg_hot_flags_follow_writes_and_refresh():
    """Anchor-slot flags of AVG > ZP_MAX through writes, and through a refresh with writes colliding."""
    rng = np.random.default_rng(11)
    dut = AvgHotFlags()
    avg = rng.integers(0, 256, N_OUTPUTS, dtype=np.uint8)
    words = avg.view("<u4").copy()

    async def write(ctx, word, value, strobe=0xF):
        ctx.set(dut.wr_en, 1)
        ctx.set(dut.wr_word, word)
        ctx.set(dut.wr_data, value)
        ctx.set(dut.wr_strb, strobe)
        for k in range(4):
            if (strobe >> k) & 1:
                avg[4 * word + k] = (value >> (8 * k)) & 0xFF
        words[word] = int(avg[4 * word : 4 * word + 4].view("<u4")[0])

    async def cycle(ctx):
        # the two AVG memories behind the engine: word 2i low, 2i+1 high, one cycle after the read
        read = ctx.get(dut.rd_addr) if ctx.get(dut.rd_en) else None
        await ctx.tick()
        ctx.set(dut.wr_en, 0)
        ctx.set(dut.restart, 0)
        if read is not None:
            ctx.set(dut.rd_data, int(words[2 * read]) | int(words[2 * read + 1]) << 32)

    async def check(ctx, zp_max):
        expect = anchor_slots(avg.reshape(H, W) > zp_max)
        for line in range(LINES):
            ctx.set(dut.line_addr, line)
            ctx.set(dut.line_en, 1)
            await ctx.tick()
            ctx.set(dut.line_en, 0)
            assert ctx.get(dut.line) == line_bits(expect, line), (zp_max, line)

    async def bench(ctx):
        ctx.set(dut.zp_max, 0)
        for word in range(len(words)):  # fill through the write path at ZP_MAX = 0
            await write(ctx, word, int(words[word]))
            await cycle(ctx)
        await check(ctx, 0)
        ctx.set(dut.zp_max, 100)
        ctx.set(dut.restart, 1)
        await cycle(ctx)
        n = 0
        while ctx.get(dut.busy):
            if n % 3 == 0 and n < 1500:  # writes near and on the pairs being read and written back
                target = (2 * int(ctx.get(dut.rd_addr)) + int(rng.integers(-3, 3))) % len(words)
                await write(ctx, target, int(rng.integers(0, 2**32)), int(rng.integers(1, 16)))
            await cycle(ctx)
            n += 1
        assert n >= AvgHotFlags.REFRESH_CYCLES
        for _ in range(3):  # the last pair's data and write-back
            await cycle(ctx)
        await check(ctx, 100)

    simulate(dut, bench)


def run_predictor(cfg, ifmap):
    """Phase A's results into a ZeroPredictor, the dilate pass from memories modelled here, and what
    it leaves: (map words, rows_b, per-row flags, per-group bits, predicted count)."""
    dut = ZeroPredictor()
    result = golden.frame_result(ifmap, cfg)
    ofmap = golden.requantize(golden.accumulate(ifmap, cfg.weights, cfg.bias), cfg.mult, cfg.shift)
    mask = np.asarray(cfg.mask, bool)
    avg_hot = anchor_slots(np.asarray(cfg.avg).reshape(H, W) > cfg.zp_max)
    seen = {"map": {}, "flags": [], "bits": []}

    async def bench(ctx):
        ctx.set(dut.pattern, cfg.zp_pattern)
        ctx.set(dut.zp_max, cfg.zp_max)
        ctx.set(dut.skip_en, int(cfg.skip_en))
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for index in np.flatnonzero((result.anchors & result.computed).reshape(-1)):  # raster order
            ctx.set(dut.result_valid, 1)
            ctx.set(dut.result_index, int(index))
            ctx.set(dut.result_pixel, int(ofmap.reshape(-1)[index]))
            await ctx.tick()
        ctx.set(dut.result_valid, 0)
        ctx.set(dut.dilate_start, 1)
        for cycle in range(ZeroPredictor.COUNT_READY):
            ctx.set(dut.late_mask_line, line_bits(mask, ctx.get(dut.late_addr)))
            read = ctx.get(dut.line_addr) if ctx.get(dut.line_en) else None
            if ctx.get(dut.map_write):
                seen["map"][ctx.get(dut.map_addr)] = ctx.get(dut.map_data)
            await ctx.tick()
            ctx.set(dut.dilate_start, 0)
            if read is not None:
                ctx.set(dut.mask_line, line_bits(mask, read))
                ctx.set(dut.avg_line, line_bits(avg_hot, read))
        rows_b = ctx.get(dut.rows_b)
        for y in range(H):
            ctx.set(dut.b_row, y)
            seen["flags"].append(ctx.get(dut.b_flags))
        for group in range(spec.N_GROUPS):
            ctx.set(dut.b_group, group)
            ctx.set(dut.b_read, 1)
            await ctx.tick()
            seen["bits"].append(ctx.get(dut.b_bits))
        seen.update(rows_b=rows_b, predicted=ctx.get(dut.predicted))

    simulate(dut, bench)
    return result, seen


@pytest.mark.parametrize("pattern", [spec.ZP_GRID2, spec.ZP_CHECKER])
@pytest.mark.parametrize("density, skip_en", [(0.3, True), (0.5, False)])
def test_predictor_dilate_pass_matches_golden(pattern, density, skip_en):
    """Map, phase-B bits, their group and row flags, and the predicted count are the rule's."""
    check_dilate_pass(pattern, density, skip_en)


@pytest.mark.parametrize("pattern", [spec.ZP_GRID2, spec.ZP_CHECKER])
@pytest.mark.parametrize("density, skip_en", [(0.0, True), (0.75, True), (0.95, True)])
def test_predictor_dilate_pass_matches_golden_more(pattern, density, skip_en):
    """The same at the density extremes (slow tier: the fast tier keeps one dense and one sparse case)."""
    check_dilate_pass(pattern, density, skip_en)


def check_dilate_pass(pattern, density, skip_en):
    rng = np.random.default_rng(int(density * 10) + 7 * pattern + 3 * skip_en)
    for zp_max in (0, 90, 255):
        cfg = dataclasses.replace(relu_heavy_config(rng, density, pattern, zp_max), skip_en=skip_en)
        result, seen = run_predictor(cfg, blob_frame(rng))
        where = f"pattern {pattern}, density {density}, SKIP_EN {skip_en}, ZP_MAX {zp_max}"
        assert seen["map"] == {line: line_bits(result.predicted, line) for line in range(LINES)}, where
        phase_b = result.computed & ~result.anchors
        groups = phase_b.reshape(spec.N_GROUPS, 8)
        assert seen["bits"] == [to_int_flat(g) for g in groups], where
        assert seen["flags"] == [to_int_flat(row) for row in groups.any(axis=1).reshape(H, 8)], where
        assert seen["rows_b"] == to_int_flat(phase_b.any(axis=1)), where
        assert seen["predicted"] == result.predicted_outputs, where


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
        assert gap <= max(512, golden.frame_result(frame, cfg).computed_outputs + 3) + spec.ZP_OVERHEAD_LIMIT
    assert zp_counters["LAST_PREDICTED"] == golden.frame_result(zp_frames[-1], cfg).predicted_outputs
    off = dataclasses.replace(cfg, zp_en=False)
    for frame, out in zip(off_frames, off_out):
        assert np.array_equal(out, golden.conv2d(frame, off))
    assert off_counters["LAST_PREDICTED"] == 0 and off_counters["LAST_COMPUTED"] == off.computed_outputs
    assert off_gaps == cycles.back_to_back_gaps(off, off_frames)
    assert off_gaps[-1] == cycles.frame_interval(off.computed_outputs)
    assert off_counters["LAST_CYCLES"] == off_lat[-1]
