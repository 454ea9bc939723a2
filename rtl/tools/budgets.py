"""Resource and logic-depth budgets of the designs, in one place, and the check against them.

    python -m rtl.tools.budgets [module ...] [--no-cache]

prints the open estimate (rtl/tools/resources.py) and the timing proxy (rtl/tools/timing.py) next to
each budget, OK or OVER, then the violations, and exits 1 if there is any.

The numbers are the project's targets: `velcro_conv2d` gets 11,000 LUTs, 4,500 FFs and 16 BRAM36;
`velcro_top` (16 cores and their AXI glue) 15 % of the U280's LUTs, 16 x the core's FFs + 2,000 and
16 x 16 BRAM36; `velcro_krnl` (one core, its AXI4 master and control) 12,000 LUTs, 6,000 FFs and 16
BRAM36. Every design gets 8 LUT levels between registers, a little above the 6-7 that fit 300 MHz on
UltraScale+ -2 with routing; for the top and the kernel that is their own glue, since the core is a
black box there and is checked on its own.

A path that must stay deeper than its budget is listed in `PATH_EXCEPTIONS` with the reason; nothing
else may exceed a budget.
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from dataclasses import dataclass

from rtl.tools.resources import U280
from rtl.tools.timing import estimate_with_timing


@dataclass(frozen=True)
class Budget:
    """Upper bounds for one design: resources as counted by resources.py, depth in LUT levels."""

    LUT: int
    FF: int
    BRAM36: float
    depth: int


CORE = Budget(LUT=11_000, FF=4_500, BRAM36=16, depth=8)
INSTANCES = 16  # velcro_top's cores
BUDGETS = {
    "velcro_conv2d": CORE,
    "velcro_top": Budget(LUT=round(0.15 * U280["LUT"]), FF=INSTANCES * CORE.FF + 2_000,
                         BRAM36=INSTANCES * CORE.BRAM36, depth=8),
    "velcro_krnl": Budget(LUT=12_000, FF=6_000, BRAM36=16, depth=8),
}
RESOURCES = ("LUT", "FF", "BRAM36")
SHOWN_OVER = 3  # paths over the depth budget named per design; the rest are counted


@dataclass(frozen=True)
class PathException:
    """A register-to-register path allowed past its design's depth budget, and why."""

    design: str
    end: str  # fnmatch pattern on the end register's name, e.g. "mac.acc*"
    reason: str
    max_depth: int  # LUT levels allowed on such paths

    def __post_init__(self):
        if not self.reason.strip():
            raise ValueError(f"the path exception for {self.design} {self.end!r} needs a reason")

    def covers(self, design: str, path: dict) -> bool:
        return (design == self.design and fnmatch.fnmatchcase(path["end"], self.end)
                and path["lut_levels"] <= self.max_depth)


PATH_EXCEPTIONS: tuple[PathException, ...] = ()


def counted_paths(design: str, timing: dict, exceptions=PATH_EXCEPTIONS) -> list[dict]:
    """The register-to-register paths the depth budget applies to: all kept ones but the excepted."""
    return [p for p in timing["reg_to_reg"]["paths"] if not any(e.covers(design, p) for e in exceptions)]


def _depth_violations(design: str, timing: dict | None, budget: Budget, exceptions) -> list[str]:
    if timing is None:
        return [f"{design}: no timing proxy result (rerun the estimate)"]
    if "error" in timing:
        return [f"{design}: timing proxy failed: {timing['error']}"]
    over = [p for p in counted_paths(design, timing, exceptions) if p["lut_levels"] > budget.depth]
    messages = [f"{design}: {p['lut_levels']} LUT levels > budget {budget.depth} on the path "
                f"{p['start']} -> {p['end']} ({p['end_pin'] or 'port'}) through {p['through']}"
                for p in over[:SHOWN_OVER]]
    if len(over) > SHOWN_OVER:
        messages.append(f"{design}: and {len(over) - SHOWN_OVER} more end registers over {budget.depth} LUT levels")
    kept = timing["reg_to_reg"]["paths"]
    if timing["reg_to_reg"]["truncated"] and kept and kept[-1]["lut_levels"] > budget.depth:
        messages.append(f"{design}: more end registers over {budget.depth} LUT levels than the "
                        f"{len(kept)} the timing proxy keeps")
    return messages


