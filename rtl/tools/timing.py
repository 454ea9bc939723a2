"""Open timing proxy: logic depth between registers on the Yosys-mapped netlist.

    python -m rtl.tools.timing [module ...] [--json out.json] [--no-cache]

prints, per design of `rtl.tools.generate.designs()`, the deepest register-to-register path in LUT
levels and in carry cells (counted separately), the three worst paths named by their end and start
registers, the longest carry chain, and the worst paths from or to the design's ports.

Method
------
* Netlist: the resource estimate's own Yosys run (rtl/tools/resources.py, `synth_xilinx -family
  xcup`) flattens the mapped design after `stat` and writes it with `write_json`
  (`resources.NETLIST_COMMANDS`), so the proxy costs no second synthesis; `analyse` walks that JSON
  in Python. The result is cached beside the estimate under the same content hash
  (build/resources/<module>-<sha256>.timing-v<ANALYSIS_VERSION>.json).
* Start points: the outputs of flip-flops and latches (FD*, LD*), RAMB18E2/RAMB36E2, URAM288,
  DSP48E2, SRL16E/SRLC32E, LUTRAMs (RAM32M, RAM64M, RAM32M16, RAM64M8, RAMxxX1D, ...) and black
  boxes, and the design's input ports. End points: their inputs except clock pins (D, CE, resets,
  write data/address/enable), and the output ports. DSP48E2 is always a boundary, even when Yosys left
  its A/B or P registers off; `dsp_unregistered` counts those, because a path through them is cut
  here but runs through the multiplier in Vivado.
* Weights: LUT1..LUT6, LUT6_2 and INV are one LUT level each; an asynchronous LUTRAM or SRL read
  (address -> data) is one LUT level too, the same LUT6 read as a table. CARRY4/CARRY8 are counted as
  carry cells, one per cell on the path however many of its bits the path runs along (bit i depends
  on S/DI of bits <= i and the carry-in only, so no false path crosses a cell backwards). MUXF7/8/9
  are counted but add no LUT level: each sits in the slice right after its LUTs and costs a fraction
  of a LUT level.
* Longest paths: a topological order of the combinational graph (Kahn's algorithm, iterative, so no
  recursion limit), then one longest-path pass per ranking with lexicographic weights packed into
  integers: LUT levels, then carry cells, then MUXF (the worst paths); carry cells first (the longest
  carry chain); and a pass from the input ports alone. A combinational loop raises
  `CombinationalLoop` naming its cells.
* Register-to-register paths start and end at registers or black boxes; a path from an input port or
  to an output port is a "port path", reported apart. The worst path per distinct end register (all
  bits of a register are one) is kept, `KEEP_PATHS` of them, for the budgets' exceptions.
* Black boxes: `velcro_top` and `velcro_krnl` instantiate `velcro_conv2d` by name; the Yosys run
  turns that module into a black box before `flatten`, so their analysis covers their own glue and
  starts/ends at the core's ports. The core's side of those ports is its own analysis's port paths:
  a whole path is the glue part plus the core part.
* Not seen: routing (often half of a path's delay), fan-out, placement, SLR crossings, clock skew,
  BRAM/DSP/URAM clock-to-out and setup times, MUXF and carry delays (only counted), and Vivado's own
  re-mapping. Vivado's timing report is the authority; this is a depth budget to catch regressions.
"""
from __future__ import annotations

import gzip
import json
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from rtl.tools import resources

ANALYSIS_VERSION = 2  # bump when what `analyse` returns changes: it is part of the cache name
KEEP_PATHS = 25  # distinct end registers kept per design (rtl/tools/budgets.py applies exceptions to them)
SHOWN_PATHS = 3
RULE_OF_THUMB = ("Rule of thumb: UltraScale+ -2 at 300 MHz (3.33 ns) fits about 6-7 LUT levels plus routing; "
                 "a long CARRY8 chain costs less per cell than a LUT level.")

