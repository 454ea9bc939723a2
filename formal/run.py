"""`make formal`: run every formal job of the property modules and write reports/formal.md and .json.

    python -m formal.run [--quick] [--only SUBSTR] [--jobs N]

Jobs run in parallel worker processes (each job is one SymbiYosys run); the exit status is 1 when
any job is not as expected: a proof that does not pass, or a mutation that is not caught.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from formal.job import DEFAULT_WORKDIR, ROOT, FormalJob, FormalResult, missing_tools, missing_tools_message, run

PROPERTY_MODULES = ("formal.axil", "formal.stream", "formal.axi4_master")
REPORT_DIR = ROOT / "reports"


def all_jobs() -> list[tuple[str, FormalJob]]:
    """(module, job) for every job of PROPERTY_MODULES; job names must be unique."""
    jobs = [(module, job) for module in PROPERTY_MODULES for job in importlib.import_module(module).JOBS]
    names = [job.name for _, job in jobs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"formal job names must be unique, repeated: {', '.join(duplicates)}")
    return jobs


def run_by_name(module: str, name: str, workdir: str) -> dict:
    """Worker: find the job again (harnesses are closures, they do not travel between processes) and run it."""
    job = next(job for job in importlib.import_module(module).JOBS if job.name == name)
    result = run(job, Path(workdir))
    return {"status": result.status, "seconds": result.seconds, "workdir": str(result.workdir),
            "log_tail": result.log_tail}  # fmt: skip


def verdict(result: FormalResult) -> str:
    """What the report says: a mutation the proof rejects is "caught"."""
    if result.job.expect == "FAIL":
        return "caught" if result.as_expected else f"MISSED ({result.status})"
    return result.status


def table(results: list[FormalResult]) -> list[str]:
    rows = ["| job | mode | depth | status | seconds |", "|---|---|---|---|---|"]
    rows += [f"| {r.job.name} | {r.job.mode} | {r.job.depth} | {verdict(r)} | {r.seconds:.1f} |" for r in results]
    return rows


def write_reports(results: list[FormalResult], selection: str, seconds: float, report_dir: Path) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    failed = [r for r in results if not r.as_expected]
    lines = [
        "# Formal verification (`make formal`)",
        "",
        "SymbiYosys (yowasp-sby) with z3 on the Amaranth harnesses of "
        + ", ".join(f"`{m.replace('.', '/')}.py`" for m in PROPERTY_MODULES)
        + ". `prove`: k-induction, the properties hold in every reachable state; `bmc`: no property fails "
        "within `depth` cycles of reset; `cover`: every Cover is reached within `depth` cycles. A mutation "
        "is a deliberately broken design: \"caught\" means its proof failed with a counterexample from reset.",
        "",
        f"Jobs: {selection}; {len(results) - len(failed)} of {len(results)} as expected; {seconds:.0f} s wall time.",
        "",
        *table(results),
        "",
        "## Properties",
        "",
    ]
    for r in results:
        lines += [f"### {r.job.name} ({r.job.mode}, depth {r.job.depth}): {verdict(r)}", ""]
        lines += [f"- {p}" for p in r.job.properties] + [""]
    (report_dir / "formal.md").write_text("\n".join(lines))
    entries = [{"name": r.job.name, "mode": r.job.mode, "depth": r.job.depth, "expect": r.job.expect,
                "status": r.status, "as_expected": r.as_expected, "verdict": verdict(r),
                "seconds": round(r.seconds, 2), "quick": r.job.quick, "properties": list(r.job.properties)}
               for r in results]  # fmt: skip
    summary = {"selection": selection, "seconds": round(seconds, 1), "jobs": entries}
    (report_dir / "formal.json").write_text(json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the quick subset (what the tests run)")
    parser.add_argument("--only", metavar="SUBSTR", help="only jobs whose name contains SUBSTR")
    parser.add_argument("--jobs", type=int, default=2, metavar="N", help="parallel SymbiYosys runs (default 2)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="SymbiYosys work directories")
    parser.add_argument("--reports", type=Path, default=REPORT_DIR, help="where formal.md and formal.json go")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    missing = missing_tools()
    if missing:
        print(f"error: {missing_tools_message(missing)}", file=sys.stderr)
        return 2

    jobs = [(mod, job) for mod, job in all_jobs()
            if (job.quick or not args.quick) and (args.only is None or args.only in job.name)]  # fmt: skip
    if not jobs:
        print(f"error: no formal job matches (--only {args.only!r}, --quick {args.quick})", file=sys.stderr)
        return 2
    selection = " ".join(["all jobs" if not (args.quick or args.only) else "",
                          "the quick subset" if args.quick else "",
                          f"names containing {args.only!r}" if args.only else ""]).strip()  # fmt: skip

    start = time.monotonic()
    results: dict[str, FormalResult] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool, tqdm(total=len(jobs), desc="formal", unit="job") as bar:
        futures = {pool.submit(run_by_name, mod, job.name, str(args.workdir)): job for mod, job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            out = future.result()
            results[job.name] = FormalResult(job, out["status"], out["seconds"], Path(out["workdir"]), out["log_tail"])
            bar.set_postfix_str(f"{job.name}: {verdict(results[job.name])}")
            bar.update()
    seconds = time.monotonic() - start
    ordered = [results[job.name] for _, job in jobs]

    print("\n".join(table(ordered)))
    write_reports(ordered, selection, seconds, args.reports)
    failed = [r for r in ordered if not r.as_expected]
    for r in failed:
        print(f"\n{r.job.name}: {r.status}, expected {r.job.expect} ({r.workdir})\n{r.log_tail}", file=sys.stderr)
    print(f"\n{len(ordered) - len(failed)} of {len(ordered)} formal jobs as expected in {seconds:.0f} s; "
          f"report: {args.reports / 'formal.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
