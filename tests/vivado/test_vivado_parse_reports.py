"""vivado/parse_reports.py on sample reports.

The samples in vivado/sample_reports/ are HAND-WRITTEN to the text format of Vivado 2023.2's
report_utilization, report_utilization -hierarchical, report_timing_summary and report_power;
they are not output of a Vivado run (none is available here) and their numbers are made up.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VIVADO_DIR = REPO / "vivado"
SAMPLES = VIVADO_DIR / "sample_reports"
PARSER = VIVADO_DIR / "parse_reports.py"

# vivado/parse_reports.py is a script, not a package module: import it by path.
_spec = importlib.util.spec_from_file_location("velcro_vivado_parse_reports", VIVADO_DIR / "parse_reports.py")
parse_reports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parse_reports)


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    d = tmp_path / "vivado"
    shutil.copytree(SAMPLES, d)
    (d / "README.md").unlink()
    return d


def test_samples_are_labelled_hand_written() -> None:
    for path in SAMPLES.glob("*.rpt"):
        assert "HAND-WRITTEN SAMPLE" in path.read_text().splitlines()[0], path
    assert "hand-written" in (SAMPLES / "README.md").read_text()


def test_summary_of_sample_reports(reports: Path) -> None:
    s = parse_reports.summarize(reports)
    assert s["schema"] == parse_reports.SCHEMA
    assert (s["top"], s["part"], s["clock_target_mhz"]) == ("velcro_top", "xcu280-fsvh2892-2L-e", 300)
    assert s["tool_version"].startswith("Vivado v.2023.2")
    assert s["design_state"] == "Routed"
    assert (s["lut"], s["ff"], s["dsp"], s["bram"], s["uram"]) == (52113, 61234, 144, 88.5, 2)
    assert (s["wns_ns"], s["tns_ns"], s["whs_ns"], s["wpws_ns"]) == (0.512, 0.0, 0.021, 1.116)
    assert s["clock_period_ns"] == 3.333
    assert s["timing_met"] is True
    assert s["fmax_mhz"] == pytest.approx(1000 / (3.333 - 0.512), abs=1e-3)
    # the simulated-activity report is the headline when present; the vectorless one stays beside it
    assert s["power_source"] == "saif"
    assert (s["power_total_w"], s["power_dynamic_w"], s["power_static_w"]) == (3.102, 0.64, 2.462)
    assert s["power_confidence"] == "Medium"
    saif, vectorless = s["power"]["saif"], s["power"]["vectorless"]
    assert saif["activity_file"] == "sim_build/activity/c0.saif"
    assert (saif["nets_matched_pct"], saif["nets_matched"]) == (86.0, [120123, 139678])
    assert (vectorless["total_w"], vectorless["dynamic_w"], vectorless["confidence"]) == (3.456, 0.987, "Low")
    assert vectorless["activity_file"] is None and vectorless["nets_matched"] is None
    assert [(r["instance"], r["depth"]) for r in vectorless["by_hierarchy"]] == [
        ("velcro_top", 0), ("conv_0", 1), ("mac", 2), ("conv_1", 1)
    ]
    assert (s["saif"], s["saif_instance"]) == ("sim_build/activity/c0.saif", "velcro_top")
    assert s["missing"] == []
    json.dumps(s)  # serialisable


def test_hierarchical_utilization(reports: Path) -> None:
    rows = parse_reports.parse_utilization_hier((reports / "utilization_hier.rpt").read_text())
    assert [(r["instance"], r["module"], r["depth"]) for r in rows] == [
        ("velcro_top", "(top)", 0), ("(velcro_top)", "(top)", 1), ("conv_0", "velcro_conv2d", 1),
        ("mac", "mac_unit", 2), ("conv_1", "velcro_conv2d", 1),
    ]
    assert rows[2]["Total LUTs"] == 3250 and rows[2]["DSP Blocks"] == 9 and rows[2]["FFs"] == 3812
    assert rows[0]["URAM"] == 2


def test_utilization_post_synthesis_and_older_layout() -> None:
    """Post-synthesis rows carry a '*' ('CLB LUTs*'); reports before 2020 have no Prohibited column."""
    text = """