LUT_CELLS = frozenset(resources.LOGIC_LUTS)
SRL_CELLS = frozenset(resources.SRL_LUTS)
READABLE_MEMORIES = frozenset(resources.LUTRAM_LUTS) | SRL_CELLS  # asynchronous read: address -> data
REGISTER_CELLS = frozenset(resources.FF_CELLS) | SRL_CELLS  # one Q output: named after its net
PRIMITIVE_BOUNDARIES = (frozenset(resources.FF_CELLS) | frozenset(resources.BRAM36_PER_CELL)
                        | frozenset(resources.URAM_CELLS) | frozenset(resources.DSP_CELLS) | READABLE_MEMORIES)
IGNORED_CELLS = frozenset({"GND", "VCC", "$scopeinfo"})  # constants and flatten's hierarchy records
CLOCK_PINS = frozenset({"CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK"})  # flip-flops: C, latches: G (a DSP's C is data)

# Lexicographic rankings, packed into one integer per arrival: 20 bits per count.
LUT_FIRST = ("lut_levels", "carry", "muxf")
CARRY_FIRST = ("carry", "lut_levels", "muxf")
_FIELD = 20
_KIND_FIELD = {"lut": "lut_levels", "carry": "carry", "muxf": "muxf"}


class CombinationalLoop(ValueError):
    """The netlist has a combinational cycle: it has no longest path."""


class _Graph:
    """Combinational arcs between net bits (and virtual carry nodes), with the start and end points.

    A point is (kind, owner, pin): kind "reg" (a primitive boundary), "box" (a black box) or "port";
    owner is the cell name or the port name; pin is the pin with its bit index (for ports: "[i]").
    """

    def __init__(self):
        self.fanout: dict[int, list[tuple[int, str | None, str]]] = defaultdict(list)
        self.starts: dict[int, tuple[str, str, str]] = {}
        self.ends: list[tuple[int, tuple[str, str, str]]] = []
        self.types: dict[str, str] = {}
        self.black_boxes: Counter = Counter()
        self.dsp_unregistered = 0
        self._virtual = 0

    def virtual(self) -> int:
        """A node that is no net (net bits are non-negative integers)."""
        self._virtual -= 1
        return self._virtual

    def connect(self, sources, targets, kind: str | None, cell: str) -> None:
        for source in sources:
            if isinstance(source, int):
                self.fanout[source].extend((t, kind, cell) for t in targets if isinstance(t, int))


def _index(i: int, width: int) -> str:
    return f"[{i}]" if width > 1 else ""


def _strip_index(label: str) -> str:
    return re.sub(r"\[\d+\]$", "", label)


def _bits_by_pin(pins: dict[str, list]) -> list[tuple[str, object]]:
    return [(pin + _index(i, len(bits)), bit) for pin, bits in pins.items() for i, bit in enumerate(bits)]


def _cell_pins(name: str, cell: dict) -> tuple[dict[str, list], dict[str, list]]:
    """(inputs, outputs): pin -> bits, from the cell's `port_directions` (write_json gives them for
    every cell whose type Yosys knows: library primitives and modules of the design)."""
    directions = cell.get("port_directions")
    if directions is None:
        raise ValueError(f"cell {name} of type {cell['type']} has no port_directions in the netlist")
    ins = {p: b for p, b in cell["connections"].items() if directions.get(p) in ("input", "inout")}
    outs = {p: b for p, b in cell["connections"].items() if directions.get(p) in ("output", "inout")}
    return ins, outs


def _base_type(cell_type: str) -> str:
    """RAM32M16 from `$paramod$<hash>\\RAM32M16`, as Yosys names parametrised library cells."""
    return cell_type.rsplit("\\", 1)[-1] if cell_type.startswith("$paramod") else cell_type


