"""`velcro run --device sim` on the simulated velcro_krnl (Verilator) reproduces the hardware-in-the-loop
outputs bit for bit: the same test images and quantized IFMAPs as `make sim`'s stage
(sim/flows/end_to_end.py), OFMAPs equal to the golden model's (which the stage checks its own against),
the counters of every unit, and each unit's frame interval equal to the cycle model's."""
from __future__ import annotations

import json

import numpy as np

from host.cli import main
from model.deploy import e2e
from model.deploy.export import save_export
from model.deploy.masks import top_speedup
from model.deploy.quantize import golden_runner
from sim.flows import end_to_end

IMAGES = 2  # the fewest that give a frame interval


def test_velcro_run_sim_reproduces_hardware_in_the_loop(sim_build_root, tmp_path, capsys):
    ctx = e2e.prepare(end_to_end.TASK, IMAGES, error_images=0)  # the stage's context, with IMAGES images
    export = ctx.export(0.5, "per-layer")
    layer, out = save_export(export, tmp_path / "layer.npz"), tmp_path / "run.npz"
    work = sim_build_root / "host-verilator"
    code = main(["run", "--export", str(layer), "--images", str(IMAGES), "--sim", "verilator", "--work", str(work),
                 "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    with np.load(out) as saved:
        assert np.array_equal(saved["ifmaps"], end_to_end.layer_ifmaps(ctx)), "not the stage's IFMAPs"
        assert np.array_equal(saved["ofmaps"], golden_runner(export.configs, saved["ifmaps"]))
    assert result["device"] == "sim" and result["outputs_equal_golden"]
    assert result["accuracy"]["device"] == result["accuracy"]["int8_golden"]
    assert result["counters"]["FRAMES"] == [IMAGES] * 16
    speed = top_speedup([cfg.computed_outputs for cfg in export.configs])
    assert result["instance_intervals"] == speed["intervals"] and result["top_interval"] == speed["top_interval"]
