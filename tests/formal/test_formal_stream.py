"""The quick jobs of formal/stream.py (velcro_conv2d's m_axis on its drain stage) must reach their verdict."""
from __future__ import annotations

import pytest

from formal import stream
from formal.job import run

QUICK = [job for job in stream.JOBS if job.quick]


@pytest.mark.parametrize("job", QUICK, ids=lambda job: job.name)
def test_stream_job(job, tmp_path):
    result = run(job, workdir=tmp_path)
    assert result.as_expected, f"{job.name}: {result.status}, expected {job.expect}\n{result.log_tail}"