def _read_addresses(out_pin: str, in_pins) -> list[str]:
    """The address pins that select `out_pin` combinationally in a LUTRAM or SRL."""
    if out_pin.startswith("DO"):  # RAM32M, RAM64M, RAM32M16, RAM64M8, RAM32X16DR8: DOx <- ADDRx
        return [f"ADDR{out_pin[2:]}"]
    if out_pin == "DPO":  # RAMxxX1D, second (read-only) port
        return [p for p in in_pins if p.startswith("DPRA")]
    if out_pin in ("SPO", "O", "Q"):  # RAMxxX1D first port, RAMxxX1S, RAM64X8SW, SRL16E, SRLC32E
        return [p for p in in_pins if re.fullmatch(r"A\d*", p)]
    return []  # SRLC32E Q31: the last stage, a register


def _sampled_inputs(cell_type: str, in_pins) -> list[str]:
    """Inputs sampled at a clock edge: all but clocks and read-only addresses (a LUTRAM's write
    address is its last ADDRx, or A on RAMxxX1D/X1S; an SRL's A only reads)."""
    addresses = sorted(p for p in in_pins if p.startswith("ADDR"))
    read_only = set(addresses[:-1]) | {p for p in in_pins if p.startswith("DPRA")}
    if cell_type in SRL_CELLS:
        read_only |= {p for p in in_pins if re.fullmatch(r"A\d*", p)}
    clocks = {"FD": {"C"}, "LD": {"G"}}.get(cell_type[:2], CLOCK_PINS)
    return [p for p in in_pins if p not in read_only and p not in clocks]


def _param(cell: dict, name: str) -> int:
    value = cell.get("parameters", {}).get(name, 0)
    return int(value, 2) if isinstance(value, str) else int(value)


def _add_carry(graph: _Graph, name: str, ins: dict, outs: dict) -> None:
    """Per-bit arcs through a CARRY4/CARRY8 via virtual carry nodes: entering the cell counts one
    carry cell, moving along it inside costs nothing."""
    carry_in = graph.virtual()
    graph.connect([*ins.get("CI", []), *ins.get("CYINIT", [])], [carry_in], "carry", name)
    for i in range(len(outs["CO"])):
        if i == 4 and "CI_TOP" in ins:  # CARRY8's upper half: carried on, or a chain of its own from CI_TOP
            upper_in = graph.virtual()
            graph.connect([carry_in], [upper_in], None, name)
            graph.connect(ins["CI_TOP"], [upper_in], "carry", name)
            carry_in = upper_in
        carry_out = graph.virtual()
        graph.connect([carry_in], [carry_out, outs["O"][i]], None, name)
        graph.connect([ins["S"][i]], [carry_out, outs["O"][i]], "carry", name)
        graph.connect([ins["DI"][i]], [carry_out], "carry", name)
        graph.connect([carry_out], [outs["CO"][i]], None, name)
        carry_in = carry_out


def _add_boundary(graph: _Graph, name: str, cell_type: str, cell: dict, ins: dict, outs: dict) -> None:
    """A sequential cell or black box: sampled inputs end paths, outputs start them; a LUTRAM/SRL
    also passes its read address to its data output as one LUT level."""
    kind = "reg" if cell_type in PRIMITIVE_BOUNDARIES else "box"
    if kind == "box":
        graph.black_boxes[cell_type] += 1
    if cell_type in resources.DSP_CELLS and (_param(cell, "PREG") == 0
                                             or _param(cell, "AREG") == _param(cell, "BREG") == 0):
        graph.dsp_unregistered += 1
    sampled = set(_sampled_inputs(cell_type, ins)) if kind == "reg" else set(ins)
    for pin, bit in _bits_by_pin({p: b for p, b in ins.items() if p in sampled}):
        if isinstance(bit, int):
            graph.ends.append((bit, (kind, name, pin)))
    for pin, bit in _bits_by_pin(outs):
        if isinstance(bit, int):
            graph.starts[bit] = (kind, name, pin)
    if cell_type in READABLE_MEMORIES:
        for pin, bits in outs.items():
            for address in _read_addresses(pin, ins):
                graph.connect(ins.get(address, []), bits, "lut", name)