def check(estimate: dict, timing: dict | None, exceptions=PATH_EXCEPTIONS) -> list[str]:
    """Violations of a design's budgets, as messages; empty if it meets them all.

    `estimate` is a result of resources.estimate, `timing` the timing proxy's of the same design.
    """
    design = estimate["module"]
    budget = BUDGETS.get(design)
    if budget is None:
        return [f"{design}: no budget in rtl/tools/budgets.py"]
    messages = [f"{design}: {r} {_fmt(estimate['counts'][r])} > budget {_fmt(getattr(budget, r))} "
                f"({100 * estimate['counts'][r] / getattr(budget, r):.0f} % of it)"
                for r in RESOURCES if estimate["counts"][r] > getattr(budget, r)]
    return messages + _depth_violations(design, timing, budget, exceptions)


def measured_depth(design: str, timing: dict | None, exceptions=PATH_EXCEPTIONS) -> int | None:
    """The deepest counted register-to-register path, in LUT levels (None without a result)."""
    if timing is None or "error" in timing:
        return None
    paths = counted_paths(design, timing, exceptions)
    return paths[0]["lut_levels"] if paths else 0


def _fmt(value) -> str:
    return f"{value:,.1f}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,}"


def _row(design: str, what: str, value, limit) -> str:
    if value is None:
        return f"| {design} | {what} | - | {_fmt(limit)} | - | OVER |"
    status = "OK" if value <= limit else "OVER"
    return f"| {design} | {what} | {_fmt(value)} | {_fmt(limit)} | {100 * value / limit:.0f} % | {status} |"


def markdown_table(estimates: list[dict], timings: list[dict], exceptions=PATH_EXCEPTIONS) -> str:
    """Estimate and budget side by side: design | what | estimate | budget | use | OK/OVER."""
    lines = ["| design | what | estimate | budget | use | status |", "|---|---|---:|---:|---:|---|"]
    for estimate, timing in zip(estimates, timings, strict=True):
        design, budget = estimate["module"], BUDGETS[estimate["module"]]
        lines += [_row(design, r, estimate["counts"][r], getattr(budget, r)) for r in RESOURCES]
        depth = measured_depth(design, timing, exceptions)
        lines.append(_row(design, "logic depth (LUT levels)", depth, budget.depth))
    if exceptions:
        lines += ["", "Path exceptions: " + "; ".join(f"{e.design} `{e.end}` (<= {e.max_depth} levels): "
                                                      f"{e.reason}" for e in exceptions)]
    return "\n".join(lines) + "\n"


def violations(estimates: list[dict], timings: list[dict], exceptions=PATH_EXCEPTIONS) -> list[str]:
    """`check` over several designs."""
    return [m for estimate, timing in zip(estimates, timings, strict=True) for m in check(estimate, timing, exceptions)]


def report_markdown(estimates: list[dict], timings: list[dict], exceptions=PATH_EXCEPTIONS) -> str:
    """The side-by-side table, then every violation (or that there is none)."""
    listed = "".join(f"- OVER: {m}\n" for m in violations(estimates, timings, exceptions)) or "All budgets met.\n"
    return markdown_table(estimates, timings, exceptions) + "\n" + listed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("modules", nargs="*", help="modules of rtl.tools.generate.designs() (default: all)")
    parser.add_argument("--no-cache", action="store_true", help="synthesise even if a cached result exists")
    args = parser.parse_args(argv)
    from rtl.tools.generate import designs

    pairs = [estimate_with_timing(name, use_cache=not args.no_cache) for name in args.modules or designs()]
    estimates, timings = [p[0] for p in pairs], [p[1] for p in pairs]
    print(report_markdown(estimates, timings), end="")
    return 1 if violations(estimates, timings) else 0


if __name__ == "__main__":
    sys.exit(main())
