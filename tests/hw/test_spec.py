"""model.hw.spec: the register map is consistent, its helpers answer as documented, and the register
table in rtl/README.md is exactly what the spec generates."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from model.hw import spec

README = Path(__file__).resolve().parents[2] / "rtl" / "README.md"


def readme_table() -> str:
    text = README.read_text()
    found = re.search(r"<!-- register-table:begin[^>]*-->\n(.*?)\n<!-- register-table:end -->", text, re.S)
    assert found, "rtl/README.md lost its register-table markers"
    return found.group(1)


def test_readme_register_table_is_generated_from_spec():
    assert readme_table() == spec.register_table(), (
        "rtl/README.md's register table differs from model/hw/spec.py: paste the output of "
        "`python -m model.hw.spec` between the register-table markers"
    )


def test_register_table_has_one_row_per_register():
    rows = spec.register_table().splitlines()[2:]
    assert [row.split(" | ")[1] for row in rows] == [f"{r.name}[i]" if r.count > 1 else r.name for r in spec.REGISTERS]


@pytest.mark.parametrize(
    "name, index, address",
    [("ID", 0, 0x00), ("GEOMETRY", 0, 0x04), ("CONTROL", 0, 0x08), ("STATUS", 0, 0x0C), ("FRAMES", 0, 0x10),
     ("LAST_CYCLES", 0, 0x14), ("LAST_MACS", 0, 0x18), ("LAST_COMPUTED", 0, 0x1C), ("W", 0, 0x20), ("W", 8, 0x40),
     ("BIAS", 0, 0x44), ("MULT", 0, 0x48), ("SHIFT", 0, 0x4C), ("ZP_CONFIG", 0, 0x50), ("LAST_PREDICTED", 0, 0x54),
     ("MASK", 0, 0x400), ("MASK", 127, 0x5FC),
     ("AVG", 0, 0x1000), ("AVG", 1023, 0x1FFC)],
)  # fmt: skip
def test_addr(name, index, address):
    assert spec.addr(name, index) == address


def test_addr_rejects_unknown_names_and_indices():
    with pytest.raises(KeyError, match="no register 'NOPE'"):
        spec.addr("NOPE")
    with pytest.raises(IndexError, match=r"W\[9\]"):
        spec.addr("W", 9)
    with pytest.raises(IndexError):
        spec.addr("BIAS", 1)


def test_top_addr():
    assert spec.top_addr(0, "ID") == 0
    assert spec.top_addr(3, "W", 4) == 3 * 0x2000 + 0x30
    assert spec.top_addr(15, "AVG", 1023) == (1 << spec.TOP_ADDR_WIDTH) - 4
    for bad in (-1, spec.INSTANCES):
        with pytest.raises(IndexError):
            spec.top_addr(bad, "ID")


def test_unmapped():
    for offset in (0x58, 0x5C, 0x3FC, 0x600, 0xFFC):
        assert spec.unmapped(offset), hex(offset)
    for offset in (0x00, 0x4C, 0x4F, 0x50, 0x57, 0x400, 0x5FC, 0x1000, 0x1FFF):  # bits [1:0] are ignored
        assert not spec.unmapped(offset), hex(offset)
    with pytest.raises(ValueError):
        spec.unmapped(1 << spec.CORE_ADDR_WIDTH)


def test_every_word_belongs_to_at_most_one_register():
    owners = {}
    for r in spec.REGISTERS:
        for i in range(r.count):
            assert r.addr(i) not in owners, f"{r.name}[{i}] overlaps {owners.get(r.addr(i))}"
            owners[r.addr(i)] = r.name
    for offset in range(0, 1 << spec.CORE_ADDR_WIDTH, 4):
        assert spec.unmapped(offset) == (offset not in owners)


def test_map_checks_catch_overlaps_and_bad_resets():
    spec._check_map(spec.REGISTERS, spec.CORE_ADDR_WIDTH)  # the shipped maps pass
    spec._check_map(spec.KERNEL_REGISTERS, spec.KERNEL_CONTROL_ADDR_WIDTH)
    overlapping = (*spec.REGISTERS, spec.Register("EXTRA", spec.addr("SHIFT"), "RW", 8, "clashes with SHIFT"))
    with pytest.raises(AssertionError, match="overlap"):
        spec._check_map(overlapping, spec.CORE_ADDR_WIDTH)
    too_wide = dataclasses.replace(spec.REG["SHIFT"], reset=1 << 5)
    with pytest.raises(AssertionError, match="does not fit"):
        spec._check_map(tuple(too_wide if r.name == "SHIFT" else r for r in spec.REGISTERS), spec.CORE_ADDR_WIDTH)
    outside = spec.Register("FAR", 1 << spec.KERNEL_CONTROL_ADDR_WIDTH, "RO", 1, "past the control space")
    with pytest.raises(AssertionError, match="outside"):
        spec._check_map((*spec.KERNEL_REGISTERS, outside), spec.KERNEL_CONTROL_ADDR_WIDTH)


def test_map_checks_catch_bad_field_values():
    zp = spec.REG["ZP_CONFIG"]
    bad = dataclasses.replace(zp, fields=(spec.Field("PATTERN", 0, 2, values=(1, 4)), zp.field("ZP_MAX")))
    with pytest.raises(AssertionError, match="values"):
        spec._check_map(tuple(bad if r.name == "ZP_CONFIG" else r for r in spec.REGISTERS), spec.CORE_ADDR_WIDTH)
    straddling = dataclasses.replace(zp, fields=(spec.Field("PATTERN", 6, 4),))
    with pytest.raises(AssertionError, match="straddles"):
        spec._check_map(tuple(straddling if r.name == "ZP_CONFIG" else r for r in spec.REGISTERS),
                        spec.CORE_ADDR_WIDTH)  # fmt: skip


def test_contract_constants_agree():
    assert spec.GEOMETRY_VALUE == 64 | 64 << 8 | 3 << 16 | 8 << 24
    assert spec.ID_VALUE.to_bytes(4, "big") == b"VELC"
    assert spec.INSTANCES * spec.INSTANCE_STRIDE == 1 << spec.TOP_ADDR_WIDTH
    assert spec.REG["MASK"].count * 32 == spec.REG["AVG"].count * 4 == spec.N_OUTPUTS
    assert spec.REG["W"].count == spec.TAPS == spec.MACS_PER_OUTPUT
    assert spec.REG["CONTROL"].reset == spec.REG["CONTROL"].field("SKIP_EN").reset == 1
    assert spec.REG["CONTROL"].field("ZP_EN").mask == 0b10 and spec.REG["CONTROL"].field("ZP_EN").reset == 0
    zp = spec.REG["ZP_CONFIG"]
    assert (zp.field("PATTERN").mask, zp.field("ZP_MAX").mask, zp.reset) == (0x3, 0xFF00, 0)
    assert zp.field("PATTERN").values == (spec.ZP_GRID2, spec.ZP_CHECKER) == (0, 1)
    assert spec.REG["LAST_PREDICTED"].access == "RO"
    assert [f.name for f in spec.REG["STATUS"].fields if f.w1c] == ["FRAME_ERROR"]
    assert spec.REG["STATUS"].field("FRAME_ERROR").mask == 0b10
    assert {r.name for r in spec.REGISTERS if r.is_memory} == {"MASK", "AVG"}
