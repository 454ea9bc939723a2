"""`velcro run`: errors of use (one line, status 2) and a whole run on the stand-in card (no simulator)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from fake_pyxrt import make_pyxrt

from host.api import quantized_ifmaps, task_images
from host.cli import main
from model.deploy.export import export_layer, load_export, save_export
from model.deploy.quantize import golden_runner
from model.nets.default_model import load_default_model


@pytest.fixture(scope="module")
def export_file(tmp_path_factory):
    """A quick export (statistics of 8 preprocessing images) at T = 0.5."""
    path = tmp_path_factory.mktemp("export") / "layer.npz"
    save_export(export_layer("footwear", 0.5, n_prep=8, error_images=0), path)
    return path


@pytest.fixture
def xclbin(tmp_path):
    path = tmp_path / "velcro_krnl.xclbin"
    path.write_bytes(b"stand-in")
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_run_beside_the_model_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "export" in out and "eval" in out


def test_missing_export_file_names_velcro_export(tmp_path, capsys):
    code, out, err = run_cli(capsys, "--export", tmp_path / "none.npz", "--images", 2)
    assert code == 2 and out == ""
    assert "velcro run: error:" in err and "does not exist; create it with `velcro export" in err


@pytest.mark.parametrize("images", ["0", "-3", "three"])
def test_bad_image_counts_are_refused(images, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--export", str(tmp_path / "layer.npz"), "--images", images])
    assert exit_.value.code == 2
    assert "--images" in capsys.readouterr().err


def test_more_images_than_the_test_split(export_file, capsys):
    code, _, err = run_cli(capsys, "--export", export_file, "--images", 10**6)
    assert code == 2 and "--images 1000000: give 1 to" in err


def test_xrt_without_pyxrt_names_xrt_and_its_setup(export_file, xclbin, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyxrt", None)  # import pyxrt fails, as on a machine without XRT
    code, out, err = run_cli(capsys, "--export", export_file, "--device", "xrt", "--xclbin", xclbin)
    assert code == 2 and out == ""
    assert "pyxrt" in err and "source /opt/xilinx/xrt/setup.sh" in err


def test_xrt_needs_an_xclbin(export_file, capsys):
    code, _, err = run_cli(capsys, "--export", export_file, "--device", "xrt")
    assert code == 2 and "--xclbin" in err and "make xclbin" in err


def test_out_must_be_npz(export_file, tmp_path, capsys):
    code, _, err = run_cli(capsys, "--export", export_file, "--out", tmp_path / "run.json")
    assert code == 2 and "must end in .npz" in err


def test_run_on_the_stand_in_card(export_file, xclbin, tmp_path, monkeypatch, capsys):
    """The whole command on --device xrt, pyxrt replaced by the stand-in: JSON, OFMAPs and counters."""
    monkeypatch.setitem(sys.modules, "pyxrt", make_pyxrt())
    out_file = tmp_path / "run.npz"
    code, out, _ = run_cli(capsys, "--export", export_file, "--images", 3, "--device", "xrt", "--xclbin", xclbin,
                           "--out", out_file)  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["device"] == "xrt" and result["images"] == 3 and result["outputs_equal_golden"]
    assert result["accuracy"]["device"] == result["accuracy"]["int8_golden"]
    assert result["counters"]["FRAMES"] == [3] * 16
    assert "top_interval" not in result, "frame times come from the simulation only"
    export = load_export(export_file)
    images, _ = task_images(export, 3)
    with np.load(out_file) as saved:
        assert np.array_equal(saved["ifmaps"], quantized_ifmaps(load_default_model(), images, export.input_scale))
        assert np.array_equal(saved["ofmaps"], golden_runner(export.configs, saved["ifmaps"]))
