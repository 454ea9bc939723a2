"""Export of the hardware layer and the end-to-end paths, golden runner as RTL stand-in."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from model import cli
from model.deploy.e2e import PATHS, largest_lossless, prepare, run_paths
from model.deploy.export import FORMAT_VERSION, export_layer, load_export, save_export
from model.deploy.masks import allocation_masks, balanced_masks, per_layer_masks, top_speedup
from model.deploy.quantize import calibrate, float_layer_sha256, golden_runner, mult_shift
from model.errors import VelcroError
from model.hw.golden import ConvConfig


@pytest.fixture(scope="module")
def ctx():
    return prepare("footwear", 4, error_images=4)


# ---------------------------------------------------------------------- quantization
def test_mult_shift_ranges_and_precision():
    rng = np.random.default_rng(1)
    for real in np.concatenate([10.0 ** rng.uniform(-9, 4, 200), [1.0, 0.5, 65535.0, 2.0**-31]]):
        m, s = mult_shift(float(real))
        assert 0 < m < 2**16 and 0 <= s <= 31
        if s < 31:  # normalised: the top bit of M is used unless S is at its limit
            assert m >= 2**15 - 1
            assert abs(m / 2**s - real) / real <= 2.0**-15
    for bad in (0.0, -1.0, float("nan"), float("inf"), 2.0**17, 1e-12):
        with pytest.raises(VelcroError, match="multiplier"):
            mult_shift(bad)


def test_calibrated_configs_are_valid(ctx):
    q = ctx.quant
    assert q.input_scale > 0 and q.output_scale > 0
    assert np.all(np.abs(q.weights).reshape(16, -1).max(1) == 127)  # per-channel symmetric scale
    assert np.all((q.mult > 0) & (q.mult < 2**16)) and np.all((q.shift >= 0) & (q.shift <= 31))
    np.testing.assert_allclose(q.mult / 2.0**q.shift, q.real_multipliers, rtol=2.0**-14)
    configs = ctx.export(0.3).configs
    assert len(configs) == 16 and all(isinstance(c, ConvConfig) for c in configs)
    w = ctx.model.hw_dw.weight.detach().double().reshape(16, 3, 3).numpy()
    np.testing.assert_allclose(q.weights * q.weight_scales[:, None, None], w, atol=q.weight_scales.max() / 2 + 1e-12)
    assert ctx.error["rms_lsb"] < 1.0  # float vs int8, no compression


def test_calibration_rejects_bad_images(ctx):
    with pytest.raises(VelcroError, match=r"\(N, 1, 28, 28\)"):
        calibrate(ctx.model, torch.zeros(2, 28, 28))
    bad = ctx.images.clone()
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(VelcroError, match="NaN"):
        calibrate(ctx.model, bad)
    with pytest.raises(VelcroError, match="percentile"):
        calibrate(ctx.model, ctx.images, input_calibration="median")


# ---------------------------------------------------------------------- export file
def test_export_file_round_trip(ctx, tmp_path):
    export = ctx.export(0.3, "balanced")
    path = save_export(export, tmp_path / "layer.npz")
    loaded = load_export(path, model=ctx.model)
    assert loaded.version == FORMAT_VERSION and loaded.float_sha256 == float_layer_sha256(ctx.model)
    assert (loaded.task, loaded.threshold, loaded.allocation) == ("footwear", 0.3, "balanced")
    assert loaded.input_scale == export.input_scale and loaded.output_scale == export.output_scale
    for a, b in zip(loaded.configs, export.configs):
        assert np.array_equal(a.weights, b.weights) and (a.bias, a.mult, a.shift, a.skip_en) == (b.bias, b.mult, b.shift, b.skip_en)
        assert np.array_equal(a.mask, b.mask) and np.array_equal(a.avg, b.avg)
    np.testing.assert_array_equal(loaded.float_mean, export.float_mean)
    assert loaded.meta() == export.meta()


def test_export_file_checks(ctx, tmp_path):
    path = save_export(ctx.export(0.3), tmp_path / "layer.npz")
    other = type(ctx.model)()
    other.load_state_dict(ctx.model.state_dict())
    with torch.no_grad():
        other.hw_dw.weight[0, 0, 0, 0] += 1e-3
    with pytest.raises(VelcroError, match="different float layer"):
        load_export(path, model=other)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(tmp_path / "old.npz", **(arrays | {"format_version": np.array(FORMAT_VERSION + 1)}))
    with pytest.raises(VelcroError, match="format version"):
        load_export(tmp_path / "old.npz")
    np.savez(tmp_path / "bad.npz", **(arrays | {"mask": arrays["mask"][:, :32]}))
    with pytest.raises(VelcroError, match="'mask'"):
        load_export(tmp_path / "bad.npz")
    with pytest.raises(VelcroError, match="velcro export"):
        load_export(tmp_path / "missing.npz")
    with pytest.raises(VelcroError, match=".npz"):
        save_export(ctx.export(0.3), tmp_path / "layer.json")


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "hw.npz"
    assert cli.main(["export", "--threshold", "25", "--percent", "--allocation", "balanced", "--prep-images", "8", "--error-images", "2", "--out", str(out)]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["threshold"] == 0.25 and meta["allocation"] == "balanced" and meta["format_version"] == FORMAT_VERSION
    assert load_export(out).channel_densities == [math.floor(0.25 * 4096) / 4096] * 16
    assert cli.main(["export", "--task", "no-such-task", "--out", str(out)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert cli.main(["export", "--threshold", "100", "--percent", "--out", str(out)]) == 2
    assert "percent in [0, 100)" in capsys.readouterr().err


def test_export_layer_and_context_build_the_same_export(ctx):
    direct = export_layer("footwear", "0.3", allocation="balanced", model=ctx.model, statistics=(ctx.mean, ctx.var), error_images=4)
    built = ctx.export(0.3, "balanced")
    assert direct.meta() == built.meta()
    assert np.array_equal(direct.masks, built.masks) and np.array_equal(direct.float_mean, built.float_mean)
    plain = ctx.export(None)
    assert plain.threshold is None and plain.saving_ratio == 0 and plain.channel_densities == [0.0] * 16
    for bad, message in ((30, "look like percents"), ("abc", "not a number")):
        with pytest.raises(VelcroError, match=message):
            export_layer("footwear", bad, model=ctx.model)  # checked before any statistics are computed


# ---------------------------------------------------------------------- masks and balance
@pytest.mark.parametrize("t", [0, 0.05, 0.29, 0.5, 0.85])
def test_mask_counts(ctx, t):
    layer = per_layer_masks(ctx.var, t)
    assert layer.shape == (16, 64, 64) and int(layer.sum()) == math.floor(round(t * 100) * 65536 / 100)
    balanced = balanced_masks(ctx.var, t)
    assert [int(m.sum()) for m in balanced] == [math.floor(round(t * 100) * 4096 / 100)] * 16
    # per-layer masks take the lowest variances of the whole layer
    v = ctx.var.reshape(-1)
    if 0 < int(layer.sum()) < v.numel():
        assert v[layer.reshape(-1)].max() <= v[~layer.reshape(-1)].min()


def test_mask_errors(ctx):
    with pytest.raises(VelcroError, match=r"\(16, 64, 64\)"):
        per_layer_masks(ctx.var[:8], 0.3)
    bad = ctx.var.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(VelcroError, match="NaN"):
        balanced_masks(bad, 0.3)
    with pytest.raises(VelcroError, match=r"\[0, 1\)"):
        per_layer_masks(ctx.var, 30)
    with pytest.raises(VelcroError, match="allocation 'greedy': use one of per-layer, balanced"):
        allocation_masks(ctx.var, 0.3, "greedy")
    assert torch.equal(allocation_masks(ctx.var, 0.3, "balanced"), balanced_masks(ctx.var, 0.3))
    assert not allocation_masks(ctx.var, None).any()


def test_top_speedup():
    even = top_speedup([1000] * 16)
    assert even["achieved_speedup"] == even["ideal_speedup"] and even["efficiency"] == 1.0
    skewed = top_speedup([4096] + [0] * 15)
    assert skewed["achieved_speedup"] == 1.0 and skewed["ideal_speedup"] == pytest.approx(4099 / 512)
    with pytest.raises(VelcroError, match="16"):
        top_speedup([0] * 15)


# ---------------------------------------------------------------------- the paths
def contract_runner(configs: list[ConvConfig], ifmaps: np.ndarray) -> np.ndarray:
    """The int8 layer written from the arithmetic contract (rtl/README.md, section 1) with torch's conv2d,
    independently of model.hw.golden: float64 holds every product and sum exactly, int64 the requantization."""
    out = np.empty(ifmaps.shape, np.uint8)
    for c, cfg in enumerate(configs):
        x = torch.from_numpy(ifmaps[c].astype(np.float64))[:, None]
        w = torch.from_numpy(np.asarray(cfg.weights, np.float64))[None, None]
        acc = torch.nn.functional.conv2d(x, w, padding=1)[:, 0].to(torch.int64) + int(cfg.bias)
        acc = (acc + 2**31) % 2**32 - 2**31  # int32 wrap-around
        rounding = 1 << (cfg.shift - 1) if cfg.shift else 0
        value = torch.div(acc * int(cfg.mult) + rounding, 2**cfg.shift, rounding_mode="floor").clamp(0, 255)
        out[c] = value.numpy().astype(np.uint8)
        if cfg.skip_en:
            out[c][:, cfg.mask] = np.asarray(cfg.avg, np.uint8)[cfg.mask]
    return out


def test_paths_with_an_independent_runner(ctx):
    """The "rtl" path fed by a second implementation of the int8 layer: run_paths compares every pixel of
    it with the golden model (and raises on a difference), on the real layer's data."""
    export = ctx.export(0.3)
    result = run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=contract_runner)
    assert set(result["accuracy"]) == set(PATHS) and all(len(p) == 4 for p in result["predictions"].values())
    assert result["predictions"]["rtl"] == result["predictions"]["int8_golden"]
    assert result["layer_saving_ratio"] == math.floor(0.3 * 65536) / 65536
    assert 0 < result["model_saving_ratio"] < result["model_saving_ratio_without_first"] < result["layer_saving_ratio"]
    assert len(result["channel_densities"]) == 16
    assert result["compressed_int8_vs_float_error"]["rms"] < 4 * ctx.quant.output_scale
    # the default runner (the golden model itself) gives the same accuracies
    assert run_paths(export, ctx.images, ctx.labels, model=ctx.model)["accuracy"] == result["accuracy"]