def _add_cell(graph: _Graph, name: str, cell: dict) -> None:
    cell_type = _base_type(cell["type"])
    if cell_type in IGNORED_CELLS:
        return
    graph.types[name] = cell_type
    ins, outs = _cell_pins(name, cell)
    if cell_type in LUT_CELLS or cell_type in resources.MUXF_CELLS:
        kind = "lut" if cell_type in LUT_CELLS else "muxf"
        for bits in ins.values():
            graph.connect(bits, [b for out in outs.values() for b in out], kind, name)
    elif cell_type in resources.CARRY_CELLS:
        _add_carry(graph, name, ins, outs)
    else:
        _add_boundary(graph, name, cell_type, cell, ins, outs)


def build_graph(module: dict) -> _Graph:
    """The combinational graph of one flat module of a `write_json` netlist."""
    graph = _Graph()
    for port, info in module.get("ports", {}).items():
        width = len(info["bits"])
        for i, bit in enumerate(info["bits"]):
            if not isinstance(bit, int):
                continue
            point = ("port", port, _index(i, width))
            if info["direction"] in ("input", "inout"):
                graph.starts[bit] = point
            if info["direction"] in ("output", "inout"):
                graph.ends.append((bit, point))
    for name, cell in module.get("cells", {}).items():
        _add_cell(graph, name, cell)
    return graph


