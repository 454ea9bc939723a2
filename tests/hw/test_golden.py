"""The golden model against an independent formulation (scipy correlate2d + Python integers)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate2d

from model.hw import cycles, golden, spec
from model.hw.golden import ConvConfig
from model.hw.spec import H, W


def reference_output(x, cfg: ConvConfig) -> np.ndarray:
    """Written from the arithmetic contract (rtl/README.md) without the golden model's helpers."""
    corr = correlate2d(x.astype(np.int64), np.asarray(cfg.weights, np.int64), mode="same", fillvalue=0)
    out = np.zeros((H, W), np.uint8)
    for y in range(H):
        for xx in range(W):
            acc = (int(corr[y, xx]) + int(cfg.bias)) & 0xFFFFFFFF
            acc = acc - (1 << 32) if acc >= 1 << 31 else acc  # int32 wrap
            r = 1 << (cfg.shift - 1) if cfg.shift else 0
            v = (acc * cfg.mult + r) // (1 << cfg.shift)  # floor division == arithmetic shift
            out[y, xx] = min(max(v, 0), 255)
            if cfg.mask[y, xx] and cfg.skip_en:
                out[y, xx] = cfg.avg[y, xx]
    return out


@pytest.mark.parametrize("seed", range(5))
def test_golden_matches_independent_formulation(seed):
    rng = np.random.default_rng(seed)
    cfg = golden.random_config(rng, density=[0.0, 0.3, 0.75, 1.0, 0.5][seed], skip_en=seed != 4)
    x = rng.integers(0, 256, (H, W), dtype=np.uint8)
    np.testing.assert_array_equal(golden.conv2d(x, cfg), reference_output(x, cfg))


# Extremes of the requantization: name -> (weight range, bias, M, S). Each must produce both clamped and
# in-range outputs (checked below), so that a wrong shift, rounding or wrap cannot hide behind a clamp.
EXTREMES = {
    "bias_near_max_wraps_S31": ((0, 128), 2**31 - 5000, 65535, 31),
    "bias_near_min_wraps_S31": ((-128, 1), -(2**31) + 5000, 65535, 31),
    "bias_near_min_wraps_S24": ((-128, 1), -(2**31) + 5000, 1, 24),
    "S0_M1": ((-2, 3), 40, 1, 0),
    "S0_bias_near_min": ((-1, 2), -(2**31) + 300, 1, 0),
    "S1_rounds_half_up": ((-3, 4), 1, 1, 1),
    "S2": ((-5, 6), -7, 3, 2),
    "M0": ((-128, 128), 12345, 0, 7),
}


@pytest.mark.parametrize("name", EXTREMES)
def test_golden_matches_independent_formulation_at_extremes(name):
    (low, high), bias, mult, shift = EXTREMES[name]
    rng = np.random.default_rng(sorted(EXTREMES).index(name))
    mask = rng.random((H, W)) < 0.2
    cfg = ConvConfig(rng.integers(low, high, (3, 3)), bias, mult, shift, mask, rng.integers(0, 256, (H, W)))
    x = rng.integers(0, 256, (H, W), dtype=np.uint8)
    x[20:40, 8:30] = 0  # a region where the accumulator is the bias alone
    out = golden.conv2d(x, cfg)
    np.testing.assert_array_equal(out, reference_output(x, cfg))
    computed = out[~mask]
    if mult:
        assert len(np.unique(computed)) >= 2, f"{name}: every computed output is {computed[0]}; the case tests nothing"
    else:
        assert not computed.any(), "M = 0: every computed output is 0"


def test_packing_round_trips_and_layout():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W), dtype=np.uint8)
    beats = golden.frame_to_beats(frame)
    assert len(beats) == 512
    assert beats[1] & 0xFF == frame[0, 8] and (beats[1] >> 56) == frame[0, 15]
    np.testing.assert_array_equal(golden.beats_to_frame(beats), frame)
    mask = np.zeros((H, W), bool)
    mask[0, 33] = True  # output index 33 -> MASK[1] bit 1
    assert golden.mask_words(mask)[1] == 0b10 and sum(golden.mask_words(mask)) == 2
    assert golden.mask_bytes(mask) == b"".join(w.to_bytes(4, "little") for w in golden.mask_words(mask))
    avg = np.zeros((H, W), np.uint8)
    avg[0, 6] = 0xAB  # output index 6 -> AVG[1] byte 2
    assert golden.avg_words(avg)[1] == 0xAB << 16


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(weights=np.zeros((3, 2))), "3x3"),
        (dict(bias=2**31), "int32"),
        (dict(mult=65536), "16-bit"),
        (dict(shift=32), r"\[0, 31\]"),
        (dict(mask=np.zeros((4, 4))), "shape"),
    ],
)
def test_config_validation(kwargs, message):
    base = dict(weights=np.zeros((3, 3)), bias=0, mult=1, shift=0, mask=np.zeros((H, W)), avg=np.zeros((H, W)))
    with pytest.raises(ValueError, match=message):
        ConvConfig(**{**base, **kwargs})


