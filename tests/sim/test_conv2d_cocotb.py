"""cocotb benches of velcro_conv2d on the generated Verilog, on Icarus and on Verilator."""
from __future__ import annotations

import zlib

import pytest

from sim.harness.runner import SIMULATORS, run_bench

RANDOM_CASES = {
    # name: (mask density, input idle / output backpressure, frames)
    "density0": (0.0, False, 3),
    "density0.3": (0.3, False, 3),
    "density0.75": (0.75, False, 4),
    "density1.0": (1.0, False, 4),
    "density0.3-stalls": (0.3, True, 2),
    "density0.75-stalls": (0.75, True, 2),
}


def case_seed(case: str) -> int:
    """A seed fixed by the case's name (hash() of a str changes with every interpreter start)."""
    return zlib.crc32(case.encode()) % 1000


def run(sim, build_root, testcase, **env):
    tests, failed = run_bench(
        sim, "velcro_conv2d", "sim.benches.tb_conv2d", build_root / f"conv2d-{sim}", testcase=testcase,
        env={k: str(v) for k, v in env.items()},
    )
    knobs = " ".join(f"{k}={v}" for k, v in env.items()) or "the bench's default seed"
    assert tests == 1 and failed == 0, f"{testcase} on {sim} ({knobs}): {failed} of {tests} cocotb tests failed"


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("case", RANDOM_CASES)
def test_random_frames(sim, case, sim_build_root):
    density, stalls, frames = RANDOM_CASES[case]
    run(sim, sim_build_root, "test_random_frames", VELCRO_DENSITY=density, VELCRO_STALLS=int(stalls),
        VELCRO_FRAMES=frames, VELCRO_SEED=case_seed(case))


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("testcase", ["test_registers", "test_edge_cases", "test_malformed_frames",
                                      "test_write_during_frame"])
def test_bench(sim, testcase, sim_build_root):
    run(sim, sim_build_root, testcase)
