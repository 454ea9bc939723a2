"""`python -m formal.run`: job selection, the report, the exit status and the missing-tools message."""
from __future__ import annotations

import json

from formal import run


def test_report_shows_a_caught_mutation_and_a_proof(tmp_path):
    status = run.main(["--only", "axil_register_bus_", "--quick", "--jobs", "2",
                       "--workdir", str(tmp_path / "work"), "--reports", str(tmp_path)])  # fmt: skip
    assert status == 0
    report = (tmp_path / "formal.md").read_text()
    assert "| axil_register_bus_mutant_bvalid_drop | prove | 4 | caught |" in report
    assert "| axil_register_bus_prove | prove | 4 | PASS |" in report
    jobs = {entry["name"]: entry for entry in json.loads((tmp_path / "formal.json").read_text())["jobs"]}
    assert jobs["axil_register_bus_mutant_bvalid_drop"]["verdict"] == "caught"
    assert all(entry["as_expected"] for entry in jobs.values())


def test_no_matching_job_is_an_error(tmp_path, capsys):
    assert run.main(["--only", "no-such-job", "--reports", str(tmp_path)]) == 2
    assert "no formal job matches" in capsys.readouterr().err


def test_missing_tools_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run.main(["--reports", str(tmp_path)]) == 2
    assert "yowasp-sby" in capsys.readouterr().err
    assert not (tmp_path / "formal.md").exists()
