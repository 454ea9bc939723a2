"""Properties of the threshold-tuple parser and of the streaming statistics' merge.

The parser is the gate for every user-written tuple: whatever text arrives, it must return exact
fractions or raise `VelcroError`, never another exception, a hang, or a silently shifted tuple.
The statistics must not depend on how the images were batched, sharded or merged.
"""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.errors import VelcroError
from model.velcro.compress import parse_threshold, parse_thresholds
from model.velcro.stats import ActivationStatistics

# ---------------------------------------------------------------------- threshold tuples
fractions_below_one = st.fractions(min_value=0, max_value=1).filter(lambda t: t < 1)
decimals_below_one = st.decimals(min_value=0, max_value=1, allow_nan=False, allow_infinity=False).filter(lambda d: d < 1)
floats_below_one = st.floats(min_value=0, max_value=1, exclude_max=True)


@given(st.one_of(fractions_below_one, decimals_below_one))
def test_a_valid_threshold_reads_back_exactly(value):
    assert parse_threshold(str(value)) == Fraction(value)
    assert parse_threshold(Fraction(value)) == Fraction(value)


@given(floats_below_one)
def test_a_float_threshold_is_the_decimal_it_prints_as(value):
    assert parse_threshold(value) == Fraction(repr(value))


@given(decimals_below_one)
def test_a_percent_is_a_hundredth(value):
    sign, digits, exponent = value.as_tuple()
    percent = Decimal((sign, digits, exponent + 2))  # value · 100 without the context's rounding
    assert parse_threshold(str(percent), percent=True) == Fraction(value)


@st.composite
def tuples(draw):
    """(text, model outputs, expected): a valid tuple with one entry per output or one fewer."""
    entries = draw(st.lists(st.one_of(fractions_below_one, decimals_below_one), min_size=1, max_size=8))
    n_sites = len(entries) + draw(st.sampled_from([0, 1]))
    open_, close = draw(st.sampled_from([("", ""), ("(", ")"), ("[", "]")]))
    separator = draw(st.sampled_from([",", ", ", " , "]))
    text = open_ + separator.join(str(v) for v in entries) + close
    expected = [None] * (n_sites - len(entries)) + [Fraction(v) for v in entries]
    return text, n_sites, expected


@given(tuples())
def test_a_valid_tuple_round_trips_and_aligns_to_the_outputs(case):
    text, n_sites, expected = case
    assert parse_thresholds(text, n_sites) == expected
    values = [t for t in expected if t is not None]
    assert parse_thresholds(values, n_sites) == expected
    assert parse_thresholds(",".join(str(t) for t in values), n_sites) == expected, "printing and reading agree"


@given(st.lists(decimals_below_one, min_size=1, max_size=6), st.integers(1, 12))
def test_a_tuple_of_the_wrong_length_is_refused(entries, n_sites):
    if len(entries) in (n_sites, n_sites - 1):
        n_sites = len(entries) + 2
    with pytest.raises(VelcroError, match=f"{len(entries)} entries"):
        parse_thresholds(",".join(map(str, entries)), n_sites)


out_of_range = st.one_of(
    st.fractions(min_value=1), st.fractions(max_value=0).filter(lambda t: t < 0),
    st.decimals(min_value=1, allow_nan=False, allow_infinity=False),
    st.floats(max_value=0, exclude_max=True, allow_infinity=False), st.floats(min_value=1, allow_infinity=False),
)  # fmt: skip
not_numbers = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), "nan", "inf", "-inf", "NaN", "", "  ", "1/0", "0.3.1",
                     "3,", "thirty", "0x1", "--1", None, [0.3], b"0.3", complex(0.3)]),
    st.text(st.characters(exclude_categories=["Nd"])),  # no digits: no number but NaN and infinity
)  # fmt: skip


@given(st.lists(decimals_below_one, min_size=2, max_size=6), st.data())
def test_an_out_of_range_entry_is_refused_naming_it(entries, data):
    position = data.draw(st.integers(0, len(entries) - 1))
    entries[position] = data.draw(out_of_range)
    with pytest.raises(VelcroError, match=f"threshold {position} is .*outside the accepted range"):
        parse_thresholds(entries, len(entries))


@given(st.one_of(out_of_range, not_numbers), st.booleans())
def test_anything_else_is_refused_with_velcro_error(value, percent):
    """Not a number, NaN, infinite, negative or too large: `VelcroError` with a message, nothing else."""
    if percent and isinstance(value, (int, float, Fraction, Decimal)) and 0 <= value < 100:
        value = Fraction(value) + 100
    with pytest.raises(VelcroError, match=r"threshold .+"):
        parse_threshold(value, percent=percent)


@given(st.text(max_size=40), st.integers(1, 6), st.booleans())
def test_any_text_parses_or_raises_velcro_error(text, n_sites, percent):
    try:
        result = parse_thresholds(text, n_sites, percent=percent)
    except VelcroError as err:
        assert str(err)
    else:
        assert len(result) == n_sites and all(t is None or 0 <= t < 1 for t in result)


