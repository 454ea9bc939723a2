"""vivado/parse_reports.py on sample reports.

The samples in vivado/sample_reports/ are HAND-WRITTEN to the text format of Vivado 2023.2's
report_utilization, report_utilization -hierarchical, report_timing_summary (with its check_timing
section) and report_power;
they are not output of a Vivado run (none is available here) and their numbers are made up.
"""

from __future__ import annotations

import importlib.util
import json
import re
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
    assert saif["activity_file"] == "build/vivado/saif/velcro_top_c0.00.saif"
    assert (saif["nets_matched_pct"], saif["nets_matched"]) == (86.0, [120123, 139678])
    assert (vectorless["total_w"], vectorless["dynamic_w"], vectorless["confidence"]) == (3.456, 0.987, "Low")
    assert vectorless["activity_file"] is None and vectorless["nets_matched"] is None
    assert [(r["instance"], r["depth"]) for r in vectorless["by_hierarchy"]] == [
        ("velcro_top", 0), ("conv_0", 1), ("mac", 2), ("conv_1", 1)
    ]
    assert (s["saif"], s["saif_instance"]) == ("build/vivado/saif/velcro_top_c0.00.saif", "velcro_top")
    assert (s["io_delay_ns"], s["clk_src"], s["pblock"]) == (1.333, "BUFGCE_X0Y48", "SLR0")
    # every path timed: the check_timing counts of unconstrained endpoints and ports are all 0
    assert s["check_timing"]["no_input_delay"] == 0 and len(s["check_timing"]) == 12
    assert s["unconstrained_endpoints"] == 0
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


def test_unconstrained_endpoints_are_counted(reports: Path, capsys) -> None:
    """check_timing counts of untimed endpoints and ports add up to unconstrained_endpoints, and the
    CLI warns: WNS and Fmax leave those paths out."""
    path = reports / "timing_summary.rpt"
    text = path.read_text()
    for old, new in (("5. checking no_input_delay (0)", "5. checking no_input_delay (1149)"),
                     ("6. checking no_output_delay (0)", "6. checking no_output_delay (1174)"),
                     ("4. checking unconstrained_internal_endpoints (0)", "4. checking unconstrained_internal_endpoints (7)"),
                     ("9. checking loops (0)", "9. checking loops (2)")):  # not an unconstrained count
        assert text.count(old) == 2  # table of contents and section title
        text = text.replace(old, new)
    path.write_text(text)
    s = parse_reports.summarize(reports)
    assert s["check_timing"]["no_input_delay"] == 1149 and s["check_timing"]["loops"] == 2
    assert s["unconstrained_endpoints"] == 1149 + 1174 + 7
    assert parse_reports.main([str(reports), "-o", str(reports / "s.json")]) == 0
    err = capsys.readouterr().err
    assert "warning: 2330 unconstrained endpoints or ports" in err and "no_input_delay 1149" in err


def test_no_check_timing_section_gives_no_count(reports: Path) -> None:
    path = reports / "timing_summary.rpt"
    path.write_text(re.sub(r"check_timing report.*?(?=-{20,}\n\| Design Timing Summary)", "", path.read_text(), flags=re.S))
    s = parse_reports.summarize(reports)
    assert s["check_timing"] is None and s["unconstrained_endpoints"] is None
    assert s["wns_ns"] == 0.512


@pytest.mark.parametrize(
    ("matched_line", "minimum", "names", "problem"),
    [
        ("| Design Nets Matched      | 86% (120123/139678) |", 80, None, None),
        ("| Design Nets Matched      | 86% (120123/139678) |", 90, None, "Design Nets Matched 86 % (120123/139678) is below 90 %"),
        ("| Design Nets Matched      | 12%   (16761/139678)  |", 80, ["saif"], "Design Nets Matched 12 %"),
        ("| Design Nets Matched      | NA           |", 80, None, None),  # no activity file: not checked ...
        ("| Design Nets Matched      | NA           |", 80, ["saif"], "no \"Design Nets Matched\" figure"),  # ... unless named
        ("| Design Nets Matched      | 86% (120123/139678) |", 80, ["c0.3"], "power report 'c0.3' missing"),
    ],
)
def test_nets_matched_threshold(reports: Path, matched_line: str, minimum: float, names: list[str] | None, problem: str | None) -> None:
    path = reports / "power_saif.rpt"
    text = re.sub(r"^\| Design Nets Matched .*$", matched_line, path.read_text(), flags=re.M)
    if "NA" in matched_line:
        text = text.replace("build/vivado/saif/velcro_top_c0.00.saif", "---")
    path.write_text(text)
    problems = parse_reports.check_nets_matched(parse_reports.summarize(reports), minimum, names)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize(("args", "status"), [([], 0), (["--min-nets-matched", "80"], 0), (["--min-nets-matched", "86.1"], 1),
                                              (["--min-nets-matched", "80", "--power", "saif", "--power", "c0.3"], 1)])
def test_cli_nets_matched_exit_status(reports: Path, args: list[str], status: int) -> None:
    """The exit status make vivado / make vivado-power rely on; summary.json is written either way."""
    proc = subprocess.run([sys.executable, str(PARSER), str(reports), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == status, proc.stderr
    assert ("error: power report" in proc.stderr) == bool(status)
    assert json.loads((reports / parse_reports.SUMMARY).read_text())["power"]["saif"]["nets_matched_pct"] == 86.0


def test_parser_reads_vivado_nets_matched_spacing() -> None:
    """report_power pads the figure; the percentage may carry decimals."""
    for cell, pct, pair in (("86% (120123/139678)", 86.0, [120123, 139678]), ("99.87%  (1/2)", 99.87, [1, 2])):
        text = f"+---+---+\n| Total On-Chip Power (W)  | 3.1 |\n| Design Nets Matched      | {cell} |\n+---+---+\n"
        power = parse_reports.parse_power(text)
        assert (power["nets_matched_pct"], power["nets_matched"]) == (pct, pair)


def test_make_passes_the_threshold_to_the_parser() -> None:
    """The Makefile's vivado and vivado-power recipes run the parser with the nets-matched check."""
    makefile = (REPO / "Makefile").read_text()
    section = makefile[makefile.index("VIVADO ?= vivado"):]
    assert "VELCRO_MIN_NETS_MATCHED ?= 80" in section
    assert "--min-nets-matched $(VELCRO_MIN_NETS_MATCHED) --power saif" in section
    assert "--min-nets-matched $(VELCRO_MIN_NETS_MATCHED) --power '$(VIVADO_POWER_TAG)'" in section
