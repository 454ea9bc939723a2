"""The committed Verilog is what the Amaranth sources generate, lints clean, has the contract's ports
(rtl/README.md) and contains every signal the energy proxy probes."""
from __future__ import annotations

import re

import pytest

from model.hw import spec
from rtl.conv2d import VelcroConv2d
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
assert spec.INSTANCES == 16 and spec.CORE_ADDR_WIDTH == 13 and spec.TOP_ADDR_WIDTH == 17  # the tables above


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


@pytest.mark.parametrize("module", sorted(set(designs()) - {"velcro_top"}))
def test_verilator_lint_clean(module):
    check_lint_clean(module)


def test_verilator_lint_clean_top():
    """velcro_top is 16 velcro_conv2d and the bridge: 15 s of Verilator, so in the slow tier."""
    check_lint_clean("velcro_top")


def check_lint_clean(module):
    result = lint(module)
    assert result.returncode == 0 and "%Warning" not in result.stderr, (
        f"Verilator -Wall findings beyond the waivers {WAIVERS}:\n{result.stderr}"
    )


def verilog_modules(text: str) -> dict[str, str]:
    """Module name (escaped names without the backslash) -> body, of a Yosys-written Verilog file."""
    return {name: body for name, body in re.findall(r"^module \\?(\S+?)\s*\((.*?)^endmodule", text, re.M | re.S)}


def find_signal(modules: dict[str, str], module: str, path: str) -> bool:
    """Whether `path` (instance names, then a signal: 'mac.in_valid') exists under `module`."""
    *scopes, name = path.split(".")
    for scope in scopes:
        found = re.search(rf"^  \\?(\S+)\s+{re.escape(scope)}\s*\(", modules[module], re.M)
        if found is None:
            return False
        module = found.group(1)
    return re.search(rf"^  (?:wire|reg|input|output)\s+(?:\[[^]]*\]\s+)?{re.escape(name)};", modules[module], re.M) is not None


def test_activity_probes_exist_in_verilog():
    """Every signal the energy proxy reads from the waveform (sim/harness/activity.py) is in the netlist."""
    modules = verilog_modules((GENERATED_DIR / "velcro_conv2d.v").read_text())
    probes = {path for enables in VelcroConv2d.ACTIVITY_PROBES.values() for path, _ in enables}
    missing = sorted(p for p in probes if not find_signal(modules, "velcro_conv2d", p))
    assert not missing, f"activity probes missing from rtl/generated/velcro_conv2d.v: {missing}"
    assert re.search(rf"^  \\?\S+\s+{VelcroConv2d.MAC_SCOPE}\s*\(", modules["velcro_conv2d"], re.M), "MAC scope"
    assert not find_signal(modules, "velcro_conv2d", "mac.no_such_signal"), "the lookup must be able to fail"
