"""Zero-value prediction on the hardware layer: ZP_MAX in LSBs, the export file, the four paths, acceptance."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from model import cli
from model.deploy.e2e import PATHS, prepare, run_paths
from model.deploy.export import FORMAT_VERSION, load_export, save_export
from model.deploy.hw_layer import hw_layer_input
from model.deploy.quantize import golden_runner, quantize_input, zp_max_to_uint8
from model.errors import VelcroError
from model.hw import golden

LAYER_OUTPUTS = 16 * 64 * 64


@pytest.fixture(scope="module")
def ctx():
    return prepare("footwear", 6, error_images=0)


def test_zp_max_to_uint8_is_the_exact_floor():
    s = 0.0123
    for q in range(0, 300, 7):
        zp = q * s
        stored = zp_max_to_uint8(zp, s)
        assert stored == min(255, int(Fraction(zp) // Fraction(s)))
        for v in range(256):  # the uint8 comparison decides like the float one on dequantized values
            if v <= 255 and stored < 255:
                assert (v <= stored) == (Fraction(v) * Fraction(s) <= Fraction(zp))
    assert zp_max_to_uint8(0.0, s) == 0 and zp_max_to_uint8(1e9, s) == 255
    with pytest.raises(VelcroError, match="≥ 0"):
        zp_max_to_uint8(-1.0, s)


def test_export_carries_zp_config_and_round_trips(ctx, tmp_path):
    export = ctx.export(0.3, "balanced", zp_pattern="checker", zp_max=3.5 * ctx.quant.output_scale)
    assert export.zp_pattern == "checker" and export.zp_max_uint8 == 3
    assert all(c.zp_en and c.zp_pattern == golden.ZP_PATTERNS["checker"] and c.zp_max == 3 for c in export.configs)
    loaded = load_export(save_export(export, tmp_path / "zp.npz"), model=ctx.model)
    assert loaded.version == FORMAT_VERSION == 2
    assert (loaded.zp_pattern, loaded.zp_max, loaded.zp_max_uint8) == ("checker", export.zp_max, 3)
    for a, b in zip(loaded.configs, export.configs):
        assert (a.zp_en, a.zp_pattern, a.zp_max) == (b.zp_en, b.zp_pattern, b.zp_max)
        assert np.array_equal(a.mask, b.mask) and np.array_equal(a.avg, b.avg)
    meta = loaded.meta()
    assert meta["zp_pattern"] == "checker" and meta["zp_max_uint8"] == 3
    off = ctx.export(0.3)
    assert off.zp_pattern is None and not any(c.zp_en for c in off.configs)
    with pytest.raises(VelcroError, match="unknown prediction pattern"):
        ctx.export(0.3, zp_pattern="grid4")
    with pytest.raises(VelcroError, match="negative"):
        ctx.export(0.3, zp_pattern="grid2", zp_max=-0.1)


def test_version_1_file_reads_as_prediction_off(ctx, tmp_path):
    path = save_export(ctx.export(0.3), tmp_path / "v2.npz")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if not k.startswith("zp_")}
    meta = json.loads(str(arrays["meta_json"]))
    for key in ("zp_pattern", "zp_max", "zp_max_uint8"):
        meta.pop(key)
    arrays["meta_json"] = np.array(json.dumps(meta))
    arrays["format_version"] = np.array(1, dtype=np.int64)
    np.savez_compressed(tmp_path / "v1.npz", **arrays)
    old = load_export(tmp_path / "v1.npz")
    assert old.version == 1 and old.zp_pattern is None and not any(c.zp_en for c in old.configs)
    arrays["format_version"] = np.array(2, dtype=np.int64)  # a version-2 file must have the arrays
    np.savez_compressed(tmp_path / "broken.npz", **arrays)
    with pytest.raises(VelcroError, match="zp_en"):
        load_export(tmp_path / "broken.npz")


def test_cli_export_with_prediction(tmp_path, capsys):
    out = tmp_path / "layer.npz"
    argv = ["export", "--task", "footwear", "--prep-images", "16", "--error-images", "0", "--threshold", "0.25",
            "--zp", "grid2", "--zp-max", "0.05", "--out", str(out)]
    assert cli.main(argv) == 0
    meta = json.loads(capsys.readouterr().out)
    loaded = load_export(out)
    assert meta["zp_pattern"] == "grid2" and meta["zp_max"] == 0.05
    assert meta["zp_max_uint8"] == zp_max_to_uint8(0.05, loaded.output_scale) == loaded.configs[0].zp_max


def test_paths_count_the_skipped_macs(ctx):
    export = ctx.export(0.2, "per-layer", zp_pattern="grid2", zp_max=0.0)
    result = run_paths(export, ctx.images, ctx.labels, model=ctx.model)
    ifmaps = quantize_input(hw_layer_input(ctx.model, ctx.images), export.input_scale)
    frames = [golden.frame_result(ifmaps[c, i], cfg) for c, cfg in enumerate(export.configs) for i in range(len(ctx.images))]
    skipped = sum(int(f.compressed.sum()) + f.predicted_outputs for f in frames)
    total = len(frames) * 4096
    assert result["mac_reduction"]["int8_golden"] == result["mac_reduction"]["rtl"] == pytest.approx(skipped / total)
    assert sum(f.macs for f in frames) == pytest.approx((1 - skipped / total) * total * 9)
    assert result["mac_reduction"]["float"] == 0 and result["predicted_fraction"]["float"] == 0
    assert result["predicted_fraction"]["int8_golden"] > 0.2 and result["predicted_fraction"]["float_compressed"] > 0.2
    assert result["mac_reduction"]["float_compressed"] > export.saving_ratio
    assert set(result["accuracy"]) == set(PATHS) and result["zp_pattern"] == "grid2"
    # the golden runner's outputs are frame_result's
    assert np.array_equal(golden_runner(export.configs, ifmaps)[3, 1], golden.frame_result(ifmaps[3, 1], export.configs[3]).ofmap)
    # prediction off: only the mask skips
    plain = run_paths(ctx.export(0.2), ctx.images, ctx.labels, model=ctx.model)
    assert plain["mac_reduction"]["int8_golden"] == pytest.approx(export.saving_ratio)


def _acceptance(k: int) -> dict:
    """Hardware layer on the int8 golden path: GRID2 with ZP_MAX = 0, alone and with balanced T = 0.3."""
    ctx = prepare("footwear", k, error_images=0)
    alone = run_paths(ctx.export(None, zp_pattern="grid2", zp_max=0.0), ctx.images, ctx.labels, model=ctx.model)
    both = run_paths(ctx.export(0.3, "balanced", zp_pattern="grid2", zp_max=0.0), ctx.images, ctx.labels, model=ctx.model)
    return {"alone": alone, "both": both}


def _check_acceptance(result: dict, tolerance_alone: float, tolerance_both: float) -> None:
    alone, both = result["alone"], result["both"]
    base = alone["accuracy"]["float"]  # the uncompressed float model
    assert alone["mac_reduction"]["int8_golden"] >= 0.40
    assert abs(alone["accuracy"]["int8_golden"] - base) <= tolerance_alone
    assert both["mac_reduction"]["int8_golden"] >= 0.55
    assert abs(both["accuracy"]["int8_golden"] - base) <= tolerance_both


def test_acceptance_on_a_sample():
    """The acceptance criteria on 160 validation images (the full measurement: 1,000 images, below)."""
    _check_acceptance(_acceptance(160), 0.005 + 1 / 160, 0.01 + 1 / 160)


def test_acceptance_on_1000_images():
    _check_acceptance(_acceptance(1000), 0.005, 0.01)