def test_cycle_model_shape():
    assert cycles.frame_interval(4096) <= 4112, "C = 0 must stay within 16 cycles of one output per cycle"
    assert cycles.frame_interval(0) == 512
    for c in range(0, 4097, 97):
        assert cycles.frame_interval(c) <= max(512, c) + 16
        assert cycles.frame_latency(c) == cycles.frame_latency(0) - 1 + max(c, 1)  # one cycle per computed output
        assert cycles.frame_interval(c) == max(512, max(c, 1) + 3)
    with pytest.raises(ValueError):
        cycles.frame_latency(4097)


def test_cycle_model_uses_the_contract_latencies():
    assert cycles.STARTUP == spec.MASK_SCAN_STARTUP
    assert cycles.PIPELINE == spec.WINDOW_READ_LATENCY + spec.MAC_LATENCY
    assert cycles.OUTPUT_LATENCY == spec.OUTPUT_LATENCY
    fixed = 2 * spec.BEATS_PER_FRAME + cycles.STARTUP - 1 + cycles.PIPELINE + 1 + cycles.OUTPUT_LATENCY - 1
    assert cycles.frame_latency(100) == fixed + 100


def predicted_by_loop(x, cfg: ConvConfig) -> tuple[np.ndarray, np.ndarray]:
    """Zero-value prediction written position by position from its definition: (OFMAP, predicted)."""
    base = reference_output(x, ConvConfig(cfg.weights, cfg.bias, cfg.mult, cfg.shift, cfg.mask, cfg.avg, cfg.skip_en))
    out, predicted = base.copy(), np.zeros((H, W), dtype=bool)

    def is_anchor(y, xx):
        return (y % 2 == 0 and xx % 2 == 0) if cfg.zp_pattern == golden.ZP_GRID2 else (y + xx) % 2 == 0

    for y in range(H):
        for xx in range(W):
            if (cfg.skip_en and cfg.mask[y, xx]) or is_anchor(y, xx):
                continue
            neighbours = [base[y + dy, xx + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                          if 0 <= y + dy < H and 0 <= xx + dx < W and is_anchor(y + dy, xx + dx)]  # fmt: skip
            assert neighbours, f"position ({y}, {xx}) has no anchor around it"
            if all(v <= cfg.zp_max for v in neighbours):
                out[y, xx], predicted[y, xx] = 0, True
    return out, predicted


@pytest.mark.parametrize("pattern", [golden.ZP_GRID2, golden.ZP_CHECKER])
@pytest.mark.parametrize("zp_max", [0, 77, 255])
@pytest.mark.parametrize("seed", range(3))
def test_prediction_matches_a_loop_over_anchor_neighbours(pattern, zp_max, seed):
    rng = np.random.default_rng(1000 * pattern + 10 * seed + zp_max)
    base = golden.random_config(rng, [0.0, 0.3, 0.75][seed], skip_en=bool(seed != 2 or zp_max))
    # Zero blobs so that prediction has something to find, and compressed anchors with a
    # mix of averages so they decide some predictions.
    x = rng.integers(0, 256, (H, W), dtype=np.uint8)
    y, xx = np.indices((H, W))
    x[(y - 20) ** 2 + (xx - 30) ** 2 < 300] = 0
    cfg = ConvConfig(base.weights, -abs(base.bias), base.mult, base.shift, base.mask, base.avg, base.skip_en,
                     zp_en=True, zp_pattern=pattern, zp_max=zp_max)  # fmt: skip
    result = golden.frame_result(x, cfg)
    expect, predicted = predicted_by_loop(x, cfg)
    assert np.array_equal(result.ofmap, expect), f"seed {seed}: OFMAP differs from the loop formulation"
    assert np.array_equal(result.predicted, predicted), f"seed {seed}: predicted positions differ"
    assert result.computed_outputs + result.predicted_outputs + int(result.compressed.sum()) == H * W
    if zp_max == 255:
        assert result.predicted_outputs == int((~result.compressed & ~result.anchors).sum()), "all non-anchors predicted"


def test_prediction_off_is_the_plain_arithmetic():
    rng = np.random.default_rng(5)
    cfg = golden.random_config(rng, 0.4)
    x = rng.integers(0, 256, (H, W), dtype=np.uint8)
    result = golden.frame_result(x, cfg)
    assert not result.predicted.any() and result.computed_outputs == cfg.computed_outputs
    assert np.array_equal(result.ofmap, reference_output(x, cfg))
    zp = ConvConfig(cfg.weights, cfg.bias, cfg.mult, cfg.shift, cfg.mask, cfg.avg, zp_en=True)
    with pytest.raises(ValueError, match="frame_result"):
        _ = zp.computed_outputs
    with pytest.raises(ValueError, match="zp_pattern"):
        ConvConfig(cfg.weights, cfg.bias, cfg.mult, cfg.shift, cfg.mask, cfg.avg, zp_pattern=2)
    with pytest.raises(ValueError, match="zp_max"):
        ConvConfig(cfg.weights, cfg.bias, cfg.mult, cfg.shift, cfg.mask, cfg.avg, zp_max=256)
