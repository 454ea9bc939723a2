"""Zero-value prediction on the offline default and the ZP papers' models: search, CLI and its errors."""
from __future__ import annotations

import json

import pytest
import torch

from model import cli
from model.nets.data import fashion_task, split_task
from model.nets.default_model import load_default_model
from model.nets.zoo import PAPER_MODELS, build_model
from model.velcro.predict import PredictionSearch, parse_zp_maxes, predicting_model
from model.velcro.compress import saving_ratio
from model.velcro.search import ThresholdSearch, TuningSet, family_thresholds, largest_passing
from model.velcro.sites import find_sites
from model.velcro.stats import ActivationStatistics


def test_alexnet_and_vgg16_architectures_without_download():
    assert {"alexnet", "vgg16", "resnet18"} <= set(PAPER_MODELS)
    sites, _ = find_sites(build_model("alexnet"), torch.zeros(1, 3, 64, 64))
    assert len(sites) == 5 and all(len(s.shape) == 3 for s in sites)  # the classifier's ReLUs follow linears
    vgg = PAPER_MODELS["vgg16"]()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in vgg.modules()) == 13


def test_largest_passing_scans_then_bisects():
    tried = []

    def evaluate(p):
        tried.append(p)
        return p <= 0.33, p

    assert largest_passing(evaluate, first=0.0, step=0.1, maximum=1.0, refine=3) == pytest.approx(0.325)
    assert tried[:5] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert largest_passing(lambda p: (False, p), first=0.0, step=0.1, maximum=1.0, refine=3) is None


@pytest.fixture(scope="module")
def footwear():
    model = load_default_model()
    data = fashion_task("footwear")
    split = split_task(len(data.labels), prep_images=32, tune_images=200, seed=0)
    stats = ActivationStatistics(model)
    stats.observe(data.images[split.prep])
    return model, data, split, stats


def test_velcro_search_stops_at_the_first_lossy_point(footwear):
    model, data, split, stats = footwear
    tuning = TuningSet(model, data.images[split.tune], data.labels[split.tune])
    search = ThresholdSearch(model, stats, tuning)
    point, thresholds = search.largest_lossless(step=0.2, refine=1)
    assert tuning.lossless(point.score) and thresholds[0] is None
    assert point.saving_ratio == pytest.approx(saving_ratio(stats.sites, thresholds, stats.total_macs).saving_ratio)
    calls = [search.explored[i : i + 2] for i in range(0, len(search.explored), 2)]  # one best_at: both families
    best = [max(pair, key=lambda p: p.score.correct) for pair in calls]  # (ties: the first family)
    above = [p for p in best if p.saving_ratio > point.saving_ratio + 1e-9]
    assert above and not any(tuning.lossless(p.score) for p in above)  # the scan and the bisection stopped at lossy points


def test_search_finds_a_lossless_tuple(footwear):
    model, data, split, stats = footwear
    tuning = TuningSet(model, data.images[split.tune], data.labels[split.tune])
    search = PredictionSearch(model, stats, tuning, pattern="grid2")
    point = search.largest_lossless(step=0.25, refine=1)
    assert search.lossless(point) and point.score.lost <= point.score.gained
    assert point.tune_agreement == 1 - point.score.changed / 200
    assert point.mac_reduction > 0 and point.mac_reduction_without_prediction == 0
    assert point.zp_maxes[0] is None  # the first output is left alone
    explored = search.curve()
    assert all(p["mac_reduction"] <= point.mac_reduction + 1e-12 for p in explored if p["lossless"])
    assert any(not p["lossless"] for p in explored)  # the scan stopped at a lossy point
    # with VELCRO under it the reduction only grows
    thresholds = family_thresholds(stats, "uniform", 0.2)
    combined = predicting_model(model, stats, thresholds, point.zp_maxes, "grid2")
    with torch.no_grad():
        combined(data.images[split.test[:64]])
    report = combined.mac_report()
    assert report.mac_reduction > report.mac_reduction_without_prediction > 0.15


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--zp", "grid3"], "unknown prediction pattern 'grid3': use grid2 or checker"),
        (["eval", "--zp", "grid2", "--zp-max", "-1"], "--zp-max is -1, negative"),
        (["eval", "--zp", "checker", "--zp-max", "0,0,-0.5,0"], "--zp-max entry 2 is -0.5, negative"),
        (["eval", "--zp", "grid2", "--zp-max", "abc"], "not a number"),
        (["eval", "--task", "footwear"], "give --thresholds .*--zp"),
        (["eval", "--zp-max", "0", "--thresholds", "0.1"], "--zp-max needs --zp"),
        (["export", "--zp", "diagonal", "--out", "x.npz"], "unknown prediction pattern"),
        (["export", "--zp", "grid2", "--zp-max", "-0.5", "--out", "x.npz"], "negative"),
        (["search", "--zp", "grid2", "--target", "0.3"], "use --lossless"),
    ],
)
def test_cli_zp_errors_exit_2_in_one_line(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"velcro {argv[0]}: error:")
    import re

    assert re.search(message, err)


def test_cli_eval_with_prediction(capsys):
    argv = ["eval", "--task", "trouser-dress", "--prep-images", "16", "--batch-size", "512",
            "--test-images", "300", "--thresholds", "0.2,0.2,0.2,0.2", "--zp", "grid2", "--zp-max", "0,0,-,0"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_images"] == 300 and result["tune_images"] == 992 and result["zp_pattern"] == "grid2" and result["zp_max"] == [None, 0.0, 0.0, None, 0.0]
    assert result["saving_ratio"] == pytest.approx(0.2) and result["mac_reduction_without_prediction"] == pytest.approx(0.2, abs=1e-3)
    assert result["mac_reduction"] > result["mac_reduction_without_prediction"] and 0 < result["predicted_fraction"] < 0.75
    assert 0.5 < result["baseline_accuracy"] <= 1 and 0 <= result["compressed_accuracy"] <= 1
