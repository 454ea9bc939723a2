"""The committed Verilog is what the Amaranth sources generate, lints clean and has DESIGN §4's ports."""
from __future__ import annotations

import re

import pytest

from rtl.tools.generate import GENERATED_DIR, designs, verilog_text
from rtl.tools.lint import WAIVERS, lint

CORE_PORTS = {
    "clk": ("input", 1), "rst": ("input", 1),
    "s_axis_tdata": ("input", 64), "s_axis_tvalid": ("input", 1), "s_axis_tready": ("output", 1),
    "s_axis_tlast": ("input", 1), "m_axis_tdata": ("output", 64), "m_axis_tvalid": ("output", 1),
    "m_axis_tready": ("input", 1), "m_axis_tlast": ("output", 1),
    "s_axil_awaddr": ("input", 13), "s_axil_awvalid": ("input", 1), "s_axil_awready": ("output", 1),
    "s_axil_wdata": ("input", 32), "s_axil_wstrb": ("input", 4), "s_axil_wvalid": ("input", 1),
    "s_axil_wready": ("output", 1), "s_axil_bresp": ("output", 2), "s_axil_bvalid": ("output", 1),
    "s_axil_bready": ("input", 1), "s_axil_araddr": ("input", 13), "s_axil_arvalid": ("input", 1),
    "s_axil_arready": ("output", 1), "s_axil_rdata": ("output", 32), "s_axil_rresp": ("output", 2),
    "s_axil_rvalid": ("output", 1), "s_axil_rready": ("input", 1),
}  # fmt: skip
# velcro_top: the 16 instances' streams concatenated, a 17-bit AXI4-Lite address.
TOP_PORTS = {
    **CORE_PORTS,
    **{name: (direction, 16 * width) for name, (direction, width) in CORE_PORTS.items() if "_axis_" in name},
    "s_axil_awaddr": ("input", 17), "s_axil_araddr": ("input", 17),
}  # fmt: skip


def top_module_ports(text: str, module: str) -> dict[str, tuple[str, int]]:
    header, body = text.split(f"module {module}(", 1)[1].split(");", 1)
    names = {n.strip() for n in header.split(",")}
    body = body.split("endmodule", 1)[0]
    ports = {}
    for direction, msb, name in re.findall(r"^  (input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", body, re.M):
        if name in names:
            ports[name] = (direction, int(msb) + 1 if msb else 1)
    assert set(ports) == names, f"undeclared ports: {names - set(ports)}"
    return ports


@pytest.mark.parametrize("module", sorted(designs()))
def test_committed_verilog_is_fresh(module):
    committed = (GENERATED_DIR / f"{module}.v").read_text()
    assert verilog_text(module) == committed, (
        f"rtl/generated/{module}.v is stale: run `make rtl` and commit the result"
    )


def test_conv2d_ports_match_design():
    text = (GENERATED_DIR / "velcro_conv2d.v").read_text()
    assert top_module_ports(text, "velcro_conv2d") == CORE_PORTS


def test_top_ports_match_design():
    text = (GENERATED_DIR / "velcro_top.v").read_text()
    assert top_module_ports(text, "velcro_top") == TOP_PORTS


@pytest.mark.parametrize("module", sorted(designs()))
def test_verilator_lint_clean(module):
    result = lint(module)
    assert result.returncode == 0 and "%Warning" not in result.stderr, (
        f"Verilator -Wall findings beyond the waivers {WAIVERS}:\n{result.stderr}"
    )
