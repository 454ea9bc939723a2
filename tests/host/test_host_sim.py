"""`velcro run --device sim` on the simulated velcro_krnl (Verilator) reproduces the hardware-in-the-loop
outputs bit for bit: the same test images and quantized IFMAPs as `make sim`'s stage
(sim/flows/end_to_end.py), OFMAPs equal to the golden model's (which the stage checks its own against),
the counters of every run, and every run's and every frame's cycles equal to the cycle model's (the
simulated memory has a latency of 64 cycles and never pauses). Planned `split` (the default: runs of
different lengths on the units) and `fixed` (channel c on unit c: each unit's frame interval)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from host import schedule
from host.cli import main
from model.deploy import e2e
from model.deploy.export import save_export
from model.deploy.masks import top_speedup
from model.deploy.quantize import golden_runner
from model.hw import cycles
from model.hw.spec import KERNEL_LOAD_CYCLES
from sim.flows import end_to_end

IMAGES = 2  # the fewest that give a frame interval


@pytest.mark.parametrize("plan", ["split", "fixed"])
def test_velcro_run_sim_reproduces_hardware_in_the_loop(plan, sim_build_root, tmp_path, capsys):
    ctx = e2e.prepare(end_to_end.TASK, IMAGES, error_images=0)  # the stage's context, with IMAGES images
    export = ctx.export(0.5, "per-layer")
    layer, out = save_export(export, tmp_path / "layer.npz"), tmp_path / "run.npz"
    work = sim_build_root / "host-verilator"
    code = main(["run", "--export", str(layer), "--images", str(IMAGES), "--sim", "verilator", "--work", str(work),
                 "--schedule", plan, "--dispatch-us", "1", "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    sched, latency = result["schedule"], schedule.DEFAULT_MEMORY_LATENCY
    jobs = [schedule.Job(j["unit"], j["channel"], j["first_image"], j["images"]) for j in sched["jobs"]]
    with np.load(out) as saved:
        ifmaps, run_cycles, ends = saved["ifmaps"], saved["run_cycles"], saved["frame_end_cycles"]
        assert np.array_equal(ifmaps, end_to_end.layer_ifmaps(ctx)), "not the stage's IFMAPs"
        assert np.array_equal(saved["ofmaps"], golden_runner(export.configs, ifmaps))
    assert result["device"] == "sim" and result["outputs_equal_golden"]
    assert result["accuracy"]["device"] == result["accuracy"]["int8_golden"]
    assert result["counters"]["FRAMES"] == [job.images for job in jobs]
    assert sched["plan"] == plan and sched["timeline"] == "simulated kernel"
    assert sched["cycle_model_exact_runs"] == len(jobs), "a run's cycles differ from the cycle model's"
    for job, length in zip(jobs, run_cycles):
        cfg, frames = export.configs[job.channel], ifmaps[job.channel, job.first_image : job.first_image + job.images]
        assert length == cycles.kernel_run_cycles(cfg, frames, latency)
        first = KERNEL_LOAD_CYCLES + 2 * latency + cycles.isolated_latency(cfg, frames[0])
        model = np.cumsum([first, *cycles.back_to_back_gaps(cfg, list(frames))])
        got = ends[job.channel, job.first_image : job.first_image + job.images]
        assert got.tolist() == model.tolist(), f"{job}: frame ends {got.tolist()}, cycle model {model.tolist()}"
    if plan == "fixed":
        speed = top_speedup([cfg.computed_outputs for cfg in export.configs])
        assert result["instance_intervals"] == speed["intervals"] and result["top_interval"] == speed["top_interval"]
    else:
        assert len(jobs) > 16 - len(sched["constant_channels"]), "the split cut no channel"
        assert "instance_intervals" not in result
