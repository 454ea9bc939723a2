"""The quick formal jobs of formal/axil.py (the AXI4-Lite subordinates and the mutation) pass as expected."""
from __future__ import annotations

import pytest

from formal import axil
from formal.job import run

QUICK = [job for job in axil.JOBS if job.quick]


def test_every_job_is_named_once_and_the_mutation_is_quick():
    names = [job.name for job in axil.JOBS]
    assert len(names) == len(set(names))
    assert any(job.expect == "FAIL" for job in QUICK), "the mutation must be in the quick subset"


@pytest.mark.parametrize("job", QUICK, ids=lambda job: job.name)
def test_quick_job(job, tmp_path):
    result = run(job, tmp_path)
    assert result.as_expected, f"{job.name}: {result.status}, expected {job.expect}\n{result.log_tail}"
    if job.expect == "FAIL":  # a real counterexample from reset, not an induction that did not close
        assert "returned FAIL for basecase" in result.log_tail, result.log_tail
