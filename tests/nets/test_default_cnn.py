"""Offline default (Fashion-MNIST CNN), the hardware API, the search, the CLI and its errors."""
from __future__ import annotations

import json

import pytest
import torch

from model import cli
from model.nets.data import FASHION_MNIST_DIR, fashion_task, imagenet_task, load_fashion_mnist, split_task
from model.nets.default_model import CHECKPOINT, HW_SITE, checkpoint_metadata, load_default_model
from model.errors import VelcroError
from model.velcro.evaluate import accuracy
from model.deploy.hw_layer import hw_layer_input, hw_layer_statistics, run_from_hw_output
from model.velcro.search import family_thresholds
from model.velcro.compress import saving_ratio
from model.velcro.stats import ActivationStatistics


@pytest.fixture(scope="module")
def default_model():
    return load_default_model()


def test_checkpoint_is_small_and_reaches_its_recorded_accuracy(default_model):
    assert CHECKPOINT.stat().st_size < 2_000_000
    meta = checkpoint_metadata()
    images, labels = load_fashion_mnist("test")
    n = meta["check_images"]
    assert accuracy(default_model, images[:n], labels[:n]) == pytest.approx(meta["check_accuracy"], abs=0.002)


def test_hardware_api(default_model):
    images = fashion_task("footwear").images[:4]
    hw_in = hw_layer_input(default_model, images)
    assert hw_in.shape == (4, 16, 64, 64) and hw_in.min() >= 0
    with torch.no_grad():
        torch.testing.assert_close(run_from_hw_output(default_model, default_model.hw_layer(hw_in)), default_model(images))
    mean, variance = hw_layer_statistics("footwear", 8, model=default_model)
    assert mean.shape == variance.shape == (16, 64, 64)
    assert mean.dtype == variance.dtype == torch.float64 and variance.min() >= 0
    conv = default_model.hw_dw
    assert (conv.in_channels, conv.out_channels, conv.groups, conv.kernel_size, conv.stride, conv.padding) == (16, 16, 16, (3, 3), (1, 1), (1, 1))


def test_search_family_reaches_target(default_model):
    stats = ActivationStatistics(default_model)
    stats.observe(fashion_task("tops").images[:16])
    assert [s.name for s in stats.sites][HW_SITE] == "hw_relu"
    for family in ("uniform", "relative"):
        thresholds = family_thresholds(stats, family, 0.4)
        assert thresholds[0] is None
        assert saving_ratio(stats.sites, thresholds, stats.total_macs).saving_ratio == pytest.approx(0.4, abs=0.005)


def test_split_is_seeded_and_disjoint():
    a, b = split_task(1000, prep_fraction=0.015, tune_images=300, seed=3), split_task(1000, prep_fraction=0.015, tune_images=300, seed=3)
    assert all(torch.equal(x, y) for x, y in zip((a.prep, a.tune, a.test), (b.prep, b.tune, b.test)))
    assert (len(a.prep), len(a.tune), len(a.test)) == (15, 300, 685)
    assert sorted(a.prep.tolist() + a.tune.tolist() + a.test.tolist()) == list(range(1000))
    # the statistics' images do not depend on the tuning size; without a tuning part the rest is the test part
    plain = split_task(1000, prep_fraction=0.015, seed=3)
    assert torch.equal(plain.prep, a.prep) and len(plain.tune) == 0 and torch.equal(plain.val, plain.test)
    assert sorted(plain.test.tolist()) == sorted(a.tune.tolist() + a.test.tolist())
    assert not torch.equal(split_task(1000, tune_images=300, seed=4).tune, a.tune)


def test_default_tuning_size():
    """1000 images (a 0.5-point loss is 5 of them), or half of what the statistics leave in a small task."""
    assert len(split_task(3000, tune_images=None).tune) == 1000  # footwear: 45 / 1000 / 1955
    assert len(split_task(200, tune_images=None).tune) == 98  # an ImageNet task of 4 × 50 images: 3 / 98 / 99


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fashion_task("hats"), "unknown task 'hats': use one of footwear"),
        (lambda: fashion_task(["sandal", "hat"]), "unknown class 'hat': Fashion-MNIST classes are"),
        (lambda: load_fashion_mnist("test", "/nonexistent"), "Fashion-MNIST is missing .*make setup"),
        (lambda: split_task(100, prep_fraction=0.015), "1 preprocessing image.*at least 2.*--prep-fraction"),
        (lambda: split_task(100, prep_images=10, tune_images=90), "10 preprocessing and 90 tuning images leave none .* lower --tune-images"),
        (lambda: split_task(100, prep_images=10, tune_images=-1), "--tune-images -1: give 0 or more"),
        (lambda: imagenet_task("/nonexistent", "cats"), "does not exist; give an ImageNet-layout folder"),
    ],
)
def test_bad_input_errors(call, message):
    with pytest.raises(VelcroError, match=message):
        call()


def test_imagenet_folder_unknown_class(tmp_path):
    (tmp_path / "n02124075").mkdir()
    with pytest.raises(VelcroError, match="n02123394.* not found"):
        imagenet_task(tmp_path, "cats-2")


def test_cli_ratio_json(capsys):
    tuple_ = "40,40,36,15,12,25,20,20,20,20,30,27,70,10,80,90"
    assert cli.main(["ratio", "--model", "resnet18", "--thresholds", tuple_, "--percent", "--input-size", "64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["activation_outputs"] == 17 and result["layers"][1]["shape"] == [64, 16, 16]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["ratio", "--model", "resnet18", "--thresholds", "10,20", "--percent"], "give 17 .* or 16"),
        (["ratio", "--model", "vgg", "--thresholds", "1"], "unknown model 'vgg'"),
        (["eval", "--task", "socks", "--thresholds", "0.1"], "unknown task 'socks'"),
        (["eval", "--task", "footwear", "--prep-images", "1", "--thresholds", "0.1"], "at least 2"),
        (["search", "--task", "footwear", "--lossless", "--tune-images", "0"], "judges its candidates on tuning images: give --tune-images 1"),
        (["eval", "--task", "footwear", "--thresholds", "0.1", "--test-images", "0"], "--test-images 0: report on at least one"),
        (["eval", "--task", "footwear", "--thresholds", "0.1", "--dist-timeout", "0"], "--dist-timeout 0: give a positive"),
    ],
)
def test_cli_errors_exit_2_without_traceback(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"velcro {argv[0]}: error:")
    import re

    assert re.search(message, err)


def test_cli_eval_on_default(capsys):
    argv = ["eval", "--task", "footwear", "--prep-images", "16", "--thresholds", "0.2,0.2,0.2,0.2"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["prep_images"], result["tune_images"], result["test_images"]) == (16, 1000, 1984)
    assert result["saving_ratio"] == pytest.approx(0.2)


def test_dataset_is_installed():
    assert FASHION_MNIST_DIR.is_dir(), "run make setup"
