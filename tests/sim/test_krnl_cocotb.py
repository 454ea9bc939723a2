"""cocotb benches of velcro_krnl (the Alveo kernel) on the generated Verilog, on Icarus and on Verilator."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.hw import cycles, golden, image, spec
from model.hw.job import KernelJob, KernelResult
from sim.harness.runner import SIMULATORS, run_bench
from tests.sim.test_conv2d_cocotb import case_seed

# name: knobs of tb_krnl.test_frames. Without pauses the counters and frame gaps must equal the cycle
# model exactly; with them, LAST_CYCLES must equal what the bench saw on the memory bus.
FRAME_CASES = {
    "1-frame-d0.3-latency64": dict(VELCRO_DENSITY=0.3, VELCRO_FRAMES=1, VELCRO_PAUSE=0),
    "3-frames-d0.5-grid2-latency20": dict(VELCRO_DENSITY=0.5, VELCRO_FRAMES=3, VELCRO_ZP=golden.ZP_GRID2,
                                          VELCRO_PAUSE=0, VELCRO_LATENCY=20),
    "4-frames-d0.75-checker-pauses": dict(VELCRO_DENSITY=0.75, VELCRO_FRAMES=4, VELCRO_ZP=golden.ZP_CHECKER,
                                          VELCRO_PAUSE=0.25),
}  # fmt: skip
BENCH_TESTS = ["test_control_registers", "test_starts_in_a_row", "test_ap_ctrl_handshake",
               "test_misaligned_buffers", "test_bus_error"]  # fmt: skip
INTERVAL = dict(VELCRO_LATENCY=64, VELCRO_PAUSE=0.2)  # memory of the acceptance measurement


def run(sim, build_root, testcase, **env):
    tests, failed = run_bench(
        sim, spec.KERNEL_NAME, "sim.benches.tb_krnl", build_root / f"krnl-{sim}", testcase=testcase,
        env={k: str(v) for k, v in env.items()},
    )  # fmt: skip
    knobs = " ".join(f"{k}={v}" for k, v in env.items()) or "the bench's default knobs"
    assert tests == 1 and failed == 0, f"{testcase} on {sim} ({knobs}): {failed} of {tests} cocotb tests failed"


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("case", FRAME_CASES)
def test_frames(sim, case, sim_build_root):
    run(sim, sim_build_root, "test_frames", VELCRO_SEED=case_seed(case), **FRAME_CASES[case])


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("testcase", BENCH_TESTS)
def test_bench(sim, testcase, sim_build_root):
    run(sim, sim_build_root, testcase, VELCRO_SEED=case_seed(testcase))


@pytest.mark.parametrize("sim", SIMULATORS)
def test_memory_fed_interval(sim, sim_build_root, tmp_path):
    """Within 5 % of the instance's own interval at C = 0, 0.5 and 0.8, with latency and pauses."""
    results = tmp_path / "intervals.jsonl"
    run(sim, sim_build_root, "test_memory_fed_interval", VELCRO_RESULTS=results, **INTERVAL)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [row["C"] for row in rows] == [0.0, 0.5, 0.8]
    for row in rows:
        print(f"{sim}: C = {row['C']}: {row['interval']:.1f} cycles per frame, model {row['model']} "
              f"({100 * (row['ratio'] - 1):+.2f} %), latency {row['latency']}, pauses {row['pause']:.0%}")
        assert row["ratio"] <= 1.05


@pytest.mark.parametrize("sim", SIMULATORS)
def test_host_job(sim, sim_build_root, tmp_path):
    """The interface the host's sim backend uses: a KernelJob in, a KernelResult out. Three runs of 1, 2
    and 3 frames (prediction off, on, off; planned on units 4, 9, 4), each from reset: every OFMAP and
    counter as the golden model has them, and with the bench's memory (latency 64, no pauses) every run's
    ap_start-to-ap_done cycles and every frame's end exactly as the cycle model counts them."""
    rng = np.random.default_rng(21)
    zp = golden.random_config(rng, 0.2)
    zp = golden.ConvConfig(zp.weights, zp.bias, zp.mult, zp.shift, zp.mask, zp.avg, zp_en=True,
                           zp_pattern=golden.ZP_GRID2, zp_max=30)  # fmt: skip
    cfgs = [golden.random_config(rng, 0.6), zp, golden.random_config(rng, 0.95)]
    n_frames = [1, 2, 3]
    ifmaps = rng.integers(0, 256, (sum(n_frames), spec.H, spec.W), dtype=np.uint8)
    ifmaps[1:3, :, rng.integers(10, 50) :] = 0  # the prediction run's frames: dark on the right
    ifmaps[2, :40] = 0
    job = KernelJob(np.stack([image.config_image(c) for c in cfgs]), ifmaps, n_frames, [4, 9, 4])
    job_file, result_file = tmp_path / "job.npz", tmp_path / "result.npz"
    job.save(job_file)
    run(sim, sim_build_root, "test_host_job", VELCRO_JOB=job_file, VELCRO_RESULT=result_file)
    result = KernelResult.load(result_file)
    assert result.ofmaps.shape == ifmaps.shape and result.frame_end_cycles.shape == (len(ifmaps),)
    assert result.start_cycles.shape == result.done_cycles.shape == (3,)
    for r, cfg in enumerate(cfgs):
        frames = job.frames(r)
        mine = ifmaps[frames]
        for n, x in enumerate(mine):
            assert np.array_equal(result.ofmaps[frames][n], golden.conv2d(x, cfg)), f"run {r}, frame {n}"
        last = golden.frame_result(mine[-1], cfg)
        counters = image.written_back(result.images[r])
        assert (counters["FRAMES"], counters["LAST_COMPUTED"], counters["LAST_PREDICTED"], counters["LAST_MACS"]) == (
            len(mine), last.computed_outputs, last.predicted_outputs, last.macs)  # fmt: skip
        start = result.start_cycles[r]
        assert result.done_cycles[r] - start == cycles.kernel_run_cycles(cfg, mine, 64), f"run {r}"
        first = spec.KERNEL_LOAD_CYCLES + 2 * 64 + cycles.isolated_latency(cfg, mine[0])
        model = np.cumsum([first, *cycles.back_to_back_gaps(cfg, list(mine))])
        assert (result.frame_end_cycles[frames] - start).tolist() == model.tolist(), f"run {r}: frame ends"
    assert golden.frame_result(ifmaps[2], zp).predicted_outputs > 0, "the prediction run predicted nothing"
    assert (result.done_cycles[:-1] < result.start_cycles[1:]).all(), "runs one after another"