def topological_order(graph: _Graph) -> list[int]:
    """Nodes of the combinational graph in topological order (Kahn); raises CombinationalLoop."""
    indegree: Counter = Counter()
    for arcs in graph.fanout.values():
        for target, _, _ in arcs:
            indegree[target] += 1
    ready = [node for node in graph.fanout if indegree[node] == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for target, _, _ in graph.fanout.get(node, ()):
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    stuck = {node for node, count in indegree.items() if count > 0}
    if stuck:
        raise CombinationalLoop(_describe_loop(graph, stuck))
    return order


def _describe_loop(graph: _Graph, stuck: set[int]) -> str:
    """Follow predecessors inside the unsorted nodes until one repeats: that is a cycle."""
    back = {}
    for node in stuck:
        for target, _, cell in graph.fanout.get(node, ()):
            if target in stuck:
                back[target] = (node, cell)
    walk, seen, node = [], {}, min(stuck)
    while node not in seen:
        seen[node] = len(walk)
        node, cell = back[node]
        walk.append(cell)
    cells = list(dict.fromkeys(reversed(walk[seen[node]:])))
    shown = " -> ".join(f"{c} ({graph.types[c]})" for c in cells[:12]) + (" -> ..." if len(cells) > 12 else "")
    return f"combinational loop through {len(cells)} cell(s): {shown}"


def _weights(ranking: tuple[str, ...]) -> dict[str | None, int]:
    shift = {field: _FIELD * (len(ranking) - 1 - i) for i, field in enumerate(ranking)}
    return {None: 0, **{kind: 1 << shift[field] for kind, field in _KIND_FIELD.items()}}


def _decode(value: int, ranking: tuple[str, ...]) -> dict[str, int]:
    mask = (1 << _FIELD) - 1
    return {field: (value >> (_FIELD * (len(ranking) - 1 - i))) & mask for i, field in enumerate(ranking)}


def longest_paths(graph: _Graph, order: list[int], starts, ranking=LUT_FIRST):
    """Arrival (packed weights) and predecessor (node, cell) of every node reachable from `starts`."""
    weight = _weights(ranking)
    arrival = {node: 0 for node in starts}
    pred: dict[int, tuple[int, str]] = {}
    for node in order:
        here = arrival.get(node)
        if here is None:
            continue
        for target, kind, cell in graph.fanout.get(node, ()):
            value = here + weight[kind]
            if value > arrival.get(target, -1):
                arrival[target] = value
                pred[target] = (node, cell)
    return arrival, pred


class _Names:
    """Readable names: a bit's public net name; a register's is the net its Q drives."""

    def __init__(self, module: dict, graph: _Graph):
        self.cells, self.graph = module.get("cells", {}), graph
        self.bits: dict[int, str] = {}
        self._owners: dict[str, str] = {}
        for name, net in module.get("netnames", {}).items():
            if net.get("hide_name"):
                continue
            for i, bit in enumerate(net["bits"]):
                label = name + _index(i, len(net["bits"]))
                if isinstance(bit, int) and (bit not in self.bits or _rank(label) < _rank(self.bits[bit])):
                    self.bits[bit] = label

    def owner(self, point: tuple[str, str, str]) -> str:
        kind, owner, pin = point
        if kind == "port":
            return owner + pin
        if owner not in self._owners:
            self._owners[owner] = self._cell_name(owner)
        return self._owners[owner]

    def _cell_name(self, owner: str) -> str:
        cell = self.cells[owner]
        if self.graph.types[owner] in REGISTER_CELLS:
            return self.bits.get(cell["connections"]["Q"][0], owner)
        if not cell.get("hide_name"):
            return owner
        _, outs = _cell_pins(owner, cell)
        named = [self.bits[b] for bits in outs.values() for b in bits if b in self.bits]
        return _strip_index(named[0]) if named else owner

    def describe(self, point: tuple[str, str, str]) -> dict[str, str]:
        """Name (without Yosys's escape of names that start with `$`), pin and type of a point."""
        kind, owner, pin = point
        name = self.owner(point).removeprefix("\\")
        if kind == "port":
            return {"name": name, "pin": "", "type": "port"}
        cell_type = self.graph.types[owner]
        return {"name": name, "pin": "" if cell_type in REGISTER_CELLS and pin == "Q" else pin, "type": cell_type}


def _rank(label: str) -> tuple:
    return ("$" in label, len(label), label)


def _dedupe_key(names: _Names, point) -> str:
    """One entry per register (all its bits and pins), per top port, and per port of a black box or
    memory (the slices `mem.0.0`, `mem.0.1`, ... of one memory are one)."""
    kind, owner, pin = point
    if kind == "port" or names.graph.types[owner] in REGISTER_CELLS:
        return _strip_index(names.owner(point))
    memory = re.sub(r"(\.\d+)+$", "", names.owner(point))
    return f"{memory}.{_strip_index(pin)}"


def _through(graph: _Graph, cells: list[str]) -> str:
    """`LUT6 x2 > CARRY8 x3 > LUT3`: the cell types along a path, repeats counted."""
    runs: list[list] = []
    for cell in dict.fromkeys(cells):
        cell_type = graph.types[cell]
        if runs and runs[-1][0] == cell_type:
            runs[-1][1] += 1
        else:
            runs.append([cell_type, 1])
    return " > ".join(t if n == 1 else f"{t} x{n}" for t, n in runs)


def _path(graph: _Graph, names: _Names, starts, pred, end, value: int, ranking) -> dict:
    node, cells = end[0], []
    while node in pred:
        node, cell = pred[node]
        cells.append(cell)
    cells.reverse()
    start, finish = names.describe(starts[node]), names.describe(end[1])
    return {**_decode(value, ranking), "end": finish["name"], "end_pin": finish["pin"],
            "end_type": finish["type"], "start": start["name"], "start_pin": start["pin"],
            "start_type": start["type"], "through": _through(graph, cells)}


def worst_paths(graph: _Graph, names: _Names, starts, found, ranking, keep: int, ends) -> list[dict]:
    """The worst path into each distinct end point of `ends`, worst first, at most `keep`."""
    arrival, pred = found
    best: dict[str, tuple] = {}
    for end in ends:
        value = arrival.get(end[0])
        if value is None:
            continue
        key = _dedupe_key(names, end[1])
        if key not in best or value > best[key][0]:
            best[key] = (value, key, end)
    ranked = sorted(best.values(), key=lambda entry: (-entry[0], entry[1]))
    return [_path(graph, names, starts, pred, end, value, ranking) for value, _, end in ranked[:keep]]


def analyse(netlist: dict, top: str) -> dict:
    """Logic depth of module `top` of a flat `write_json` netlist (see the module docstring).

    Keys: top, cells, black_boxes {type: count}, dsp_unregistered, reg_to_reg {lut_levels, carry,
    muxf, paths (worst first, one per end register, at most KEEP_PATHS), truncated},
    longest_carry_chain (a path or None), port_paths (the SHOWN_PATHS worst from or to a port).
    A path: lut_levels, carry, muxf, end, end_pin, end_type, start, start_pin, start_type, through.
    """
    module = netlist["modules"][top]
    graph = build_graph(module)
    order = topological_order(graph)
    names = _Names(module, graph)
    reg_starts = {n: p for n, p in graph.starts.items() if p[0] != "port"}
    port_starts = {n: p for n, p in graph.starts.items() if p[0] == "port"}
    reg_ends = [e for e in graph.ends if e[1][0] != "port"]
    port_ends = [e for e in graph.ends if e[1][0] == "port"]
    by_lut = longest_paths(graph, order, reg_starts, LUT_FIRST)
    paths = worst_paths(graph, names, reg_starts, by_lut, LUT_FIRST, KEEP_PATHS + 1, reg_ends)
    carry = worst_paths(graph, names, reg_starts, longest_paths(graph, order, reg_starts, CARRY_FIRST),
                        CARRY_FIRST, 1, reg_ends)
    from_ports = longest_paths(graph, order, port_starts, LUT_FIRST)
    port_paths = (worst_paths(graph, names, reg_starts, by_lut, LUT_FIRST, SHOWN_PATHS, port_ends)
                  + worst_paths(graph, names, port_starts, from_ports, LUT_FIRST, SHOWN_PATHS, graph.ends))
    port_paths.sort(key=lambda p: (-p["lut_levels"], -p["carry"], -p["muxf"], p["end"]))
    worst = paths[0] if paths else {"lut_levels": 0, "carry": 0, "muxf": 0}
    return {
        "top": top,
        "cells": len(graph.types),
        "black_boxes": dict(sorted(graph.black_boxes.items())),
        "dsp_unregistered": graph.dsp_unregistered,
        "reg_to_reg": {**{k: worst[k] for k in LUT_FIRST}, "paths": paths[:KEEP_PATHS],
                       "truncated": len(paths) > KEEP_PATHS},
        "longest_carry_chain": carry[0] if carry else None,
        "port_paths": port_paths[:SHOWN_PATHS],
    }


def analyse_file(path: Path, top: str) -> dict:
    """`analyse` on a `write_json` file (gzipped if it ends in .gz), timed; a combinational loop
    becomes {"top", "error"} rather than an exception, so reports go on (budgets.check flags it)."""
    start = time.monotonic()
    raw = Path(path).read_bytes()
    netlist = json.loads(gzip.decompress(raw) if str(path).endswith(".gz") else raw)
    try:
        result = analyse(netlist, top)
    except CombinationalLoop as err:
        result = {"top": top, "error": str(err)}
    return {**result, "seconds": round(time.monotonic() - start, 1)}


def timing_of(estimate: dict, *, use_cache: bool = True) -> dict:
    """The timing proxy of a resource estimate (resources.estimate / estimate_rtlil) from its netlist;
    cached beside it under the same content hash, plus `ANALYSIS_VERSION`."""
    netlist = Path(estimate["netlist"])
    cache = netlist.with_name(f"{estimate['module']}-{estimate['sha256']}.timing-v{ANALYSIS_VERSION}.json")
    if use_cache and cache.exists():
        return json.loads(cache.read_text())
    if not netlist.exists():
        raise FileNotFoundError(f"{netlist} is missing: rerun the estimate with use_cache=False")
    result = analyse_file(netlist, estimate["module"])
    resources.write_atomic(cache, json.dumps(result, indent=1) + "\n")
    return result


def estimate_with_timing(module: str, *, use_cache: bool = True,
                         cache_dir: Path = resources.CACHE_DIR) -> tuple[dict, dict]:
    """(resource estimate, timing proxy) of a module of `rtl.tools.generate.designs()`; synthesises
    it unless an estimate with its netlist is cached."""
    estimate = resources.estimate(module, use_cache=use_cache, cache_dir=cache_dir)
    if not Path(estimate["netlist"]).exists():
        estimate = resources.estimate(module, use_cache=False, cache_dir=cache_dir)
    return estimate, timing_of(estimate, use_cache=use_cache)


def design_timing(module: str, *, use_cache: bool = True, cache_dir: Path = resources.CACHE_DIR) -> dict:
    """The timing proxy of a module of `rtl.tools.generate.designs()` (see `estimate_with_timing`)."""
    return estimate_with_timing(module, use_cache=use_cache, cache_dir=cache_dir)[1]


def _path_row(i: int, p: dict) -> str:
    end = f"{p['end']} ({p['end_pin']})" if p["end_pin"] else p["end"]
    start = f"{p['start']} ({p['start_pin']})" if p["start_pin"] else p["start"]
    return (f"| {i} | {p['lut_levels']} | {p['carry']} | {p['muxf']} | {p['end_type']} `{end}` "
            f"| {p['start_type']} `{start}` | {p['through'] or '-'} |")


def _path_table(paths: list[dict]) -> list[str]:
    return ["| # | LUT levels | carry | MUXF | end | start | through |", "|---:|---:|---:|---:|---|---|---|",
            *(_path_row(i, p) for i, p in enumerate(paths, 1))]


def markdown(result: dict) -> str:
    """One design's worst paths as markdown: headline, reg-to-reg table, carry chain, port paths."""
    top = result["top"]
    if "error" in result:
        return f"**{top}**: timing proxy failed: {result['error']}\n"
    reg = result["reg_to_reg"]
    lines = [f"**{top}**: worst register-to-register path {reg['lut_levels']} LUT levels "
             f"({reg['carry']} carry cells, {reg['muxf']} MUXF); {result['cells']:,} cells, "
             f"analysed in {result.get('seconds', 0)} s.", "", *_path_table(reg["paths"][:SHOWN_PATHS]), ""]
    chain = result["longest_carry_chain"]
    if chain:
        lines.append(f"Longest carry chain: {chain['carry']} carry cells ({chain['lut_levels']} LUT levels), "
                     f"`{chain['start']}` -> `{chain['end']}`.")
    if result["port_paths"]:
        lines += ["", "Port paths (from an input or to an output port; not register-to-register):", "",
                  *_path_table(result["port_paths"])]
    if result["black_boxes"]:
        boxes = ", ".join(f"{t} x {n}" for t, n in result["black_boxes"].items())
        lines += ["", f"Black boxes (their ports are path boundaries; each has its own analysis): {boxes}."]
    if result["dsp_unregistered"]:
        lines += ["", f"{result['dsp_unregistered']} DSP48E2 without A/B or P registers: cut here, "
                      "but a path through the multiplier in Vivado."]
    return "\n".join(lines) + "\n"


def report_markdown(results: list[dict]) -> str:
    """Every design's worst paths, then the rule of thumb that reads them (for the CLI and reports)."""
    return "\n".join(markdown(r) for r in results) + "\n" + RULE_OF_THUMB + "\n"


def main(argv: list[str] | None = None) -> None:
    args, names = resources.parse_module_arguments(__doc__.split("\n", 1)[0], argv)
    results = []
    for name in names:
        start = time.monotonic()
        results.append(design_timing(name, use_cache=not args.no_cache))
        print(f"[timing] {name}: {time.monotonic() - start:.1f} s", file=sys.stderr)
    print(report_markdown(results), end="")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
