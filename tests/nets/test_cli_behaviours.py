"""The `velcro` commands on the offline default (model/README.md, sections 5, 7 and 12): `stats`, `plots`,
`eval` with a statistics file, `search --target` and `--lossless`, numbers checked against an independent
computation or written down by hand, and the errors of an empty task and an empty threshold tuple.

Small splits (--prep-images, --tune-images, --test-images) keep each command to seconds. The JSON is read
by key, so commands gaining options or keys do not break these tests.
"""
from __future__ import annotations

import contextlib
import io
import json
import math

import pytest
import torch

from model import cli
from model.errors import VelcroError
from model.nets.data import DEFAULT_PREP_FRACTION, fashion_task, load_fashion_mnist, split_task
from model.nets.default_model import checkpoint_metadata, load_default_model
from model.velcro.compress import compress, parse_thresholds, saving_ratio
from model.velcro.evaluate import accuracy
from model.velcro.search import MAX_LOSS, Z_ONE_SIDED_95
from model.velcro.stats import ActivationStatistics

TASK, PREP, TUNE, TEST = "footwear", 16, 48, 64
SPLIT = ["--task", TASK, "--prep-images", str(PREP), "--tune-images", str(TUNE)]


def velcro(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(argv))
    return status, out.getvalue(), err.getvalue()


def ok(*argv: str) -> dict:
    status, out, err = velcro(*argv)
    assert status == 0, err
    return json.loads(out)


def refused(*argv: str) -> str:
    """The one-line error of a command that exits with status 2 (progress bars may precede it)."""
    status, _, err = velcro(*argv)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert status == 2 and "Traceback" not in err and last.startswith(f"velcro {argv[0]}: error:"), err
    return last


@pytest.fixture(scope="module")
def task():
    """(model, task data, split) as the commands build them from SPLIT."""
    data = fashion_task(TASK)
    split = split_task(len(data.labels), prep_fraction=DEFAULT_PREP_FRACTION, prep_images=PREP, tune_images=TUNE, seed=0)
    return load_default_model(), data, split


@pytest.fixture(scope="module")
def stats_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stats") / "footwear.pt"
    result = ok("stats", *SPLIT, "--out", str(path))
    assert result["images"] == PREP and result["activation_outputs"] == 5 and path.is_file()
    return path


def load(path, model) -> ActivationStatistics:
    stats = ActivationStatistics(model)
    stats.load_state_dict(torch.load(path, weights_only=True))
    return stats