def test_corrupting_runner_is_caught(ctx):
    def corrupt(configs, ifmaps):
        out = golden_runner(configs, ifmaps)
        out[5, 2, 10, 20] ^= 1
        return out

    with pytest.raises(VelcroError, match=r"1 pixel\(s\).*channel 5, image 2, pixel \(y=10, x=20\)"):
        run_paths(ctx.export(0.3), ctx.images, ctx.labels, model=ctx.model, layer_runner=corrupt)


def test_path_input_errors(ctx):
    export = ctx.export(0.3)
    with pytest.raises(VelcroError, match="fix the runner"):
        run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=lambda c, x: golden_runner(c, x)[:, :2])
    with pytest.raises(VelcroError, match="fix the runner"):
        run_paths(export, ctx.images, ctx.labels, model=ctx.model, layer_runner=lambda c, x: golden_runner(c, x).astype(np.int32))
    with pytest.raises(VelcroError, match=r"\(K, 1, 28, 28\)"):
        run_paths(export, ctx.images[:, 0], ctx.labels, model=ctx.model)
    nan = ctx.images.clone()
    nan[1, 0, 0, 0] = float("nan")
    with pytest.raises(VelcroError, match="NaN"):
        run_paths(export, nan, ctx.labels, model=ctx.model)
    with pytest.raises(VelcroError, match="labels"):
        run_paths(export, ctx.images, ctx.labels[:2], model=ctx.model)
    with pytest.raises(VelcroError, match=r"\(16, K, 64, 64\)"):
        golden_runner(export.configs, np.zeros((16, 1, 64, 64), dtype=np.int16))
    with pytest.raises(VelcroError, match="unknown task"):
        prepare("no-such-task", 4)
    with pytest.raises(VelcroError, match="allocation"):
        ctx.export(0.3, "greedy")


def test_lossless_scan(ctx):
    """The scan against an answer computed another way: each grid point's int8 accuracy from run_paths,
    lossless when it reaches the float accuracy; the chosen T is the end of the lossless run from T = 0."""
    scan = largest_lossless(ctx, step=0.25)
    grid = [0, 0.25, 0.5, 0.75]
    assert [p["threshold"] for p in scan["curve"]] == grid
    paths = [run_paths(ctx.export(t), ctx.images, ctx.labels, model=ctx.model)["accuracy"] for t in grid]
    assert scan["float_accuracy"] == paths[0]["float"]
    lossless = [a["int8_golden"] >= a["float"] for a in paths]
    assert [p["lossless"] for p in scan["curve"]] == lossless
    assert [p["int8_golden_accuracy"] for p in scan["curve"]] == [a["int8_golden"] for a in paths]
    assert lossless[0], "T = 0 compresses nothing: on these images the int8 layer alone must keep the accuracy"
    run = next((n for n, ok in enumerate(lossless) if not ok), len(grid))
    assert scan["chosen_threshold"] == grid[run - 1]
    assert scan["largest_any_lossless"] == max(t for t, ok in zip(grid, lossless) if ok)
