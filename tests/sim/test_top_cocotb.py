# amaranth: UnusedElaboratable=no
"""velcro_top: parameter checks, and cocotb benches of the generated Verilog on Icarus and Verilator.

The first line silences Amaranth's unused-elaboratable warning for the tops the validation test
builds: their constructor raises before they could ever be used.
"""
from __future__ import annotations

import pytest

from rtl.top import VelcroTop
from sim.harness.runner import SIMULATORS, run_bench


@pytest.mark.parametrize("instances, error", [(0, ValueError), (17, ValueError), (4.0, TypeError),
                                              ("16", TypeError), (True, TypeError)])  # fmt: skip
def test_instances_validated(instances, error):
    with pytest.raises(error, match="instances"):
        VelcroTop(instances)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_bench(sim, sim_build_root):
    """Both cocotb tests of sim.benches.tb_top in one run: the Verilator build of 16 instances takes minutes,
    and one pytest test per simulator guarantees it is built once, on one worker."""
    tests, failed = run_bench(sim, "velcro_top", "sim.benches.tb_top", sim_build_root / f"top-{sim}",
                              testcase="test_address_decode,test_all_instances_concurrently")
    assert tests == 2 and failed == 0, f"velcro_top on {sim}: {failed} of {tests} cocotb tests failed"
