"""The committed velcro_krnl Verilog has exactly the ports of the Alveo kernel contract (DESIGN §9,
rtl/README.md section 9): ap_clk, ap_rst_n, the AXI4-Lite control slave, the AXI4 memory master with
1-bit IDs, and interrupt."""
from __future__ import annotations

from model.hw import spec
from rtl.tools.generate import GENERATED_DIR
from tests.rtl.test_generated_verilog import top_module_ports

CONTROL = {
    "awaddr": ("input", 12), "awvalid": ("input", 1), "awready": ("output", 1),
    "wdata": ("input", 32), "wstrb": ("input", 4), "wvalid": ("input", 1), "wready": ("output", 1),
    "bresp": ("output", 2), "bvalid": ("output", 1), "bready": ("input", 1),
    "araddr": ("input", 12), "arvalid": ("input", 1), "arready": ("output", 1),
    "rdata": ("output", 32), "rresp": ("output", 2), "rvalid": ("output", 1), "rready": ("input", 1),
}  # fmt: skip
GMEM = {
    "awid": ("output", 1), "awaddr": ("output", 64), "awlen": ("output", 8), "awsize": ("output", 3),
    "awburst": ("output", 2), "awvalid": ("output", 1), "awready": ("input", 1),
    "wdata": ("output", 64), "wstrb": ("output", 8), "wlast": ("output", 1), "wvalid": ("output", 1),
    "wready": ("input", 1),
    "bid": ("input", 1), "bresp": ("input", 2), "bvalid": ("input", 1), "bready": ("output", 1),
    "arid": ("output", 1), "araddr": ("output", 64), "arlen": ("output", 8), "arsize": ("output", 3),
    "arburst": ("output", 2), "arvalid": ("output", 1), "arready": ("input", 1),
    "rid": ("input", 1), "rdata": ("input", 64), "rresp": ("input", 2), "rlast": ("input", 1),
    "rvalid": ("input", 1), "rready": ("output", 1),
}  # fmt: skip
KRNL_PORTS = {
    "ap_clk": ("input", 1), "ap_rst_n": ("input", 1), "interrupt": ("output", 1),
    **{f"s_axi_control_{name}": port for name, port in CONTROL.items()},
    **{f"m_axi_gmem_{name}": port for name, port in GMEM.items()},
}  # fmt: skip
assert (spec.KERNEL_CONTROL_ADDR_WIDTH, spec.GMEM_ADDR_WIDTH, spec.GMEM_DATA_WIDTH) == (12, 64, 64)  # the tables


def test_krnl_ports_match_design():
    text = (GENERATED_DIR / f"{spec.KERNEL_NAME}.v").read_text()
    assert top_module_ports(text, spec.KERNEL_NAME) == KRNL_PORTS
