"""The quick jobs of formal/axi4_master.py (the kernel's AXI4 burst reader and writer) must reach their verdict."""
from __future__ import annotations

import pytest

from formal import axi4_master
from formal.job import run

QUICK = [job for job in axi4_master.JOBS if job.quick]


@pytest.mark.parametrize("job", QUICK, ids=lambda job: job.name)
def test_axi4_master_job(job, tmp_path):
    result = run(job, workdir=tmp_path)
    assert result.as_expected, f"{job.name}: {result.status}, expected {job.expect}\n{result.log_tail}"
