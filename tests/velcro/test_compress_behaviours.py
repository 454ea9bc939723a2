"""compress(), the first activation output left alone, statistics loaded from a file, NaN inputs, and
exact zero fraction and saving ratios (model/README.md, sections 2-4), on small hand-built models whose
answers can be written down."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn as nn

from model.errors import VelcroError
from model.velcro.compress import compress, saving_ratio, parse_thresholds
from model.velcro.stats import ActivationStatistics

SHAPE = (1, 6, 6)  # per image


def two_site_model() -> nn.Sequential:
    """conv 1->2 (648 MACs), ReLU: site 0, 2x6x6; conv 2->3 (1,944 MACs), ReLU: site 1, 3x6x6."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1), nn.ReLU()).eval()


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model_and_stats():
    model = two_site_model()
    stats = ActivationStatistics(model)
    stats.observe(images(16, 1))
    return model, stats


def lowest(variance: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` lowest-variance elements, ties to the lower flat index, written without the library."""
    order = sorted(range(variance.numel()), key=lambda i: (float(variance.reshape(-1)[i]), i))[:count]
    mask = torch.zeros(variance.numel(), dtype=torch.bool)
    mask[order] = True
    return mask.view(variance.shape)


def by_hand(model: nn.Sequential, stats: ActivationStatistics, masks: list, x: torch.Tensor) -> torch.Tensor:
    """The compressed forward pass written out: after each ReLU, masked elements take their mean."""
    site = 0
    for layer in model:
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            if masks[site] is not None:
                x = torch.where(masks[site], stats.mean(site).float(), x)
            site += 1
    return x


def test_compress_applies_the_rule(model_and_stats):
    model, stats = model_and_stats
    masks = [lowest(stats.variance(0), 36), lowest(stats.variance(1), 27)]  # ⌊0.5·72⌋, ⌊0.25·108⌋
    x = images(4, 2)
    with torch.no_grad():
        expect = by_hand(model, stats, masks, x)
        torch.testing.assert_close(compress(model, stats, "0.5,0.25")(x), expect, rtol=0, atol=0)
        torch.testing.assert_close(compress(model, stats, "50,25", percent=True)(x), expect, rtol=0, atol=0)
        torch.testing.assert_close(compress(model, stats, [0.5, 0.25])(x), expect, rtol=0, atol=0)
    with pytest.raises(VelcroError, match="has 3 entries but the model has 2 activation outputs"):
        compress(model, stats, "0.1,0.2,0.3")


def test_a_tuple_one_short_leaves_the_first_output_alone(model_and_stats):
    model, stats = model_and_stats
    skipped = compress(model, stats, "0.5")
    assert skipped.compressed_sites == [1] and not hasattr(skipped, "mask_0")
    x = images(4, 3)
    with torch.no_grad():
        expect = by_hand(model, stats, [None, lowest(stats.variance(1), 54)], x)
        torch.testing.assert_close(skipped(x), expect, rtol=0, atol=0)
        # compressing the first output too gives a different result, so the skip is what made it equal
        assert not torch.equal(compress(model, stats, "0.5,0.5")(x), expect)
    ratio = saving_ratio(stats.sites, parse_thresholds("0.5", 2), stats.total_macs)
    assert ratio.layers[0].threshold is None and ratio.layers[0].compressed == 0 and ratio.saving_ratio == 0.5


def test_statistics_loaded_from_a_file_compress_the_same(model_and_stats, tmp_path):
    model, stats = model_and_stats
    path = tmp_path / "stats.pt"
    torch.save(stats.state_dict(), path)
    loaded = ActivationStatistics(two_site_model())
    loaded.load_state_dict(torch.load(path, weights_only=True))
    assert (loaded.count, loaded.sites, loaded.total_macs) == (stats.count, stats.sites, stats.total_macs)
    x = images(4, 4)
    with torch.no_grad():
        assert torch.equal(compress(model, loaded, "0.3,0.6")(x), compress(model, stats, "0.3,0.6")(x))


def test_nan_input_in_a_compressed_forward_pass(model_and_stats):
    """No error: compressed elements take their mean on every input, NaN or not; the NaN spreads through
    every other element it reaches, exactly as in the uncompressed model."""
    model, stats = model_and_stats
    compressed = compress(model, stats, "0.5,0.5")
    x = images(2, 5)
    x[0, 0, 2, 3] = float("nan")
    masks = [lowest(stats.variance(0), 36), lowest(stats.variance(1), 54)]
    with torch.no_grad():
        out = compressed(x)
        torch.testing.assert_close(out, by_hand(model, stats, masks, x), rtol=0, atol=0, equal_nan=True)
    assert torch.equal(out[0][masks[1]], stats.mean(1).float()[masks[1]]), "compressed elements keep their mean"
    assert torch.isnan(out[0]).any() and not torch.isnan(out[1]).any(), "the NaN stays in its own image"


def test_zero_fraction_is_exact():
    """Channel 0 is ReLU(-x - 1) = 0 on every input (x >= 0): 16 elements of variance 0 and mean 0;
    channel 1 is x + 1 > 0. Compressing 24 of the 32 elements takes the 16 zeros and 8 others: 2/3."""
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU()).eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1))
        model[0].bias.copy_(torch.tensor([-1.0, 1.0]))
    stats = ActivationStatistics(model)
    stats.observe(torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(6)))
    assert compress(model, stats, "0.75").zero_fraction() == pytest.approx(2 / 3, abs=0)
    assert compress(model, stats, "0.5").zero_fraction() == 1.0
    assert compress(model, stats, "0").zero_fraction() == 0.0


def test_saving_ratios_are_exact(model_and_stats):
    """C = Σ T·n / Σ n over 72 and 108 elements; MAC-weighted over 648 and 1,944 MACs; the saved share of
    all 2,592 MACs. With the first output left alone only the second counts."""
    _, stats = model_and_stats
    assert [(s.numel, s.macs) for s in stats.sites] == [(72, 648), (108, 1944)] and stats.total_macs == 2592
    both = saving_ratio(stats.sites, parse_thresholds("0.5,0.25", 2), stats.total_macs)
    assert both.saving_ratio == pytest.approx((0.5 * 72 + 0.25 * 108) / 180, abs=1e-15)
    assert both.mac_weighted_ratio == pytest.approx((0.5 * 648 + 0.25 * 1944) / 2592, abs=1e-15)
    assert both.model_mac_fraction == pytest.approx(810 / 2592, abs=1e-15)
    second = saving_ratio(stats.sites, parse_thresholds("0.25", 2), stats.total_macs)
    assert (second.saving_ratio, second.mac_weighted_ratio) == (0.25, 0.25)
    assert second.model_mac_fraction == pytest.approx(0.25 * 1944 / 2592, abs=1e-15)


def test_a_tuple_as_search_prints_it_can_be_given_back():
    """`velcro search` writes a left-alone output as "-"; --thresholds reads that tuple back unchanged."""
    assert parse_thresholds("-,0.3000,0.1250", 3) == [None, Fraction(3, 10), Fraction(1, 8)]
    assert parse_thresholds("(-, 30, 12.5)", 3, percent=True) == [None, Fraction(3, 10), Fraction(1, 8)]
    with pytest.raises(VelcroError, match="2 entries but the model has 4"):
        parse_thresholds("-,-", 4)
