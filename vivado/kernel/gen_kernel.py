#!/usr/bin/env python3
"""The Vitis files of kernel velcro_krnl, generated from the hardware contract (model/hw/spec.py).

    python3 vivado/kernel/gen_kernel.py kernel-xml --rtl rtl/generated/velcro_krnl.v -o build/vitis/kernel.xml
    python3 vivado/kernel/gen_kernel.py link-cfg [--platform P] [--clock-mhz 300] -o build/vitis/link.cfg

`make xo` writes kernel.xml, the kernel description `package_xo -kernel_xml` puts into the .xo:
the name, the ap_ctrl_hs protocol, the two bus interfaces and the arguments of
`spec.KERNEL_ARGS` with their register offsets and sizes. vivado/kernel/package_xo.tcl reads the
same file for the IP's register map, so the .xo carries one description. The kernel's ports are
read from the Verilog module header and checked against DESIGN section 9 first, and `interrupt`
in kernel.xml says whether the module has that (optional) port.

`make xclbin` writes link.cfg, the `v++ --link --config` file for the U280: the platform, the
kernel clock, `spec.INSTANCES` compute units (v++ names them velcro_krnl_1 ... velcro_krnl_16, the
names the host opens), each with its own HBM pseudo-channels and an SLR.

Standard library only (model.hw.spec imports nothing else), so any python3 runs it.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: model.hw.spec

from model.hw import spec  # noqa: E402

# Bus interface names of a Vitis RTL kernel (UG1393; DESIGN section 9): the control slave, one
# AXI4 master, clock, active-low reset, optional level interrupt.
CONTROL = "s_axi_control"
GMEM = "m_axi_gmem"
CLOCK = "ap_clk"
RESET = "ap_rst_n"
INTERRUPT = "interrupt"
# VLNV of the packaged IP; kernel.xml must name the same one (package_xo.tcl takes it from there).
VLNV = f"velcro:RTLKernel:{spec.KERNEL_NAME}:1.0"

# The U280 platforms: 32 HBM pseudo-channels of 256 MB (HBM[0] ... HBM[31]) and three SLRs. The
# HBM stacks sit at the bottom of SLR0, so SLR0 takes the odd compute unit out.
PLATFORM = "xilinx_u280_gen3x16_xdma_1_202211_1"
HBM_CHANNELS = 32
SLRS = ("SLR0", "SLR1", "SLR2")


@dataclass(frozen=True)
class Port:
    direction: str  # "input" or "output", seen from the kernel
    width: int


def _axi_lite(addr_w: int, data_w: int) -> dict[str, Port]:
    """An AXI4-Lite slave's signals (DESIGN section 4's suffixes)."""
    i, o = "input", "output"
    return {
        "awaddr": Port(i, addr_w), "awvalid": Port(i, 1), "awready": Port(o, 1),
        "wdata": Port(i, data_w), "wstrb": Port(i, data_w // 8), "wvalid": Port(i, 1), "wready": Port(o, 1),
        "bresp": Port(o, 2), "bvalid": Port(o, 1), "bready": Port(i, 1),
        "araddr": Port(i, addr_w), "arvalid": Port(i, 1), "arready": Port(o, 1),
        "rdata": Port(o, data_w), "rresp": Port(o, 2), "rvalid": Port(o, 1), "rready": Port(i, 1),
    }  # fmt: skip


def _axi_master(addr_w: int, data_w: int) -> dict[str, Port]:
    """The AXI4 master signals DESIGN section 9 requires (other AXI4 signals are optional)."""
    i, o = "input", "output"
    return {
        "awaddr": Port(o, addr_w), "awlen": Port(o, 8), "awsize": Port(o, 3), "awburst": Port(o, 2),
        "awvalid": Port(o, 1), "awready": Port(i, 1),
        "wdata": Port(o, data_w), "wstrb": Port(o, data_w // 8), "wlast": Port(o, 1), "wvalid": Port(o, 1),
        "wready": Port(i, 1), "bresp": Port(i, 2), "bvalid": Port(i, 1), "bready": Port(o, 1),
        "araddr": Port(o, addr_w), "arlen": Port(o, 8), "arsize": Port(o, 3), "arburst": Port(o, 2),
        "arvalid": Port(o, 1), "arready": Port(i, 1),
        "rdata": Port(i, data_w), "rresp": Port(i, 2), "rlast": Port(i, 1), "rvalid": Port(i, 1), "rready": Port(o, 1),
    }  # fmt: skip


REQUIRED_PORTS: dict[str, Port] = {
    CLOCK: Port("input", 1),
    RESET: Port("input", 1),
    **{f"{CONTROL}_{s}": p for s, p in _axi_lite(spec.KERNEL_CONTROL_ADDR_WIDTH, spec.AXIL_DATA_WIDTH).items()},
    **{f"{GMEM}_{s}": p for s, p in _axi_master(spec.GMEM_ADDR_WIDTH, spec.GMEM_DATA_WIDTH).items()},
}


def module_ports(verilog: str, module: str) -> dict[str, Port]:
    """{port: Port} of MODULE in Verilog as Yosys writes it: names in the header, `input [63:0] x;`
    declarations in the body."""
    start = re.search(rf"^module\s+{re.escape(module)}\s*\(([^;]*)\)\s*;", verilog, re.M)
    if start is None:
        raise ValueError(f"no module {module}")
    body = verilog[start.end():verilog.find("endmodule", start.end())]
    declared = {
        m["name"]: Port(m["dir"], int(m["msb"]) - int(m["lsb"]) + 1 if m["msb"] else 1)
        for m in re.finditer(r"^\s*(?P<dir>input|output)\s+(?:\[(?P<msb>\d+):(?P<lsb>\d+)\]\s*)?(?P<name>\w+)\s*;", body, re.M)
    }
    names = re.findall(r"\w+", start[1])
    undeclared = [n for n in names if n not in declared]
    if undeclared:
        raise ValueError(f"module {module}: no input/output declaration for {', '.join(undeclared)}")
    return {n: declared[n] for n in names}


def check_ports(ports: dict[str, Port]) -> None:
    """Raises ValueError unless the module has DESIGN section 9's ports, with their directions and
    widths, and no port outside the kernel's interfaces (the packager would leave it unconnected)."""
    problems = [f"{n} missing" for n in REQUIRED_PORTS if n not in ports]
    problems += [f"{n} is {ports[n].direction} [{ports[n].width}], expected {p.direction} [{p.width}]"
                 for n, p in REQUIRED_PORTS.items() if n in ports and ports[n] != p]
    if INTERRUPT in ports and ports[INTERRUPT] != Port("output", 1):
        problems.append(f"{INTERRUPT} must be a 1-bit output")
    problems += [f"{n} belongs to no kernel interface" for n in ports
                 if n not in (CLOCK, RESET, INTERRUPT) and not n.startswith((f"{CONTROL}_", f"{GMEM}_"))]
    if problems:
        raise ValueError("; ".join(problems))


