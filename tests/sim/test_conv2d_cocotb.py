"""cocotb benches of velcro_conv2d on the generated Verilog, on Icarus and on Verilator."""
from __future__ import annotations

import zlib

import pytest

from sim.benches import tb_axil
from sim.harness.runner import SIMULATORS, run_bench

RANDOM_CASES = {
    # name: (mask density, input idle / output backpressure, back-to-back frames: 4 gaps compared with the model)
    "density0": (0.0, False, 5),
    "density0.3": (0.3, False, 5),
    "density0.75": (0.75, False, 5),
    "density1.0": (1.0, False, 5),
    "density0.3-stalls": (0.3, True, 3),
    "density0.75-stalls": (0.75, True, 3),
}

# Zero-value prediction. name: (stimulus, pattern, ZP_MAX, mask density, stalls, channel of the real layer)
# "real" takes the default CNN's hardware layer (balanced masks at the density, a channel with the
# given share of zero outputs: 4 about 0.6, 9 about 0.35, 1 about 0.2, 11 about 0.9, 13 none).
GRID2, CHECKER = 0, 1
ZP_CASES = {
    "blobs-grid2-max0-d0": ("blobs", GRID2, 0, 0.0, False, None),
    "blobs-checker-max128-d0.75": ("blobs", CHECKER, 128, 0.75, False, None),
    "real-checker-max0-d0.3-ch9": ("real", CHECKER, 0, 0.3, False, 9),
    "real-grid2-max20-d0.75-ch1": ("real", GRID2, 20, 0.75, False, 1),
    "real-grid2-max255-d0-ch13": ("real", GRID2, 255, 0.0, False, 13),
    "blobs-grid2-max0-d0.3-stalls": ("blobs", GRID2, 0, 0.3, True, None),
}
ZP_MORE_CASES = {  # the slow tier
    "blobs-checker-max0-d0.3": ("blobs", CHECKER, 0, 0.3, False, None),
    "blobs-checker-max255-d0": ("blobs", CHECKER, 255, 0.0, False, None),
    "random-checker-max40-d0.3": ("random", CHECKER, 40, 0.3, False, None),
    "real-grid2-max0-d0-ch4": ("real", GRID2, 0, 0.0, False, 4),
    "real-checker-max128-d0.75-ch11": ("real", CHECKER, 128, 0.75, False, 11),
    "real-grid2-max0-d0.3-ch9-stalls": ("real", GRID2, 0, 0.3, True, 9),
}


def case_seed(case: str) -> int:
    """A seed fixed by the case's name (hash() of a str changes with every interpreter start)."""
    return zlib.crc32(case.encode()) % 1000


@pytest.fixture(scope="session")
def real_layer_file(sim_build_root):
    """The default CNN's hardware layer (configurations, a few images' IFMAPs) as a bench file."""
    from sim.harness.layer_data import DENSITIES, layer_file

    return layer_file(sim_build_root), DENSITIES


def run(sim, build_root, testcase, module="sim.benches.tb_conv2d", **env):
    tests, failed = run_bench(
        sim, "velcro_conv2d", module, build_root / f"conv2d-{sim}", testcase=testcase,
        env={k: str(v) for k, v in env.items()},
    )
    knobs = " ".join(f"{k}={v}" for k, v in env.items()) or "the bench's default knobs"
    assert tests == 1 and failed == 0, f"{testcase} on {sim} ({knobs}): {failed} of {tests} cocotb tests failed"


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("case", RANDOM_CASES)
def test_random_frames(sim, case, sim_build_root):
    density, stalls, frames = RANDOM_CASES[case]
    run(sim, sim_build_root, "test_random_frames", VELCRO_DENSITY=density, VELCRO_STALLS=int(stalls),
        VELCRO_FRAMES=frames, VELCRO_SEED=case_seed(case))


def run_zp_case(sim, build_root, case, spec, request):
    stimulus, pattern, zp_max, density, stalls, channel = spec
    env = {"VELCRO_STIMULUS": stimulus, "VELCRO_ZP_PATTERN": pattern, "VELCRO_ZP_MAX": zp_max,
           "VELCRO_DENSITY": density, "VELCRO_STALLS": int(stalls), "VELCRO_SEED": case_seed(case)}
    if stimulus == "real":
        path, densities = request.getfixturevalue("real_layer_file")
        env.update(VELCRO_CONFIG=path, VELCRO_RUN=densities.index(density), VELCRO_CHANNEL=channel)
    run(sim, build_root, "test_zp_frames", **env)


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("case", ZP_CASES)
def test_zp_frames(sim, case, sim_build_root, request):
    run_zp_case(sim, sim_build_root, case, ZP_CASES[case], request)


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("case", ZP_MORE_CASES)
def test_zp_frames_more(sim, case, sim_build_root, request):
    run_zp_case(sim, sim_build_root, case, ZP_MORE_CASES[case], request)


# Edge cases per (simulator, pattern): Icarus takes about 30 s per pattern, so its CHECKER run is slow-tier.
@pytest.mark.parametrize("sim, pattern", [("icarus", GRID2), ("verilator", GRID2), ("verilator", CHECKER)])
def test_zp_edge_cases(sim, pattern, sim_build_root):
    run(sim, sim_build_root, "test_zp_edge_cases", VELCRO_ZP_PATTERNS=pattern)


@pytest.mark.parametrize("sim, pattern", [("icarus", CHECKER)])
def test_zp_edge_cases_more(sim, pattern, sim_build_root):
    run(sim, sim_build_root, "test_zp_edge_cases", VELCRO_ZP_PATTERNS=pattern)


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("testcase", ["test_registers", "test_edge_cases", "test_malformed_frames",
                                      "test_write_during_frame", "test_zp_registers", "test_partial_mask_then_frame",
                                      "test_reset_mid_frame", "test_full_queues", "test_skip_en_toggled_in_flight",
                                      "test_malformed_frame_while_computing"])
def test_bench(sim, testcase, sim_build_root):
    run(sim, sim_build_root, testcase, VELCRO_SEED=case_seed(testcase))


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("testcase", tb_axil.ANY_DUT_TESTS)
def test_axil_corners(sim, testcase, sim_build_root):
    """sim.benches.tb_axil: the AXI4-Lite port driven channel by channel."""
    run(sim, sim_build_root, testcase, module="sim.benches.tb_axil", VELCRO_SEED=case_seed(testcase))