+----------------------------+-------+-------+-----------+-------+
|          Site Type         |  Used | Fixed | Available | Util% |
+----------------------------+-------+-------+-----------+-------+
| CLB LUTs*                  |   900 |     0 |   1303680 |  0.07 |
| CLB Registers              |  1200 |     0 |   2607360 |  0.05 |
+----------------------------+-------+-------+-----------+-------+
+-------------------+------+-------+-----------+-------+
|     Site Type     | Used | Fixed | Available | Util% |
+-------------------+------+-------+-----------+-------+
| Block RAM Tile    |    0 |     0 |      2016 |  0.00 |
| URAM              |    0 |     0 |       960 |  0.00 |
+-------------------+------+-------+-----------+-------+
"""
    assert parse_reports.parse_utilization(text) == {"lut": 900, "ff": 1200, "dsp": None, "bram": 0, "uram": 0}


def test_failing_timing_gives_fmax_below_target(reports: Path) -> None:
    path = reports / "timing_summary.rpt"
    text = path.read_text()
    text = text.replace("      0.512        0.000                      0", "     -0.250      -12.500                    140")
    text = text.replace("All user specified timing constraints are met.", "Timing constraints are not met.")
    path.write_text(text)
    s = parse_reports.summarize(reports)
    assert s["wns_ns"] == -0.25 and s["tns_ns"] == -12.5
    assert s["timing_met"] is False
    assert s["fmax_mhz"] == pytest.approx(1000 / 3.583, abs=1e-3)
    assert s["fmax_mhz"] < s["clock_target_mhz"]
    assert parse_reports.parse_timing_summary(text)["constraints_met"] is False


def test_no_timing_paths_gives_no_fmax(reports: Path) -> None:
    path = reports / "timing_summary.rpt"
    text = path.read_text().replace("      0.512        0.000 ", "        inf        0.000 ")
    path.write_text(text)
    s = parse_reports.summarize(reports)
    assert s["wns_ns"] is None and s["fmax_mhz"] is None and s["timing_met"] is None


def test_vectorless_only_and_extra_power_runs(reports: Path) -> None:
    """Without power_saif.rpt the vectorless report is the headline; power.tcl's power_<tag>.rpt
    files are added under their tag."""
    shutil.copy(reports / "power_saif.rpt", reports / "power_c0.3.rpt")
    (reports / "power_saif.rpt").unlink()
    s = parse_reports.summarize(reports)
    assert s["power_source"] == "vectorless"
    assert s["power_total_w"] == 3.456
    assert set(s["power"]) == {"vectorless", "c0.3"}
    assert s["power"]["c0.3"]["dynamic_w"] == 0.64
    assert s["reports"]["power_c0.3"].endswith("power_c0.3.rpt")
    assert s["missing"] == []


def test_missing_reports_are_listed(reports: Path) -> None:
    (reports / "utilization_hier.rpt").unlink()
    (reports / "power_vectorless.rpt").unlink()
    (reports / "power_saif.rpt").unlink()
    s = parse_reports.summarize(reports)
    assert s["missing"] == ["utilization_hier.rpt", "power_vectorless.rpt"]
    assert s["power_total_w"] is None and s["power_source"] is None and s["hierarchy"] == []
    assert s["lut"] == 52113


def test_cli_writes_summary_json_into_the_directory(reports: Path) -> None:
    """`python vivado/parse_reports.py build/vivado` writes build/vivado/summary.json (what reports/ reads)."""
    proc = subprocess.run([sys.executable, str(PARSER), str(reports)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    s = json.loads((reports / parse_reports.SUMMARY).read_text())
    assert s["lut"] == 52113 and s["power_source"] == "saif"
    out = reports.parent / "elsewhere.json"
    proc = subprocess.run([sys.executable, str(PARSER), str(reports), "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(out.read_text())["dsp"] == 144
    proc = subprocess.run([sys.executable, str(PARSER), str(reports), "-o", "-"], capture_output=True, text=True, timeout=60)
    assert json.loads(proc.stdout)["fmax_mhz"] == s["fmax_mhz"]


@pytest.mark.parametrize("make_dir", [True, False])
def test_cli_fails_without_reports(tmp_path: Path, make_dir: bool) -> None:
    d = tmp_path / "empty"
    if make_dir:
        d.mkdir()
    proc = subprocess.run([sys.executable, str(PARSER), str(d)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "error:" in proc.stderr
    assert not (d / "summary.json").exists()


def test_report_names_match_build_tcl() -> None:
    build = (VIVADO_DIR / "build.tcl").read_text()
    for name in parse_reports.REPORT_FILES.values():
        assert name in build, f"build.tcl does not write {name}"
    assert parse_reports.RUN_INFO in build