def kernel_xml(interrupt: bool) -> str:
    """kernel.xml (UG1702 "RTL Kernel XML File") of velcro_krnl: pointers on m_axi_gmem
    (addressQualifier 1), scalars on s_axi_control (addressQualifier 0), offsets and sizes from
    spec.KERNEL_ARGS."""
    args = "\n".join(
        f'      <arg name="{a.name}" addressQualifier="{int(a.pointer)}" id="{i}" '
        f'port="{GMEM if a.pointer else CONTROL}" size="0x{a.size:X}" offset="0x{a.offset:X}" '
        f'type="{a.c_type}" hostOffset="0x0" hostSize="0x{a.size:X}"/>'
        for i, a in enumerate(spec.KERNEL_ARGS)
    )
    gmem_range = (1 << spec.GMEM_ADDR_WIDTH) - 1
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by vivado/kernel/gen_kernel.py from model/hw/spec.py: edit those, not this file. -->
<root versionMajor="1" versionMinor="6">
  <kernel name="{spec.KERNEL_NAME}" language="ip_c" vlnv="{VLNV}" attributes="" preferredWorkGroupSizeMultiple="0" workGroupSize="1" interrupt="{str(interrupt).lower()}" hwControlProtocol="ap_ctrl_hs">
    <ports>
      <port name="{CONTROL}" mode="slave" range="0x{1 << spec.KERNEL_CONTROL_ADDR_WIDTH:X}" dataWidth="{spec.AXIL_DATA_WIDTH}" portType="addressable" base="0x0"/>
      <port name="{GMEM}" mode="master" range="0x{gmem_range:X}" dataWidth="{spec.GMEM_DATA_WIDTH}" portType="addressable" base="0x0"/>
    </ports>
    <args>
{args}
    </args>
  </kernel>
