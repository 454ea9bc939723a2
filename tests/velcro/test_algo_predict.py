"""Zero-value prediction: the rule against the golden model and a plain loop, composition with VELCRO, MAC counts."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from model.errors import VelcroError
from model.hw import golden
from model.velcro.compress import compression_masks, parse_thresholds
from model.velcro.predict import (
    PATTERNS,
    PredictingModel,
    anchor_map,
    parse_pattern,
    parse_zp_maxes,
    predict_zeros,
    predicting_model,
)
from model.velcro.stats import ActivationStatistics


def test_patterns_are_the_hardware_codes():
    assert PATTERNS == ("grid2", "checker")
    for name, code in golden.ZP_PATTERNS.items():
        assert parse_pattern(name) == parse_pattern(code) == code
        assert torch.equal(anchor_map(name, 64, 64), torch.from_numpy(golden.anchors(code)))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_rule_equals_golden_on_integer_maps(pattern):
    rng = np.random.default_rng(7)
    values, masks, expected, expected_pred, zp = [], [], [], [], []
    for trial in range(12):
        cfg = golden.random_config(rng, float(rng.uniform(0, 0.4)))
        cfg = golden.ConvConfig(**{**cfg.__dict__, "zp_en": True, "zp_pattern": golden.ZP_PATTERNS[pattern], "zp_max": int(rng.integers(0, 30))})
        ifmap = rng.integers(0, 256, (64, 64)).astype(np.uint8)
        frame = golden.frame_result(ifmap, cfg)
        plain = golden.requantize(golden.accumulate(ifmap, cfg.weights, cfg.bias), cfg.mult, cfg.shift)
        plain[cfg.effective_mask] = cfg.avg[cfg.effective_mask]  # VELCRO first
        values.append(plain), masks.append(cfg.effective_mask), expected.append(frame.ofmap)
        expected_pred.append(frame.predicted), zp.append(cfg.zp_max)
    for zp_max in sorted(set(zp)):  # one zp_max per call: group the frames
        idx = [i for i, z in enumerate(zp) if z == zp_max]
        x = torch.from_numpy(np.stack([values[i] for i in idx]).astype(np.float32)).unsqueeze(0)  # (1, C, 64, 64)
        m = torch.from_numpy(np.stack([masks[i] for i in idx]))
        out, predicted = predict_zeros(x, pattern, float(zp_max), m)
        assert np.array_equal(out[0].numpy().astype(np.uint8), np.stack([expected[i] for i in idx]))
        assert np.array_equal(predicted[0].numpy(), np.stack([expected_pred[i] for i in idx]))
    assert sum(int(p.sum()) for p in expected_pred) > 0


def _loop(values: np.ndarray, pattern: str, zp_max: float, mask: np.ndarray) -> np.ndarray:
    h, w = values.shape
    anchor = lambda y, x: (y % 2 == 0 and x % 2 == 0) if pattern == "grid2" else (y + x) % 2 == 0
    predicted = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            if mask[y, x] or anchor(y, x):
                continue
            near = [values[v, u] for v in range(y - 1, y + 2) for u in range(x - 1, x + 2) if 0 <= v < h and 0 <= u < w and anchor(v, u)]
            predicted[y, x] = all(a <= zp_max for a in near)
    return predicted


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("zp_max", [0.0, 0.25])
def test_rule_equals_a_plain_loop_on_a_tiny_map(pattern, zp_max):
    gen = torch.Generator().manual_seed(3)
    x = torch.relu(torch.randn(3, 2, 5, 7, generator=gen) - 0.4)
    mask = torch.rand(2, 5, 7, generator=gen) < 0.2
    x = torch.where(mask, torch.full_like(x, 0.1), x)  # compressed elements carry their "mean"
    out, predicted = predict_zeros(x, pattern, zp_max, mask)
    for n in range(3):
        for c in range(2):
            want = _loop(x[n, c].numpy(), pattern, zp_max, mask[c].numpy())
            assert np.array_equal(predicted[n, c].numpy(), want)
    assert torch.equal(out, x.masked_fill(predicted, 0)) and predicted.any()
    assert not (predicted & mask).any()


def test_composition_compressed_anchor_uses_its_mean():
    x = torch.zeros(1, 1, 4, 4)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = True  # an anchor of both patterns
    mask[0, 1, 1] = True  # a non-anchor (GRID2) next to it
    x[0, 0, 1, 1] = 0.5  # its mean: kept, not predicted
    out, predicted = predict_zeros(x, "grid2", 0.0, mask)
    assert out[0, 0, 1, 1] == 0.5 and not predicted[0, 0, 1, 1] and predicted[0, 0, 0, 1]
    x[0, 0, 0, 0] = 0.3  # the compressed anchor's mean is above ZP_MAX: its neighbours are computed
    _, predicted = predict_zeros(x, "grid2", 0.0, mask)
    assert not predicted[0, 0, 0, 1] and not predicted[0, 0, 1, 0] and predicted[0, 0, 3, 3]
    _, predicted = predict_zeros(x, "grid2", 0.3, mask)  # value <= ZP_MAX counts as zero
    assert predicted[0, 0, 0, 1]


def test_parse_errors_and_alignment():
    with pytest.raises(VelcroError, match="unknown prediction pattern 'grid3': use grid2 or checker"):
        parse_pattern("grid3")
    with pytest.raises(VelcroError, match="negative"):
        parse_zp_maxes("0,-1,0", 4)
    with pytest.raises(VelcroError, match="not a number"):
        parse_zp_maxes("0,x", 3)
    with pytest.raises(VelcroError, match="finite"):
        parse_zp_maxes([float("nan")], 3)
    with pytest.raises(VelcroError, match="give one value, 5 .* or 4"):
        parse_zp_maxes("0,0", 5)
    with pytest.raises(VelcroError, match="entry 1 of the ZP_MAX tuple '0,,3' is empty"):
        parse_zp_maxes("0,,3", 3)
    assert parse_zp_maxes("0", 4) == [None, 0.0, 0.0, 0.0]
    assert parse_zp_maxes("0.1,-,0.2", 4) == [None, 0.1, None, 0.2]
    assert parse_zp_maxes([0, 0, 0, 1], 4) == [0.0, 0.0, 0.0, 1.0]


class _Residual(nn.Module):
    """stem conv → ReLU → [conv → ReLU → conv] + skip → ReLU (the post-add ReLU is the conv's output)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.relu(self.stem(x))
        y = self.conv2(self.relu(self.conv1(x)))
        x = self.relu(x + y - 0.3)
        return self.fc(x.mean((2, 3)))


def _independent_predicted(model, stats, x, zp_maxes, masks, pattern):
    """Predicted elements per site, recomputed with plain loops on the compressed model's own inputs."""
    from model.velcro.sites import intercept

    counts = [0] * len(stats.sites)

    def hook(index, _name, _function, out, _macs):
        mask = masks[index]
        out = out if mask is None else torch.where(mask, stats.mean(index).float(), out)
        if zp_maxes[index] is None:
            return out
        m = np.zeros(out.shape[1:], dtype=bool) if mask is None else mask.numpy()
        pred = np.stack([np.stack([_loop(out[n, c].numpy(), pattern, zp_maxes[index], m[c]) for c in range(out.shape[1])]) for n in range(len(out))])
        counts[index] += int(pred.sum())
        return out.masked_fill(torch.from_numpy(pred), 0)

    with torch.no_grad(), intercept(model, hook):
        model(x)
    return counts


def test_mac_counting_with_a_residual_add():
    torch.manual_seed(0)
    model = _Residual().eval()
    images = torch.rand(6, 1, 8, 8)
    stats = ActivationStatistics(model)
    stats.observe(images)
    assert [s.macs for s in stats.sites] == [4 * 64 * 9, 4 * 64 * 36, 4 * 64 * 36]  # the add's ReLU: conv2's cost
    thresholds = parse_thresholds("0.25,0.25", 3)
    zp_maxes = parse_zp_maxes("0.05", 3)
    masks = compression_masks(stats, thresholds)
    model_zp = PredictingModel(model, stats, masks, zp_maxes, "checker", thresholds)
    with torch.no_grad():
        model_zp(images[:4]), model_zp(images[4:])
    report = model_zp.mac_report()
    counts = _independent_predicted(model, stats, images, zp_maxes, masks, "checker")
    assert report.images == 6 and [l.name for l in report.layers] == [s.name for s in stats.sites[1:]]
    assert [l.predicted * 6 for l in report.layers] == pytest.approx(counts[1:])
    compressed = [math.floor(0.25 * 256)] * 2
    per_element = 36
    skipped = sum((c + p / 6) * per_element for c, p in zip(compressed, counts[1:]))
    assert report.mac_reduction == pytest.approx(skipped / (2 * 256 * 36))
    assert report.mac_reduction_without_prediction == pytest.approx(0.25)
    assert report.predicted_fraction == pytest.approx(sum(counts[1:]) / 6 / 512)
    assert report.mac_reduction > report.mac_reduction_without_prediction


def test_resnet18_residual_sites_count_the_branch_convolutions():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    stats = ActivationStatistics(model)
    stats.observe(torch.randn(3, 3, 32, 32))
    by_name = {s.name: s for s in stats.sites}
    assert by_name["layer1.0.relu#2"].macs == 64 * 8 * 8 * 64 * 9  # conv2 only (identity skip)
    assert by_name["layer2.0.relu#2"].macs == 128 * 4 * 4 * (128 * 9 + 64)  # conv2 + 1×1 downsample
    zp_model = predicting_model(model, stats, None, parse_zp_maxes("0", len(stats.sites)), "grid2")
    with torch.no_grad():
        zp_model(torch.randn(2, 3, 32, 32))
    report = zp_model.mac_report()
    assert 0 < report.mac_reduction == report.predicted_mac_fraction < 0.75
    assert report.mac_reduction_without_prediction == 0 and len(report.layers) == len(stats.sites) - 1
    per_layer = sum(l.predicted * l.macs_per_element for l in report.layers) / sum(l.macs for l in report.layers)
    assert report.mac_reduction == pytest.approx(per_layer)


def test_prediction_needs_maps():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Conv1d(2, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
    stats = ActivationStatistics(model)
    stats.observe(torch.rand(3, 1, 8))
    with pytest.raises(VelcroError, match="2-D maps"):
        predicting_model(model, stats, None, parse_zp_maxes("0", 2))
