#!/usr/bin/env python3
"""Turn the text reports of vivado/build.tcl into one JSON summary.

    python vivado/parse_reports.py build/vivado            # writes build/vivado/summary.json
    python vivado/parse_reports.py DIR -o summary.json     # or -o - for stdout

Reads, from DIR (VELCRO_OUT), the files build.tcl and power.tcl write:

- ``utilization.rpt`` (report_utilization of the routed design): LUT, FF, DSP, BRAM tiles, URAM;
- ``utilization_hier.rpt`` (report_utilization -hierarchical): per-instance rows;
- ``timing_summary.rpt`` (report_timing_summary -report_unconstrained): WNS/TNS/WHS/WPWS, the
  clk period, the Fmax estimate 1000 / (period - WNS) MHz (worst setup path, internal or I/O
  against the I/O budget of build.tcl), and the check_timing counts, whose unconstrained ones add
  up to ``unconstrained_endpoints`` (0 when every path is timed);
- ``power_vectorless.rpt``, ``power_saif.rpt``, ``power_<tag>.rpt`` (report_power): total,
  dynamic and static power, confidence level, activity file and matched nets ("Design Nets
  Matched");
- ``run_info.txt``: the settings build.tcl ran with (top, part, clock, I/O budget, clock source,
  pblock, SAIF).

``--min-nets-matched PCT`` makes the exit status 1 when a power report from a SAIF (every one, or
those named with ``--power``) matched fewer than PCT % of the design nets, or has no such line:
unmatched nets fall back to vectorless activity, so such a report is not activity-based power.

Only the Python standard library is used, so `make vivado` can run it without the project's
virtualenv. Missing reports give null fields and are listed under "missing"; the exit status is 1
when none of the reports is there.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

SCHEMA = "velcro-vivado-summary/1"

#: Report file names inside VELCRO_OUT, as build.tcl writes them (tests check the two agree).
REPORT_FILES = {
    "utilization": "utilization.rpt",
    "utilization_hier": "utilization_hier.rpt",
    "timing_summary": "timing_summary.rpt",
    "power_vectorless": "power_vectorless.rpt",
    "power_saif": "power_saif.rpt",
}
RUN_INFO = "run_info.txt"
SUMMARY = "summary.json"

#: check_timing items of report_timing_summary that count paths or ports left untimed.
UNCONSTRAINED_CHECKS = (
    "no_clock", "unconstrained_internal_endpoints", "no_input_delay", "no_output_delay",
    "partial_input_delay", "partial_output_delay",
)

#: summary key -> Site Type names in report_utilization (UltraScale+ first, 7-series after).
UTILIZATION_ROWS = {
    "lut": ("CLB LUTs", "Slice LUTs"),
    "ff": ("CLB Registers", "Slice Registers"),
    "dsp": ("DSPs",),
    "bram": ("Block RAM Tile",),
    "uram": ("URAM",),
}


# ------------------------------------------------------------------------------ helpers
def _number(text: str) -> float | int | None:
    """'1234' -> 1234, '8.5' -> 8.5, '<0.001' -> 0.001, 'inf'/'NA'/'---' -> None."""
    t = text.strip().rstrip("*").lstrip("<").replace(",", "").strip()
    try:
        value = float(t)
    except ValueError:
        return None
    if math.isinf(value) or math.isnan(value):
        return None
    if re.fullmatch(r"[-+]?\d+", t):
        return int(t)
    return value


def _cells(line: str) -> list[str]:
    """Raw cells of a '| a | b |' table row (whitespace kept, to read indentation)."""
    return line.strip()[1:-1].split("|")


def _tables(text: str) -> list[tuple[list[str] | None, list[list[str]]]]:
    """ASCII tables of a Vivado report as (header cells or None, rows of raw cells).

    A header is a row framed by '+---' lines above and below (``| Site Type | Used | ...``);
    summary tables such as report_power's have none.
    """
    tables: list[tuple[list[str] | None, list[list[str]]]] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        s = line.strip()
        if s.startswith("+") or (s.startswith("|") and s.endswith("|") and len(s) > 1):
            block.append(s)
            continue
        if block:
            header = None
            rows = [_cells(b) for b in block if b.startswith("|")]
            if len(block) >= 3 and block[0].startswith("+") and block[2].startswith("+") and block[1].startswith("|"):
                header = [c.strip() for c in _cells(block[1])]
                rows = rows[1:]
            tables.append((header, rows))
            block = []
    return tables


def report_header(text: str) -> dict[str, str]:
    """The '| Key : value' lines at the top of every Vivado report (Tool Version, Design, ...)."""
    header: dict[str, str] = {}
    for line in text.splitlines()[:40]:
        m = re.match(r"^\|\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$", line)
        if m:
            header.setdefault(m.group(1), m.group(2))
    return header


# ------------------------------------------------------------------------------ reports
def parse_utilization(text: str) -> dict[str, float | int | None]:
    """Used counts of LUT, FF, DSP, BRAM (36 Kb tiles, may be fractional) and URAM.

    The first table row with a matching Site Type wins: section 1-4 of the report, before the
    per-SLR tables that repeat the names with other columns.
    """
    result: dict[str, float | int | None] = {key: None for key in UTILIZATION_ROWS}
    for header, rows in _tables(text):
        if not header or "Site Type" not in header or "Used" not in header:
            continue
        used = header.index("Used")
        for row in rows:
            if len(row) <= used:
                continue
            name = row[0].strip().rstrip("*").strip()
            for key, names in UTILIZATION_ROWS.items():
                if result[key] is None and name in names:
                    result[key] = _number(row[used])
    return result


def parse_utilization_hier(text: str) -> list[dict[str, object]]:
    """Rows of 'Utilization by Hierarchy': instance, module, depth (0 = top) and every count."""
    for header, rows in _tables(text):
        if not header or "Instance" not in header or "Module" not in header:
            continue
        out = []
        for row in rows:
            if len(row) != len(header):
                continue
            raw = row[0][1:] if row[0].startswith(" ") else row[0]
            depth = (len(raw) - len(raw.lstrip(" "))) // 2
            entry: dict[str, object] = {"instance": raw.strip(), "module": row[1].strip(), "depth": depth}
            for name, cell in zip(header[2:], row[2:]):
                entry[name] = _number(cell)
            out.append(entry)
        return out
    return []


def parse_timing_summary(text: str) -> dict[str, object]:
    """Design Timing Summary (WNS, TNS, WHS, THS, WPWS, TPWS and endpoint counts) and clocks."""
    result: dict[str, object] = {"clocks": {}}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "WNS(ns)" in line and "TNS(ns)" in line:
            names = re.split(r"\s{2,}", line.strip())
            values = next((l.split() for l in lines[i + 2 : i + 6] if l.strip()), [])
            if len(values) == len(names):
                for name, value in zip(names, values):
                    key = name.replace("(ns)", "_ns").replace(" ", "_").lower()
                    result[key] = _number(value)
            break
    for i, line in enumerate(lines):
        if re.match(r"^Clock\s+Waveform\(ns\)\s+Period\(ns\)\s+Frequency\(MHz\)", line.strip()):
            for row in lines[i + 2 :]:
                m = re.match(r"^\s*(\S+)\s+\{([^}]*)\}\s+(\S+)\s+(\S+)", row)
                if not m:
                    break
                result["clocks"][m.group(1)] = {"period_ns": _number(m.group(3)), "frequency_mhz": _number(m.group(4))}
            break
    checks = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*\d+\.\s+checking\s+(\w+)\s+\((\d+)\)\s*$", text, re.M)}
    if checks:
        result["check_timing"] = checks
    if "All user specified timing constraints are met." in text:
        result["constraints_met"] = True
    elif "Timing constraints are not met." in text:
        result["constraints_met"] = False
    return result


def parse_power(text: str) -> dict[str, object]:
    """report_power summary table, plus the 'By Hierarchy' rows (dynamic power per instance)."""
    summary: dict[str, str] = {}
    hierarchy: list[dict[str, object]] = []
    for header, rows in _tables(text):
        if header is None and any(r[0].strip() == "Total On-Chip Power (W)" for r in rows if len(r) == 2):
            summary = {r[0].strip(): r[1].strip() for r in rows if len(r) == 2}
        elif header and header[:2] == ["Name", "Power (W)"]:
            for row in rows:
                if len(row) == 2:
                    raw = row[0][1:] if row[0].startswith(" ") else row[0]
                    depth = (len(raw) - len(raw.lstrip(" "))) // 2
                    hierarchy.append({"instance": raw.strip(), "depth": depth, "power_w": _number(row[1])})
    nets = summary.get("Design Nets Matched", "NA")
    m = re.match(r"^\s*([\d.]+)%\s*\((\d+)/(\d+)\)", nets)
    activity = summary.get("Simulation Activity File", "---")
    return {
        "total_w": _number(summary.get("Total On-Chip Power (W)", "")),
        "dynamic_w": _number(summary.get("Dynamic (W)", "")),
        "static_w": _number(summary.get("Device Static (W)", "")),
        "junction_temp_c": _number(summary.get("Junction Temperature (C)", "")),
        "confidence": summary.get("Confidence Level") or None,
        "activity_file": None if activity in ("", "---", "NA") else activity,
        "nets_matched_pct": float(m.group(1)) if m else None,
        "nets_matched": [int(m.group(2)), int(m.group(3))] if m else None,
        "by_hierarchy": hierarchy,
    }


def parse_run_info(text: str) -> dict[str, str]:
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip()] = value.strip()
    return info


# ------------------------------------------------------------------------------ summary
def summarize(directory: Path) -> dict[str, object]:
    """The summary.json content for one VELCRO_OUT directory."""
    directory = Path(directory)
    texts = {}
    for key, name in REPORT_FILES.items():
        path = directory / name
        if path.is_file():
            texts[key] = path.read_text(encoding="utf-8", errors="replace")
    extra_power = {
        p.stem[len("power_") :]: p
        for p in sorted(directory.glob("power_*.rpt"))
        if p.name not in (REPORT_FILES["power_vectorless"], REPORT_FILES["power_saif"])
    }
    info_path = directory / RUN_INFO
    info = parse_run_info(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}

    header = report_header(texts.get("utilization") or texts.get("timing_summary") or "")
    summary: dict[str, object] = {
        "schema": SCHEMA,
        "directory": str(directory),
        "top": info.get("top") or header.get("Design"),
        "part": info.get("part") or header.get("Device"),
        "tool_version": header.get("Tool Version"),
        "design_state": header.get("Design State"),
        "clock_target_mhz": _number(info["clock_mhz"]) if "clock_mhz" in info else None,
        "saif": info.get("saif") or None,
        "saif_instance": info.get("saif_instance") if info.get("saif") else None,
        "io_delay_ns": _number(info["io_delay_ns"]) if info.get("io_delay_ns") else None,
        "clk_src": info.get("clk_src") or None,
        "pblock": info.get("pblock") or None,
    }

    summary.update(parse_utilization(texts.get("utilization", "")))

    timing = parse_timing_summary(texts.get("timing_summary", ""))
    clocks = timing.get("clocks", {})
    clk = clocks.get("clk") or next(iter(clocks.values()), {})
    period = clk.get("period_ns")
    if period is None and info.get("period_ns"):
        period = _number(info["period_ns"])
    wns = timing.get("wns_ns")
    checks = [timing.get(k) for k in ("wns_ns", "whs_ns", "wpws_ns")]
    check_timing = timing.get("check_timing")
    summary.update(
        {
            "clock_period_ns": period,
            "wns_ns": wns,
            "tns_ns": timing.get("tns_ns"),
            "whs_ns": timing.get("whs_ns"),
            "wpws_ns": timing.get("wpws_ns"),
            "timing_met": None if any(v is None for v in checks) else all(v >= 0 for v in checks),
            "fmax_mhz": round(1000.0 / (period - wns), 3) if period and wns is not None and period - wns > 0 else None,
            "check_timing": check_timing,
            "unconstrained_endpoints": sum(check_timing.get(k, 0) for k in UNCONSTRAINED_CHECKS) if check_timing else None,
        }
    )
    if summary["clock_target_mhz"] is None and clk.get("frequency_mhz") is not None:
        summary["clock_target_mhz"] = clk["frequency_mhz"]

    power: dict[str, dict[str, object]] = {}
    if "power_vectorless" in texts:
        power["vectorless"] = parse_power(texts["power_vectorless"])
    if "power_saif" in texts:
        power["saif"] = parse_power(texts["power_saif"])
    for tag, path in extra_power.items():
        power[tag] = parse_power(path.read_text(encoding="utf-8", errors="replace"))
    main = "saif" if "saif" in power else ("vectorless" if "vectorless" in power else None)
    chosen = power.get(main, {}) if main else {}
    summary.update(
        {
            "power_source": main,
            "power_total_w": chosen.get("total_w"),
            "power_dynamic_w": chosen.get("dynamic_w"),
            "power_static_w": chosen.get("static_w"),
            "power_confidence": chosen.get("confidence"),
            "power": power,
            "hierarchy": parse_utilization_hier(texts.get("utilization_hier", "")),
            "reports": {key: str(directory / name) for key, name in REPORT_FILES.items() if key in texts}
            | {f"power_{tag}": str(path) for tag, path in extra_power.items()},
            "missing": [name for key, name in REPORT_FILES.items() if key not in texts and key != "power_saif"],
        }
    )
    return summary


def check_nets_matched(summary: dict[str, object], minimum: float, names: list[str] | None = None) -> list[str]:
    """Problems of the SAIF-based power reports (NAMES, or every one with an activity file) whose
    "Design Nets Matched" is below MINIMUM percent or missing."""
    power: dict[str, dict[str, object]] = summary.get("power") or {}  # type: ignore[assignment]
    selected = names if names else [k for k, v in power.items() if v.get("activity_file")]
    problems = []
    for name in selected:
        report = power.get(name)
        if report is None:
            problems.append(f"power report '{name}' missing (expected power_{name}.rpt)")
            continue
        pct = report.get("nets_matched_pct")
        if pct is None:
            problems.append(f"power report '{name}': no \"Design Nets Matched\" figure (was a SAIF read?)")
        elif pct < minimum:
            matched, total = report.get("nets_matched") or (None, None)
            problems.append(
                f"power report '{name}': Design Nets Matched {pct:g} % ({matched}/{total}) is below {minimum:g} %: "
                "the unmatched nets fall back to vectorless activity. Check VELCRO_SAIF_INSTANCE (read_saif "
                "-strip_path) and the saif_unmatched*.txt list next to the report"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="VELCRO_OUT of the Vivado run (e.g. build/vivado)")
    parser.add_argument("-o", "--output", help="output JSON (default DIRECTORY/summary.json; - for stdout)")
    parser.add_argument("--min-nets-matched", type=float, metavar="PCT",
                        help="fail when a SAIF power report matched fewer than PCT %% of the design nets")
    parser.add_argument("--power", action="append", metavar="NAME",
                        help="power report checked by --min-nets-matched (saif, or a power.tcl tag); repeatable")
    args = parser.parse_args(argv)
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a directory (run make vivado first)", file=sys.stderr)
        return 1
    summary = summarize(args.directory)
    if not summary["reports"]:
        print(f"error: no Vivado reports in {args.directory} (expected {', '.join(REPORT_FILES.values())})", file=sys.stderr)
        return 1
    text = json.dumps(summary, indent=2) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        output = Path(args.output) if args.output else args.directory / SUMMARY
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    for name in summary["missing"]:
        print(f"warning: {name} missing in {args.directory}", file=sys.stderr)
    if summary["unconstrained_endpoints"]:
        counts = ", ".join(f"{k} {v}" for k, v in summary["check_timing"].items() if k in UNCONSTRAINED_CHECKS and v)
        print(f"warning: {summary['unconstrained_endpoints']} unconstrained endpoints or ports ({counts}): "
              "WNS and Fmax leave them out", file=sys.stderr)
    if args.min_nets_matched is not None:
        problems = check_nets_matched(summary, args.min_nets_matched, args.power)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if problems:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
