"""The import contracts of pyproject.toml ([tool.importlinter]) hold: `lint-imports` reports none broken.

The contracts keep rtl/ on model.hw.spec alone, model.hw free of torch and of the algorithm, sim/
on top of everything, and every package of model/, rtl/ and sim/ free of import cycles.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), f"{lint_imports} missing: run make setup (import-linter is in pyproject.toml)"
    proc = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"broken import contracts (pyproject.toml [tool.importlinter]):\n{proc.stdout}{proc.stderr}"
    assert "0 broken" in proc.stdout, proc.stdout