</root>
"""


def compute_units() -> list[str]:
    """v++'s names of the units of `nk=velcro_krnl:N`: velcro_krnl_1 ... velcro_krnl_N."""
    return [f"{spec.KERNEL_NAME}_{i + 1}" for i in range(spec.INSTANCES)]


def hbm_banks(unit: int) -> str:
    """The HBM pseudo-channels of compute unit `unit` (0-based): an equal, disjoint share of all 32."""
    per_unit = HBM_CHANNELS // spec.INSTANCES
    if per_unit < 1:
        raise ValueError(f"{spec.INSTANCES} compute units cannot each have their own of {HBM_CHANNELS} HBM pseudo-channels")
    first = unit * per_unit
    return f"HBM[{first}]" if per_unit == 1 else f"HBM[{first}:{first + per_unit - 1}]"


def slr(unit: int) -> str:
    """SLR of compute unit `unit` (0-based): consecutive units fill SLR0, SLR1, SLR2 in turn, counts
    differing by at most one, the extra units in the lowest SLRs (nearest the HBM)."""
    base, extra = divmod(spec.INSTANCES, len(SLRS))
    sizes = [base + (k < extra) for k in range(len(SLRS))]
    for k, size in enumerate(sizes):
        if unit < size:
            return SLRS[k]
        unit -= size
    raise IndexError("compute unit out of range")


def link_cfg(platform: str = PLATFORM, clock_mhz: float = 300) -> str:
    """The v++ --link configuration (UG1393 "v++ Command" [connectivity] options)."""
    units = compute_units()
    lines = [
        "# Generated by vivado/kernel/gen_kernel.py from model/hw/spec.py (make xclbin): edit those, not this file.",
        f"# {spec.INSTANCES} compute units of {spec.KERNEL_NAME}, one per conv2d channel, each on its own HBM",
        "# pseudo-channels, spread over the three SLRs; kernel clock ap_clk = platform clock 0.",
        f"platform={platform}",
        f"kernel_frequency=0:{int(clock_mhz) if float(clock_mhz).is_integer() else clock_mhz}",
        "",
        "[connectivity]",
        f"nk={spec.KERNEL_NAME}:{spec.INSTANCES}",
        *(f"sp={cu}.{GMEM}:{hbm_banks(i)}" for i, cu in enumerate(units)),
        *(f"slr={cu}:{slr(i)}" for i, cu in enumerate(units)),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    xml = sub.add_parser("kernel-xml", help="kernel.xml for package_xo (make xo)")
    xml.add_argument("--rtl", type=Path, required=True, help=f"the generated Verilog of {spec.KERNEL_NAME}")
    cfg = sub.add_parser("link-cfg", help="the v++ --link config for the U280 (make xclbin)")
    cfg.add_argument("--platform", default=PLATFORM, help=f"Vitis platform (default {PLATFORM})")
    cfg.add_argument("--clock-mhz", type=float, default=300, help="kernel clock ap_clk in MHz (default 300)")
    for p in (xml, cfg):
        p.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.what == "kernel-xml":
        if not args.rtl.is_file():
            print(f"error: {args.rtl} not found: generate the Verilog first (make rtl)", file=sys.stderr)
            return 1
        try:
            ports = module_ports(args.rtl.read_text(), spec.KERNEL_NAME)
            check_ports(ports)
        except ValueError as err:
            print(f"error: {args.rtl}: {err} (DESIGN section 9; regenerate with make rtl)", file=sys.stderr)
            return 1
        text = kernel_xml(interrupt=INTERRUPT in ports)
    else:
        if not args.clock_mhz > 0:
            print(f"error: --clock-mhz {args.clock_mhz:g}: expected a positive number of MHz", file=sys.stderr)
            return 1
        text = link_cfg(args.platform, args.clock_mhz)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"velcro: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
