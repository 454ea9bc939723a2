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
    """The scanner wired as in a frame without prediction: row flags from a LUTRAM, group bits from
    the MASK memory. `row_flags` may disagree with the mask, as when settings change mid-frame."""

    def __init__(self, mask: np.ndarray, row_flags: np.ndarray | None = None):
        self.words = golden.mask_words(mask)
        flags = (np.packbits(mask.reshape(-1), bitorder="little") != 0xFF).reshape(H, 8)
        self.flag_bytes = [int(np.packbits(r, bitorder="little")[0]) for r in flags]
        rows = flags.any(axis=1) if row_flags is None else row_flags
        self.rows = sum(1 << r for r in range(H) if rows[r])
        self.scanner = MaskScanner()

    def elaborate(self, platform):
        m = Module()
        m.submodules.scanner = s = self.scanner
        m.submodules.mask = mask = Memory(shape=32, depth=128, init=self.words)
        m.submodules.flags = flags = Memory(shape=8, depth=H, init=self.flag_bytes)
        word, row = mask.read_port(), flags.read_port(domain="comb")
        m.d.comb += [word.addr.eq(s.group_addr[2:]), word.en.eq(s.group_read), row.addr.eq(s.row_addr),
                     s.row_flags.eq(row.data), s.rows.eq(self.rows),
                     s.group_bits.eq(~word.data.word_select(s.staged_group[:2], 8))]  # fmt: skip
        return m


MASKS = {
    "none": np.zeros((H, W), bool),
    "all": np.ones((H, W), bool),
    "random_0.3": np.random.default_rng(1).random((H, W)) < 0.3,
    "random_0.9": np.random.default_rng(2).random((H, W)) < 0.9,
    "random_0.995": np.random.default_rng(2).random((H, W)) < 0.995,  # single outputs in far-apart rows
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


def test_mask_scan_restarts_in_the_cycle_of_its_last_issue():
    """Back-to-back scans: STARTUP - 1 idle cycles between the last issue of one and the first of the next."""
    mask = MASKS["random_0.9"]
    dut = ScannerWithMask(mask)
    expected = np.flatnonzero(~mask.reshape(-1)).tolist()
    issues = []

    async def bench(ctx):
        s = dut.scanner
        for _ in range(s.ROWS_SETUP):
            await ctx.tick()
        ctx.set(s.start, 1)
        for cycle in range(1, 3 * (len(expected) + 8)):
            await ctx.tick()
            done = ctx.get(s.done)
            ctx.set(s.start, done)
            if ctx.get(s.issue):
                issues.append((cycle, ctx.get(s.index)))
            if done and len(issues) >= 3 * len(expected):
                break

    simulate(dut, bench)
    assert [i for _, i in issues] == expected * 3
    cycles = [c for c, _ in issues]
    gaps = [b - a for a, b in zip(cycles, cycles[1:])]
    assert sorted(set(gaps)) == [1, spec.MASK_SCAN_STARTUP]
    assert gaps.count(spec.MASK_SCAN_STARTUP) == 2


def test_mask_scan_ends_when_rows_have_no_flags():
    """Rows announced with work whose flags read 0 (settings changed mid-frame) cost cycles, never a hang."""
    mask = MASKS["random_0.9"].copy()
    mask[40:] = True  # rows 40.. have nothing, but are announced
    dut = ScannerWithMask(mask, row_flags=np.ones(H, bool))
    expected = np.flatnonzero(~mask.reshape(-1)).tolist()
    trace = scan_trace(dut, 4200)
    assert [i for _, v, i, _ in trace if v] == expected
    assert sum(d for *_, d in trace) == 1


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


# The requantizer's corners: saturating and wrapping accumulators, M and S at their limits, shifts
# that split the scaled product at the DSP boundary (bit 17) and the byte select's ends.
EXTREME_BIASES = (-(2**31), -(2**31) + 1, -1, 0, 1, 2**31 - 1)
EXTREME_MULTS = (0, 1, 2, 32768, 65535)
EXTREME_SHIFTS = (0, 1, 2, 15, 16, 17, 30, 31)


def extreme_windows(rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weights, window) pairs: the most negative and most positive sums, zero, and random ones."""
    full = np.full(9, 255)
    pairs = [(np.full(9, -128), full), (np.full(9, 127), full), (np.full(9, -128), np.zeros(9, int)),
             (np.array([127, -128] * 4 + [127]), full)]  # fmt: skip
    pairs += [(rng.integers(-128, 128, 9), rng.integers(0, 256, 9)) for _ in range(3)]
    return pairs


def test_requant_extremes_back_to_back_match_golden():
    """Bursts at every corner configuration, with a gap inside each burst, all against golden."""
    rng = np.random.default_rng(6)
    windows = extreme_windows(rng)
    dut = MacRequant(tag_width=4)
    valid_pattern = [1] * 3 + [0] + [1] * (len(windows) - 3)  # a bubble between stage enables
    mismatches = []

    async def bench(ctx):
        for bias in EXTREME_BIASES:
            for mult in EXTREME_MULTS:
                for shift in EXTREME_SHIFTS:
                    ctx.set(dut.bias, bias)
                    ctx.set(dut.mult, mult)
                    ctx.set(dut.shift, shift)
                    sent, seen = iter(enumerate(windows)), []
                    for cycle in range(len(valid_pattern) + MacRequant.LATENCY):
                        issue = cycle < len(valid_pattern) and valid_pattern[cycle]
                        if issue:
                            tag, (w, x) = next(sent)
                            for i in range(9):
                                ctx.set(dut.weights[i], int(w[i]))
                                ctx.set(dut.window[i], int(x[i]))
                            ctx.set(dut.in_tag, tag)
                        ctx.set(dut.in_valid, issue)
                        await ctx.tick()
                        if ctx.get(dut.out_valid):
                            seen.append((ctx.get(dut.out_tag), ctx.get(dut.out_pixel)))
                    for tag, pixel in seen:
                        w, x = windows[tag]
                        acc = golden.wrap_int32(bias + int(np.dot(w, x)))
                        expect = int(golden.requantize(acc, mult, shift))
                        if pixel != expect:
                            mismatches.append((bias, mult, shift, tag, pixel, expect))
                    assert [t for t, _ in seen] == list(range(len(windows))), (bias, mult, shift)

    simulate(dut, bench)
    assert not mismatches, mismatches[:5]
