"""Resource and depth budgets (rtl/tools/budgets.py): the check on made-up results, then (slow tier)
the real designs, synthesised by the open estimate, against their budgets."""
from __future__ import annotations

import pytest

from rtl.tools import budgets, resources
from rtl.tools.budgets import BUDGETS, PathException, check, markdown_table
from rtl.tools.timing import estimate_with_timing


def _path(lut_levels: int, end: str = "mac.acc[3]", start: str = "mac.a[0]") -> dict:
    return {"lut_levels": lut_levels, "carry": 2, "muxf": 0, "end": end, "end_pin": "D", "end_type": "FDRE",
            "start": start, "start_pin": "", "start_type": "FDRE", "through": "LUT6 > CARRY8 x2"}


def _estimate(lut=9_000, ff=4_000, bram=15.5, module="velcro_conv2d") -> dict:
    return {"module": module, "counts": {"LUT": lut, "FF": ff, "DSP48E2": 12, "BRAM36": bram, "URAM": 0}}


def _timing(paths=(5,), truncated=False, module="velcro_conv2d") -> dict:
    kept = [_path(n, end=f"r{i}[0]") for i, n in enumerate(paths)]
    return {"top": module, "reg_to_reg": {"lut_levels": kept[0]["lut_levels"] if kept else 0, "carry": 2,
                                          "muxf": 0, "paths": kept, "truncated": truncated}}


def test_budgets_follow_the_issue():
    top, core = BUDGETS["velcro_top"], BUDGETS["velcro_conv2d"]
    assert (core.LUT, core.FF, core.BRAM36, core.depth) == (11_000, 4_500, 16, 8)
    assert top.LUT == 195_552 == round(0.15 * resources.U280["LUT"])
    assert (top.FF, top.BRAM36, top.depth) == (16 * 4_500 + 2_000, 256, 8)
    krnl = BUDGETS["velcro_krnl"]
    assert (krnl.LUT, krnl.FF, krnl.BRAM36, krnl.depth) == (12_000, 6_000, 16, 8)
    from rtl.tools.generate import designs

    assert set(BUDGETS) == set(designs())


def test_within_budget_has_no_violation():
    assert check(_estimate(), _timing()) == []


def test_each_resource_over_budget_is_named():
    violations = check(_estimate(lut=55_123, ff=4_501, bram=16.5), _timing())
    assert violations == ["velcro_conv2d: LUT 55,123 > budget 11,000 (501 % of it)",
                          "velcro_conv2d: FF 4,501 > budget 4,500 (100 % of it)",
                          "velcro_conv2d: BRAM36 16.5 > budget 16 (103 % of it)"]


def test_depth_over_budget_names_start_and_end():
    violations = check(_estimate(), _timing(paths=(10, 9, 9, 9, 9, 3)))
    assert violations[0] == ("velcro_conv2d: 10 LUT levels > budget 8 on the path mac.a[0] -> r0[0] (D)"
                             " through LUT6 > CARRY8 x2")
    assert len(violations) == 4 and violations[-1] == "velcro_conv2d: and 2 more end registers over 8 LUT levels"


def test_exception_covers_a_path_up_to_its_depth_only():
    estimate, timing = _estimate(), _timing(paths=(10, 4))
    allowed = PathException("velcro_conv2d", "r0*", "a registered-enough path, reviewed", max_depth=10)
    assert check(estimate, timing, (allowed,)) == []
    assert budgets.measured_depth("velcro_conv2d", timing, (allowed,)) == 4
    tight = PathException("velcro_conv2d", "r0*", "reviewed at 9 levels", max_depth=9)
    assert len(check(estimate, timing, (tight,))) == 1
    other = PathException("velcro_top", "r0*", "another design", max_depth=10)
    assert len(check(estimate, timing, (other,))) == 1


def test_exception_needs_a_reason():
    with pytest.raises(ValueError, match="reason"):
        PathException("velcro_conv2d", "x*", "  ", max_depth=9)
    assert all(e.reason.strip() for e in budgets.PATH_EXCEPTIONS)


def test_missing_or_failed_timing_and_unknown_design_are_violations():
    assert "no timing proxy result" in check(_estimate(), None)[0]
    failed = {"top": "velcro_conv2d", "error": "combinational loop through 2 cell(s)"}
    assert check(_estimate(), failed) == ["velcro_conv2d: timing proxy failed: combinational loop through 2 cell(s)"]
    assert check(_estimate(module="other"), _timing()) == ["other: no budget in rtl/tools/budgets.py"]


def test_truncated_path_list_still_over_budget_is_reported():
    allowed = PathException("velcro_conv2d", "r*", "reviewed", max_depth=9)
    assert check(_estimate(), _timing(paths=(9, 9), truncated=True), (allowed,)) == [
        "velcro_conv2d: more end registers over 8 LUT levels than the 2 the timing proxy keeps"]


def test_table_sets_estimate_against_budget():
    table = markdown_table([_estimate(lut=55_000), _estimate(module="velcro_krnl", lut=500)],
                           [_timing(paths=(10,)), _timing(module="velcro_krnl")])
    lines = table.splitlines()
    assert lines[0] == "| design | what | estimate | budget | use | status |"
    assert "| velcro_conv2d | LUT | 55,000 | 11,000 | 500 % | OVER |" in lines
    assert "| velcro_conv2d | BRAM36 | 15.5 | 16 | 97 % | OK |" in lines
    assert "| velcro_conv2d | logic depth (LUT levels) | 10 | 8 | 125 % | OVER |" in lines
    assert "| velcro_krnl | LUT | 500 | 12,000 | 4 % | OK |" in lines


def test_designs_meet_their_budgets():
    """Slow tier: synthesise (or reuse the cached estimate of) every design and check its budgets.

    Expected to fail while the core is over budget: the budgets are the target, not the status quo.
    """
    from rtl.tools.generate import designs

    pairs = [estimate_with_timing(name) for name in designs()]
    estimates, timings = [p[0] for p in pairs], [p[1] for p in pairs]
    violations = budgets.violations(estimates, timings)
    assert not violations, "\n".join(["budgets exceeded:", *violations, "", markdown_table(estimates, timings)])
