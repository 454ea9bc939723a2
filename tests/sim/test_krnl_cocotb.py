"""cocotb benches of velcro_krnl (the Alveo kernel) on the generated Verilog, on Icarus and on Verilator."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model.hw import golden, image, spec
from sim.harness.kernel_job import KernelJob, KernelResult
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
    """The interface the host's sim backend uses: a KernelJob in, a KernelResult out, two units from
    reset, every OFMAP and counter as the golden model has them."""
    rng = np.random.default_rng(21)
    cfgs = [golden.random_config(rng, 0.6), golden.random_config(rng, 0.2)]
    cfgs[1] = golden.ConvConfig(cfgs[1].weights, cfgs[1].bias, cfgs[1].mult, cfgs[1].shift, cfgs[1].mask,
                                cfgs[1].avg, zp_en=True, zp_pattern=golden.ZP_GRID2, zp_max=30)  # fmt: skip
    ifmaps = rng.integers(0, 256, (2, 2, spec.H, spec.W), dtype=np.uint8)
    job_file, result_file = tmp_path / "job.npz", tmp_path / "result.npz"
    KernelJob(np.stack([image.config_image(c) for c in cfgs]), ifmaps).save(job_file)
    run(sim, sim_build_root, "test_host_job", VELCRO_JOB=job_file, VELCRO_RESULT=result_file)
    result = KernelResult.load(result_file)
    for u, cfg in enumerate(cfgs):
        for n in range(2):
            assert np.array_equal(result.ofmaps[u, n], golden.conv2d(ifmaps[u, n], cfg))
        last = golden.frame_result(ifmaps[u, -1], cfg)
        counters = image.written_back(result.images[u])
        assert (counters["FRAMES"], counters["LAST_COMPUTED"], counters["LAST_PREDICTED"]) == (
            2, last.computed_outputs, last.predicted_outputs)  # fmt: skip
        assert result.start_cycles[u] < result.frame_end_cycles[u, 0] < result.frame_end_cycles[u, 1]
        assert result.frame_end_cycles[u, 1] < result.done_cycles[u]
    assert result.done_cycles[0] < result.start_cycles[1]
