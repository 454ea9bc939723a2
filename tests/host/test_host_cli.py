"""`velcro run`: errors of use (one line, status 2) and a whole run on the stand-in card (no simulator)."""
from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from fake_pyxrt import make_pyxrt

from host import schedule
from host.api import quantized_ifmaps, task_images, tuning_ifmaps
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--schedule", "greedy"], "argument --schedule: invalid choice: 'greedy'"),
        (["--block", "0"], "argument --block: '0': give a whole number of images, 1 or more"),
        (["--prediction", "some"], "argument --prediction: invalid choice: 'some'"),
        (["--dispatch-us", "soon"], "argument --dispatch-us: invalid float value: 'soon'"),
    ],
)  # fmt: skip
def test_bad_schedule_flags_are_refused(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--export", str(tmp_path / "layer.npz"), *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_negative_dispatch_latency_is_refused(export_file, capsys):
    code, out, err = run_cli(capsys, "--export", export_file, "--dispatch-us", -5)
    assert code == 2 and out == ""
    assert "velcro run: error: --dispatch-us -5.0 and --clock-mhz 300.0: give a dispatch latency >= 0" in err


def test_run_on_the_stand_in_card(export_file, xclbin, tmp_path, monkeypatch, capsys):
    """The whole command on --device xrt, pyxrt replaced by the stand-in, planned by the default split:
    JSON, OFMAPs, counters per run and the schedule on the cycle model's timeline."""
    monkeypatch.setitem(sys.modules, "pyxrt", make_pyxrt())
    out_file = tmp_path / "run.npz"
    code, out, _ = run_cli(capsys, "--export", export_file, "--images", 3, "--device", "xrt", "--xclbin", xclbin,
                           "--out", out_file)  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["device"] == "xrt" and result["images"] == 3 and result["outputs_equal_golden"]
    assert result["accuracy"]["device"] == result["accuracy"]["int8_golden"]
    sched = result["schedule"]
    assert sched["plan"] == "split" and sched["timeline"] == "cycle model" and "cycle_model_exact_runs" not in sched
    jobs = sched["jobs"]
    assert result["counters"]["FRAMES"] == [job["images"] for job in jobs]  # one entry per run, in the plan's order
    served = [c for c in range(16) if c not in sched["constant_channels"]]
    assert sorted((job["channel"], job["first_image"] + k) for job in jobs for k in range(job["images"])) == [
        (c, i) for c in served for i in range(3)]  # fmt: skip
    assert "top_interval" not in result, "frame times come from the simulation only"
    export = load_export(export_file)
    images, _ = task_images(export, 3)
    with np.load(out_file) as saved:
        assert np.array_equal(saved["ifmaps"], quantized_ifmaps(load_default_model(), images, export.input_scale))
        assert np.array_equal(saved["ofmaps"], golden_runner(export.configs, saved["ifmaps"]))
        assert saved["images"].shape == (len(jobs), 8192) and "run_cycles" not in saved


def test_fixed_schedule_on_the_stand_in_card(export_file, xclbin, monkeypatch, capsys):
    """--schedule fixed: channel c on unit c, all images in one run each, constant channels included."""
    monkeypatch.setitem(sys.modules, "pyxrt", make_pyxrt())
    code, out, _ = run_cli(capsys, "--export", export_file, "--images", 2, "--device", "xrt", "--xclbin", xclbin,
                           "--schedule", "fixed", "--dispatch-us", 0)  # fmt: skip
    assert code == 0
    result = json.loads(out)
    assert result["counters"]["FRAMES"] == [2] * 16
    sched = result["schedule"]
    assert sched["plan"] == "fixed" and sched["constant_channels"] == [] and sched["dispatch_cycles"] == 0
    assert [(job["unit"], job["channel"]) for job in sched["jobs"]] == [(c, c) for c in range(16)]
    assert "top_interval" not in result


@pytest.fixture(scope="module")
def zp_export_file(tmp_path_factory):
    """The quick export with zero-value prediction (GRID2) on every channel."""
    path = tmp_path_factory.mktemp("export") / "layer-zp.npz"
    save_export(export_layer("footwear", 0.5, n_prep=8, error_images=0, zp_pattern="grid2", zp_max=0.05), path)
    return path


@pytest.mark.parametrize("prediction", ["paying", "all"])
def test_prediction_paying_or_all_on_the_stand_in_card(prediction, zp_export_file, xclbin, tmp_path, monkeypatch,
                                                       capsys):  # fmt: skip
    """--prediction all keeps the export's prediction channels; paying turns it off where the tuning images
    say it costs cycles (schedule.prediction_pays), and the OFMAPs are the golden model's of what ran."""
    monkeypatch.setitem(sys.modules, "pyxrt", make_pyxrt())
    out_file = tmp_path / "run.npz"
    code, out, err = run_cli(capsys, "--export", zp_export_file, "--images", 2, "--device", "xrt", "--xclbin", xclbin,
                             "--prediction", prediction, "--out", out_file)  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    export = load_export(zp_export_file)
    exported = [c for c, cfg in enumerate(export.configs) if cfg.zp_en]
    kept, off = result["prediction_channels"], result["prediction_turned_off"]
    assert exported and sorted(kept + off) == exported
    if prediction == "all":
        assert off == []
    else:
        tuning = tuning_ifmaps(export, load_default_model())
        assert off == [c for c, pays in zip(range(16), schedule.prediction_pays(export.configs, tuning))
                       if c in exported and not pays]  # fmt: skip
    ran = [dataclasses.replace(cfg, zp_en=c in kept) for c, cfg in enumerate(export.configs)]
    with np.load(out_file) as saved:
        assert np.array_equal(saved["ofmaps"], golden_runner(ran, saved["ifmaps"]))