def test_stats_saves_the_statistics_of_the_preprocessing_images(task, stats_file):
    model, data, split = task
    loaded = load(stats_file, model)
    direct = ActivationStatistics(model)
    direct.observe(data.images[split.prep])
    assert loaded.count == PREP and loaded.sites == direct.sites
    for k in range(len(direct.sites)):
        torch.testing.assert_close(loaded.mean(k), direct.mean(k), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(loaded.variance(k), direct.variance(k), rtol=1e-9, atol=1e-12)


def test_eval_with_a_statistics_file(task, stats_file):
    """eval --stats gives what eval computing its own statistics gives, and every number equals an
    independent computation: accuracies of the model and of compress() on the same test images, C = 0.2
    (the first activation output is left alone), the zero fraction."""
    model, data, split = task
    argv = ["eval", *SPLIT, "--test-images", str(TEST), "--thresholds", "0.2,0.2,0.2,0.2"]
    from_file, computed = ok(*argv, "--stats", str(stats_file)), ok(*argv)
    keys = ("baseline_accuracy", "compressed_accuracy", "saving_ratio", "zero_fraction", "test_images")
    assert {k: from_file[k] for k in keys} == {k: computed[k] for k in keys}
    test = split.test[:TEST]
    compressed = compress(model, load(stats_file, model), "0.2,0.2,0.2,0.2")
    assert from_file["test_images"] == TEST and from_file["saving_ratio"] == 0.2
    assert from_file["baseline_accuracy"] == accuracy(model, data.images[test], data.labels[test])
    assert from_file["compressed_accuracy"] == accuracy(compressed, data.images[test], data.labels[test])
    assert from_file["zero_fraction"] == compressed.zero_fraction()
    assert "does not exist" in refused(*argv, "--stats", str(stats_file.with_name("missing.pt")))


def test_plots_writes_the_histograms(stats_file, tmp_path):
    result = ok("plots", *SPLIT, "--stats", str(stats_file), "--out", str(tmp_path))
    png = tmp_path / f"variance_{TASK}.png"
    assert result["png"] == str(png) and png.stat().st_size > 10_000


def chosen_tuple(chosen: dict) -> str:
    """The chosen tuple without its first entry ("-": left alone), as compress() takes it."""
    entries = chosen["thresholds"].split(",")
    assert entries[0] == "-" and "-" not in entries[1:], chosen["thresholds"]
    return ",".join(entries[1:])


def check_chosen(result: dict, task, stats_file) -> None:
    """The chosen tuple's saving ratio and test accuracy, recomputed from its thresholds."""
    model, data, split = task
    stats, test = load(stats_file, model), split.test[:TEST]
    chosen, thresholds = result["chosen"], chosen_tuple(result["chosen"])
    ratio = saving_ratio(stats.sites, parse_thresholds(thresholds, len(stats.sites)), stats.total_macs)
    assert chosen["saving_ratio"] == pytest.approx(ratio.saving_ratio, abs=1e-12)
    assert chosen["test_accuracy"] == accuracy(compress(model, stats, thresholds), data.images[test], data.labels[test])
    assert result["baseline_test_accuracy"] == accuracy(model, data.images[test], data.labels[test])
    assert (result["tune_images"], result["test_images"]) == (TUNE, TEST)


def test_search_target(task, stats_file):
    result = ok("search", *SPLIT, "--test-images", str(TEST), "--stats", str(stats_file), "--target", "0.4")
    assert result["chosen"]["saving_ratio"] == pytest.approx(0.4, abs=0.005) and result["lossless_rule"] is None
    assert {p["family"] for p in result["explored"]} == {"uniform", "relative"}
    check_chosen(result, task, stats_file)


def test_search_lossless(task, stats_file):
    """The chosen tuple passes the documented rule on its tuning score: lost <= gained and the one-sided
    bound (lost - gained + 1.645·sqrt(lost + gained)) / n <= 0.005."""
    result = ok("search", *SPLIT, "--test-images", str(TEST), "--stats", str(stats_file), "--lossless")
    chosen = result["chosen"]
    assert f"{TUNE} tuning images" in result["lossless_rule"]
    score = next(p["score"] for p in result["explored"]
                 if p["family"] == chosen["family"] and p["saving_ratio"] == chosen["saving_ratio"])  # fmt: skip
    bound = (score["lost"] - score["gained"] + Z_ONE_SIDED_95 * math.sqrt(score["lost"] + score["gained"])) / TUNE
    assert score["lost"] <= score["gained"] and bound <= MAX_LOSS + 1e-12, score
    assert chosen["tune_accuracy"] >= result["baseline_tune_accuracy"]
    assert chosen["saving_ratio"] > 0, "on footwear some compression is lossless"
    check_chosen(result, task, stats_file)


def test_search_takes_target_or_lossless_not_both():
    with pytest.raises(SystemExit) as exit_:
        velcro("search", "--task", TASK, "--target", "0.4", "--lossless")
    assert exit_.value.code == 2


def test_an_empty_task_is_refused():
    assert refused("eval", "--task", "", "--prep-images", "4", "--thresholds", "0.1")


def test_an_empty_task_is_named_in_the_error():
    for empty in ("", ",", " "):
        with pytest.raises(VelcroError, match="names no class"):
            fashion_task(empty)


def test_an_empty_threshold_tuple_is_refused():
    for argv in (["ratio", "--model", "resnet18", "--input-size", "64"], ["eval", *SPLIT, "--test-images", "4"]):
        assert "has 0 entries" in refused(*argv, "--thresholds", "")
    for empty in ("", " , ", "()"):
        with pytest.raises(VelcroError, match="has 0 entries but the model has 5"):
            parse_thresholds(empty, 5)



def test_a_printed_tuple_with_left_alone_entries_is_accepted_with_percent():
    """`velcro search` prints "-" for a left-alone output; --percent must not count it as a value."""
    given_back = ok("eval", *SPLIT, "--test-images", "4", "--percent", "--thresholds=-,30,12.5,10,5")
    assert given_back == ok("eval", *SPLIT, "--test-images", "4", "--percent", "--thresholds", "30,12.5,10,5")


def test_an_empty_zp_max_entry_is_refused():
    assert "entry 1 of the --zp-max tuple '0,,3' is empty" in refused("eval", *SPLIT, "--zp", "grid2", "--zp-max", "0,,3")


# ResNet-18 at 64 x 64, worked out from the architecture by hand: the 16 activation outputs after the
# stem (4 per stage: after each block's first conv and after its residual add) have C x H x W elements,
# and the MACs of the convolutions producing them (3x3 convs; the first block of stages 2-4 halves the
# map in its first conv and adds a 1x1 downsampling conv before its residual add).
RESNET18_ELEMENTS = [64 * 16 * 16] * 4 + [128 * 8 * 8] * 4 + [256 * 4 * 4] * 4 + [512 * 2 * 2] * 4
_FULL, _HALVING, _DOWNSAMPLE = 9 * 64 * 64 * 16 * 16, 9 * 64 * 128 * 8 * 8, 64 * 128 * 8 * 8  # equal in every stage
RESNET18_MACS = [_FULL] * 4 + [_HALVING, _FULL + _DOWNSAMPLE, _FULL, _FULL] * 3
TUPLE = [40, 40, 36, 15, 12, 25, 20, 20, 20, 20, 30, 27, 70, 10, 80, 90]


def test_ratio_is_the_hand_computed_value():
    result = ok("ratio", "--model", "resnet18", "--thresholds", ",".join(map(str, TUPLE)), "--percent",
                "--input-size", "64", "--json")  # fmt: skip
    layers = result["layers"][1:]
    assert [l["elements"] for l in layers] == RESNET18_ELEMENTS and [l["macs"] for l in layers] == RESNET18_MACS
    assert result["saving_ratio"] == pytest.approx(
        sum(t * n for t, n in zip(TUPLE, RESNET18_ELEMENTS)) / 100 / sum(RESNET18_ELEMENTS), abs=1e-12)
    assert result["mac_weighted_ratio"] == pytest.approx(
        sum(t * m for t, m in zip(TUPLE, RESNET18_MACS)) / 100 / sum(RESNET18_MACS), abs=1e-12)
    assert result["layers"][0]["threshold"] is None, "16 entries for 17 outputs: the first is left alone"


def test_checkpoint_reaches_its_recorded_test_accuracy():
    """The whole Fashion-MNIST test split, measured (training recorded it to 4 decimals)."""
    images, labels = load_fashion_mnist("test")
    assert accuracy(load_default_model(), images, labels) == pytest.approx(checkpoint_metadata()["test_accuracy"], abs=5e-5)
