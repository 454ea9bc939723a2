"""Properties of the golden model over generated configurations, against a formulation of its own.

The reference is test_golden.py's, written from rtl/README.md (sections 1 and 8) with scipy's
correlation, Python integers and a loop over positions, so it shares no code path with `model.hw.golden`.
Strategies lean on the extremes: M = 0 and 65535, S = 0 and 31, int32 bias limits, weights
-128/127, all-compressed and all-computed masks, ZP_MAX 0 and 255.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.signal import correlate2d
from test_golden import predicted_by_loop, reference_output

from model.hw import golden
from model.hw.golden import ConvConfig
from model.hw.spec import MACS_PER_OUTPUT, H, W

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def edgy_integers(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers in [low, high] that hit both ends often: the ends are where wraps and clamps live."""
    return st.one_of(st.sampled_from([low, high]), st.integers(low, high))


@st.composite
def maps(draw, dtype, elements: st.SearchStrategy) -> np.ndarray:
    """A 64x64 map: sparse (constant plus a few values, so shrinkable) or dense from a drawn seed."""
    if draw(st.booleans()):
        return draw(arrays(dtype, (H, W), elements=elements))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == np.bool_:
        return rng.random((H, W)) < draw(st.floats(0, 1))
    return rng.integers(0, 256, (H, W)).astype(dtype)


@st.composite
def configs(draw) -> ConvConfig:
    """Extreme registers, or small weights, bias and M that keep many outputs inside 0..255, where
    rounding and shifting show instead of hiding behind the clamp."""
    shift = draw(st.one_of(st.sampled_from([0, 1, 31]), st.integers(0, 31)))  # S = 1: the smallest R
    if draw(st.booleans()):
        weight, bias, mult = edgy_integers(-128, 127), edgy_integers(INT32_MIN, INT32_MAX), edgy_integers(0, 2**16 - 1)
    else:  # |acc| <= 9·4·255 + 300 < 2^14, so M <= 2^(S-5) keeps a share of the outputs in range
        weight, bias, mult = st.integers(-4, 4), st.integers(-300, 300), st.integers(0, min(2**16 - 1, max(1, 2**shift >> 5)))
    return ConvConfig(
        weights=np.array(draw(st.lists(weight, min_size=9, max_size=9))).reshape(3, 3),
        bias=draw(bias),
        mult=draw(mult),
        shift=shift,
        mask=draw(maps(np.bool_, st.booleans())),
        avg=draw(maps(np.uint8, edgy_integers(0, 255))),
        skip_en=draw(st.booleans()),
        zp_en=draw(st.booleans()),
        zp_pattern=draw(st.sampled_from(sorted(golden.ZP_PATTERNS.values()))),
        zp_max=draw(edgy_integers(0, 255)),
    )


ifmaps = maps(np.uint8, edgy_integers(0, 255))


def reference_frame(ifmap: np.ndarray, cfg: ConvConfig) -> tuple[np.ndarray, np.ndarray]:
    """(OFMAP, predicted) from test_golden.py's formulation of the contract (scipy and loops)."""
    if cfg.zp_en:
        return predicted_by_loop(ifmap, cfg)
    return reference_output(ifmap, cfg), np.zeros((H, W), bool)


RAMP = (np.arange(H * W) % 256).astype(np.uint8).reshape(H, W)
IDENTITY_S1 = ConvConfig(np.eye(1, 9, 4, dtype=np.int64).reshape(3, 3), 0, 1, 1, np.zeros((H, W), bool), np.zeros((H, W)))


@given(configs(), ifmaps)
@example(IDENTITY_S1, RAMP)  # S = 1 on every in-range value: R = 1 rounds odd values up
def test_frame_result_matches_the_reference(cfg, ifmap):
    result = golden.frame_result(ifmap, cfg)
    expected_ofmap, expected_predicted = reference_frame(ifmap, cfg)
    np.testing.assert_array_equal(result.ofmap, expected_ofmap)
    np.testing.assert_array_equal(result.predicted, expected_predicted)
    np.testing.assert_array_equal(golden.conv2d(ifmap, cfg), expected_ofmap)


@given(configs(), ifmaps)
def test_every_output_is_counted_once(cfg, ifmap):
    """Compressed, predicted and computed partition the frame; MACs and prediction follow the rule."""
    result = golden.frame_result(ifmap, cfg)
    np.testing.assert_array_equal(result.compressed, np.asarray(cfg.mask, bool) & cfg.skip_en)
    assert not (result.compressed & result.predicted).any()
    assert not (result.anchors & result.predicted).any()
    assert result.computed_outputs + result.predicted_outputs + int(result.compressed.sum()) == H * W
    assert result.macs == MACS_PER_OUTPUT * result.computed_outputs
    assert not result.ofmap[result.predicted].any()
    if not cfg.zp_en:
        assert result.predicted_outputs == 0 and result.computed_outputs == cfg.computed_outputs


@given(configs(), ifmaps, st.integers(0, 255), st.integers(0, 255))
def test_a_larger_zp_max_never_predicts_less(cfg, ifmap, zp_a, zp_b):
    """Anchor values do not depend on ZP_MAX, so raising it can only add predicted positions."""
    low, high = sorted((zp_a, zp_b))
    with_low = golden.frame_result(ifmap, ConvConfig(**{**cfg.__dict__, "zp_en": True, "zp_max": low}))
    with_high = golden.frame_result(ifmap, ConvConfig(**{**cfg.__dict__, "zp_en": True, "zp_max": high}))
    assert not (with_low.predicted & ~with_high.predicted).any()


@given(configs(), ifmaps)
def test_m_zero_computes_zeros_and_s_zero_m_one_is_the_clamped_accumulator(cfg, ifmap):
    plain = {**cfg.__dict__, "skip_en": False, "zp_en": False}
    assert not golden.conv2d(ifmap, ConvConfig(**{**plain, "mult": 0})).any()
    acc = correlate2d(ifmap.astype(np.int64), np.asarray(cfg.weights, np.int64), mode="same") + cfg.bias
    wrapped = (acc + 2**31) % 2**32 - 2**31
    np.testing.assert_array_equal(golden.conv2d(ifmap, ConvConfig(**{**plain, "mult": 1, "shift": 0})), np.clip(wrapped, 0, 255))


OUT_OF_RANGE = {
    "weights": st.sampled_from([-129, 128, -(2**15), 2**15]).map(lambda v: np.full((3, 3), v)),
    "bias": st.one_of(st.integers(max_value=INT32_MIN - 1), st.integers(min_value=INT32_MAX + 1)),
    "mult": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**16)),
    "shift": st.one_of(st.integers(max_value=-1), st.integers(min_value=32)),
    "avg": st.sampled_from([-1, 256, 1000]).map(lambda v: np.full((H, W), v)),
    "zp_pattern": st.integers().filter(lambda v: v not in golden.ZP_PATTERNS.values()),
    "zp_max": st.one_of(st.integers(max_value=-1), st.integers(min_value=256)),
}


@pytest.mark.parametrize("field", OUT_OF_RANGE)
@given(data=st.data())
def test_a_value_the_registers_cannot_hold_is_refused(field, data):
    cfg = data.draw(configs())
    bad = data.draw(OUT_OF_RANGE[field])
    with pytest.raises(ValueError, match=field if field != "weights" else "int8"):
        ConvConfig(**{**cfg.__dict__, field: bad})
