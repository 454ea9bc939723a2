"""Shared fixtures: a simulator build directory per pytest-xdist worker and simulator."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sim_build_root() -> Path:
    """sim_build/<worker>/: builds are reused within a worker and never shared between workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = ROOT / "sim_build" / worker
    path.mkdir(parents=True, exist_ok=True)
    return path