@given(st.sampled_from(["1", "0.5", "0", "-1", "1/3"]), st.integers(10**4, 10**12), st.sampled_from(["e", "E", "e-", "e+"]))
def test_a_huge_exponent_is_refused_at_once(mantissa, exponent, sign):
    """Regression: "1e-99999999" used to make Fraction build 10**99999999 for minutes."""
    with pytest.raises(VelcroError):
        parse_threshold(f"{mantissa}{sign}{exponent}")


@given(st.lists(decimals_below_one, min_size=2, max_size=6), st.data())
def test_an_empty_entry_is_refused_instead_of_shifting_the_tuple(entries, data):
    """Regression: "0.1,,0.2" used to drop the empty entry and read as a tuple one shorter."""
    position = data.draw(st.integers(0, len(entries)))
    text = [str(e) for e in entries]
    text.insert(position, "")
    with pytest.raises(VelcroError, match=f"entry {position} .*is empty"):
        parse_thresholds(",".join(text), len(entries) + 1)


# ---------------------------------------------------------------------- streaming statistics
class TwoSites(nn.Module):
    """Two activation outputs whose values are the input itself (an identity 1x1 convolution, and
    a hardtanh too wide to clip) and its ReLU: the statistics can be compared with NumPy's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()

    def forward(self, x):
        x = F.hardtanh(self.conv(x), -1e6, 1e6)
        return F.relu(self.conv(x))


SHAPE = (1, 2, 3)
MODEL = TwoSites().eval()


@st.composite
def sharded_images(draw):
    """(images, parts): images (n, 1, 2, 3) float32 and a split into parts of batches, in merge order.

    Every batch belongs to one part; parts may be empty and are merged in any order. One element is
    constant over all images, which must come out with a variance of exactly 0.
    """
    n = draw(st.integers(2, 24))
    offset = draw(st.sampled_from([0.0, 1e3]))
    values = st.floats(-1e3, 1e3, width=32)
    images = draw(arrays(np.float32, (n, *SHAPE), elements=values)) + np.float32(offset)
    images[:, 0, 1, 2] = draw(values)
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1)))
    batches = [slice(a, b) for a, b in zip([0, *cuts], [*cuts, n])]
    n_parts = draw(st.integers(1, 5))
    owner = [draw(st.integers(0, n_parts - 1)) for _ in batches]
    parts = [[b for b, o in zip(batches, owner) if o == p] for p in range(n_parts)]
    return images, draw(st.permutations([draw(st.permutations(part)) for part in parts]))


def observed(images: np.ndarray, batches) -> ActivationStatistics:
    stats = ActivationStatistics(MODEL)
    for batch in batches:
        stats.observe(torch.from_numpy(images[batch]))
    return stats


def sites_of(images: np.ndarray) -> list[np.ndarray]:
    x = images.astype(np.float64)
    return [x, np.maximum(x, 0)]


@given(sharded_images())
def test_merging_in_any_order_and_split_equals_one_pass(case):
    images, parts = case
    merged = ActivationStatistics(MODEL)
    for part in parts:
        merged.merge(observed(images, part))
    one_pass = observed(images, [slice(None)])
    assert merged.count == one_pass.count == len(images)
    scale = float(np.abs(images).max()) or 1.0
    for k, values in enumerate(sites_of(images)):
        for stats in (merged, one_pass):
            np.testing.assert_allclose(stats.mean(k).numpy(), values.mean(0), rtol=0, atol=1e-12 * scale)
            np.testing.assert_allclose(stats.variance(k).numpy(), values.var(0), rtol=0, atol=1e-12 * scale**2)
        assert merged.variance(k)[0, 1, 2] == 0 and merged.mean(k)[0, 1, 2] == values[0, 0, 1, 2], "a constant stays exact"


@given(sharded_images(), st.integers(0, 3))
def test_empty_parts_and_empty_batches_change_nothing(case, empties):
    images, parts = case
    batches = [b for part in parts for b in part]
    reference = observed(images, batches)
    empty_batch = slice(0, 0)
    padded = observed(images, [empty_batch] * empties + batches + [empty_batch] * empties)
    merged = ActivationStatistics(MODEL).merge(ActivationStatistics(MODEL)).merge(observed(images, [empty_batch]))
    merged.merge(reference).merge(ActivationStatistics(MODEL)).merge(observed(images, [empty_batch] * empties))
    for stats in (padded, merged):
        assert stats.count == reference.count
        for k in range(len(reference.sites)):
            assert torch.equal(stats.mean(k), reference.mean(k)) and torch.equal(stats.variance(k), reference.variance(k))


@given(sharded_images())
def test_a_saved_part_merges_like_the_original(case):
    images, parts = case
    direct, via_state = ActivationStatistics(MODEL), ActivationStatistics(MODEL)
    for part in parts:
        stats = observed(images, part)
        direct.merge(stats)
        loaded = ActivationStatistics(MODEL)
        loaded.load_state_dict(stats.state_dict())
        via_state.merge(loaded)
    for k in range(len(direct.sites)):
        assert torch.equal(direct.mean(k), via_state.mean(k)) and torch.equal(direct.variance(k), via_state.variance(k))
    assert direct.count == via_state.count == len(images)
