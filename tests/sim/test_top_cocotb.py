# amaranth: UnusedElaboratable=no
"""velcro_top: parameter checks, and cocotb benches of the generated Verilog on Icarus and Verilator.

The first line silences Amaranth's unused-elaboratable warning for the tops the validation test
builds: their constructor raises before they could ever be used.
"""
from __future__ import annotations

import pytest

from rtl.top import VelcroTop
from sim.benches import tb_axil
from sim.harness.runner import SIMULATORS, run_bench


@pytest.mark.parametrize("instances, error", [(0, ValueError), (17, ValueError), (4.0, TypeError),
                                              ("16", TypeError), (True, TypeError)])  # fmt: skip
def test_instances_validated(instances, error):
    with pytest.raises(error, match="instances"):
        VelcroTop(instances)


TOP_TESTS = ("test_address_decode", "test_all_instances_concurrently", "test_back_to_back_under_backpressure")


@pytest.mark.parametrize("sim", SIMULATORS)
def test_bench(sim, sim_build_root):
    """The cocotb tests of sim.benches.tb_top and, through the bridge, of sim.benches.tb_axil, in one pytest
    test per simulator: the Verilator build of 16 instances takes minutes, and one pytest test guarantees it
    is built once, on one worker (both runs share it)."""
    build = sim_build_root / f"top-{sim}"
    for module, testcases in (("sim.benches.tb_top", TOP_TESTS), ("sim.benches.tb_axil", tb_axil.TOP_TESTS)):
        tests, failed = run_bench(sim, "velcro_top", module, build, testcase=",".join(testcases))
        assert tests == len(testcases) and failed == 0, f"velcro_top on {sim}: {failed} of {tests} tests of {module} failed"


def test_prediction_on_every_instance(sim_build_root):
    """velcro_top (Icarus) with prediction on in every instance (both patterns, ZP_MAX 0 to 255, VELCRO
    masks at 0.3), the default CNN's hardware layer with real activations, 3 images back to back per
    instance: the bench checks every output and every gap against the models and reads LAST_COMPUTED
    and LAST_PREDICTED after every frame."""
    import dataclasses

    import numpy as np

    from model.hw import golden
    from sim.harness.bench_files import read_runs
    from sim.harness.hil import run_layer_measured
    from sim.harness.layer_data import DENSITIES, layer_file

    runs, ifmaps = read_runs(layer_file(sim_build_root))
    configs = [dataclasses.replace(cfg, zp_en=True, zp_pattern=i % 2, zp_max=(0, 20, 128, 255)[(i // 2) % 4])
               for i, cfg in enumerate(runs[DENSITIES.index(0.3)])]  # fmt: skip
    frames = np.ascontiguousarray(ifmaps[:, :3])
    measured = run_layer_measured("icarus", [configs], frames, sim_build_root / "top-zp-icarus",
                                  build_dir=sim_build_root / "top-icarus", counters=True)  # fmt: skip
    results = [[golden.frame_result(x, cfg) for x in frames[i]] for i, cfg in enumerate(configs)]
    assert measured["predicted"][0].tolist() == [[r.predicted_outputs for r in rs] for rs in results]
    assert measured["computed"][0].tolist() == [[r.computed_outputs for r in rs] for rs in results]
    assert sum(r.predicted_outputs for rs in results for r in rs) > 0, "the stimulus must predict something"
