"""Shared fixtures, and the test tiers.

Tiers (markers registered in pyproject.toml, assigned here so the test files need no decorations):

* unmarked: unit tests (golden model, Amaranth units, the algorithm on small models, report
  parsing, the Vivado dry run, Verilog freshness and lint): `make test-fast`;
* `cocotb`: runs a simulator (Icarus or Verilator) on the generated Verilog;
* `slow`: over about 20 s on 2 cores (the flows: sweep, hardware in the loop; the 16-instance
  top's benches; a CLI evaluation on the whole validation split).

`make test-cocotb` runs `cocotb and not slow`, `make test` runs every tier.

Hypothesis runs the "ci" profile (derandomized, so every run draws the same examples) unless
HYPOTHESIS_PROFILE=thorough asks for many more examples with fresh randomness.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# No example database (a failure prints its reproduction blob), and Hypothesis's own caches go to the
# ignored .cache/ rather than a .hypothesis/ in the tree.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(ROOT / ".cache" / "hypothesis"))
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40, database=None, print_blob=True)
settings.register_profile("thorough", deadline=None, max_examples=1000, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Fixtures that start a simulator: a test that requests one is a `cocotb` test.
SIMULATOR_FIXTURES = {"sim_build_root", "two_point_sweep"}

# Tests over about 20 s, as "path relative to tests/" or "path::test name" (every parametrization).
SLOW = {
    "sim/test_hil_cocotb.py",
    "sim/test_sweep.py::test_sweep_meets_the_papers_shape",
    "sim/test_sweep.py::test_reports_are_written",
    "sim/test_sweep.py::test_prediction_chain_toggles_fall_with_skipped_share",
    "sim/test_top_cocotb.py::test_bench",
    "sim/test_conv2d_cocotb.py::test_zp_frames_more",
    "sim/test_conv2d_cocotb.py::test_zp_edge_cases_more",
    "sim/test_top_cocotb.py::test_prediction_on_every_instance",
    "sim/test_prediction_activity.py",
    "sim/test_soak_cocotb.py",
    "sim/test_scheduling_benchmark.py",
    "nets/test_default_cnn.py::test_cli_eval_on_default",
    "nets/test_cli_behaviours.py::test_checkpoint_reaches_its_recorded_test_accuracy",
    "nets/test_torchrun.py",
    "deploy/test_zp_export.py::test_acceptance_on_1000_images",
    "rtl/test_budgets.py::test_designs_meet_their_budgets",
    "rtl/test_generated_verilog.py::test_verilator_lint_clean_top",
    "rtl/test_zero_predict.py::test_predictor_dilate_pass_matches_golden_more",
    "rtl/test_zero_predict.py::test_core_prediction_frames_match_golden_and_cycle_model",
    "rtl/test_zero_predict.py::test_core_back_to_back_gaps_and_prediction_off_unchanged",
}


def pytest_configure(config: pytest.Config) -> None:
    """A renamed or moved slow test must not silently fall into the fast tier."""
    tests_dir = Path(__file__).resolve().parent
    for entry in sorted(SLOW):
        path, _, name = entry.partition("::")
        file = tests_dir / path
        if not file.is_file() or (name and f"def {name}(" not in file.read_text(encoding="utf-8")):
            raise pytest.UsageError(f"tests/conftest.py SLOW lists {entry!r}, which does not exist: update the list")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).resolve().parent
    for item in items:
        path = item.path.resolve().relative_to(tests_dir).as_posix()
        name = getattr(item, "originalname", item.name)
        if SIMULATOR_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cocotb)
        if path in SLOW or f"{path}::{name}" in SLOW:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sim_build_root() -> Path:
    """sim_build/<worker>/: builds are reused within a worker and never shared between workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = ROOT / "sim_build" / worker
    path.mkdir(parents=True, exist_ok=True)
    return path
