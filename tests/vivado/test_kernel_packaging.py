"""Dry runs of the Alveo kernel's packaging and link (vivado/kernel/, `make xo`, `make xclbin`), without Vitis.

vivado/kernel/gen_kernel.py writes kernel.xml and the v++ link config from model/hw/spec.py;
vivado/kernel/package_xo.tcl is sourced by plain tclsh through vivado/dryrun.tcl, whose stubs record
every Vivado command. The tests check that:

* the real rtl/generated/velcro_krnl.v has DESIGN section 9's ports (written out below from the
  text, not taken from gen_kernel.py), and every port belongs to one kernel interface;
* kernel.xml and the IP's register map carry spec.KERNEL_ARGS' offsets and sizes, pointers on
  m_axi_gmem, and name the kernel and ports of the Verilog;
* the packaging calls: project, interfaces inferred from the module's own ports, clock and reset
  associations, sdx_kernel properties, integrity check, package_xo, every file referenced existing;
* the link config: 16 compute units under the names the host opens, each on its own HBM
  pseudo-channels, spread over the three SLRs, the platform and clock;
* the make targets: they stop without Vitis, and with stand-ins for vivado and v++ they run the
  scripts above and link the .xo they produced.

Most packaging tests also run on a placeholder with section 9's ports; the *real_rtl* ones read the
generated Verilog and fail, naming `make rtl`, when it is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from model.hw import spec

REPO = Path(__file__).resolve().parents[2]
KERNEL_DIR = REPO / "vivado" / "kernel"
PACKAGE_XO_TCL = KERNEL_DIR / "package_xo.tcl"
GEN_KERNEL = KERNEL_DIR / "gen_kernel.py"
DRYRUN_TCL = REPO / "vivado" / "dryrun.tcl"
REAL_KRNL = REPO / "rtl" / "generated" / f"{spec.KERNEL_NAME}.v"
DEFAULT_PART = "xcu280-fsvh2892-2L-e"
DEFAULT_PLATFORM = "xilinx_u280_gen3x16_xdma_1_202211_1"
CONTROL, GMEM = "s_axi_control", "m_axi_gmem"
U280_HBM_CHANNELS = 32
U280_SLRS = {"SLR0", "SLR1", "SLR2"}

# Vivado commands (UG835, and package_xo of a Vitis install) the packaging script may use.
COMMANDS = {
    "create_project", "add_files", "set_property", "current_fileset", "update_compile_order", "close_project",
    "ipx::package_project", "ipx::current_core", "ipx::infer_bus_interface", "ipx::get_bus_interfaces",
    "ipx::associate_bus_interfaces", "ipx::get_bus_parameters", "ipx::add_bus_parameter",
    "ipx::get_memory_maps", "ipx::add_memory_map", "ipx::get_address_blocks", "ipx::add_address_block",
    "ipx::add_register", "ipx::add_register_parameter",
    "ipx::create_xgui_files", "ipx::update_checksums", "ipx::check_integrity", "ipx::save_core", "package_xo",
}  # fmt: skip
INTERFACE_TYPES = {
    "ap_clk": "xilinx.com:signal:clock_rtl:1.0", "ap_rst_n": "xilinx.com:signal:reset_rtl:1.0",
    CONTROL: "xilinx.com:interface:aximm_rtl:1.0", GMEM: "xilinx.com:interface:aximm_rtl:1.0",
    "interrupt": "xilinx.com:signal:interrupt_rtl:1.0",
}  # fmt: skip


def _load_gen_kernel():
    """vivado/kernel/gen_kernel.py is a script, not a package module: import it by path."""
    module_spec = importlib.util.spec_from_file_location("velcro_vivado_gen_kernel", GEN_KERNEL)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module


gen_kernel = _load_gen_kernel()


# ---------------------------------------------------------------------- DESIGN section 9's ports
def design_ports() -> dict[str, tuple[str, int]]:
    """{port: (direction, width)} that DESIGN section 9 requires of velcro_krnl: ap_clk, ap_rst_n,
    the AXI4-Lite slave s_axi_control (12-bit address, 32-bit data, section 4's suffixes) and the
    AXI4 master m_axi_gmem (64-bit address and data; the AXI4 widths of len, size, burst and resp)."""
    a, d = spec.KERNEL_CONTROL_ADDR_WIDTH, spec.AXIL_DATA_WIDTH
    ports = {"ap_clk": ("input", 1), "ap_rst_n": ("input", 1)}
    control = {
        "awaddr": ("input", a), "awvalid": ("input", 1), "awready": ("output", 1), "wdata": ("input", d),
        "wstrb": ("input", d // 8), "wvalid": ("input", 1), "wready": ("output", 1), "bresp": ("output", 2),
        "bvalid": ("output", 1), "bready": ("input", 1), "araddr": ("input", a), "arvalid": ("input", 1),
        "arready": ("output", 1), "rdata": ("output", d), "rresp": ("output", 2), "rvalid": ("output", 1),
        "rready": ("input", 1),
    }  # fmt: skip
    ga, gd = spec.GMEM_ADDR_WIDTH, spec.GMEM_DATA_WIDTH
    gmem = {
        "awaddr": ("output", ga), "awlen": ("output", 8), "awsize": ("output", 3), "awburst": ("output", 2),
        "awvalid": ("output", 1), "awready": ("input", 1), "wdata": ("output", gd), "wstrb": ("output", gd // 8),
        "wlast": ("output", 1), "wvalid": ("output", 1), "wready": ("input", 1), "bresp": ("input", 2),
        "bvalid": ("input", 1), "bready": ("output", 1), "araddr": ("output", ga), "arlen": ("output", 8),
        "arsize": ("output", 3), "arburst": ("output", 2), "arvalid": ("output", 1), "arready": ("input", 1),
        "rdata": ("input", gd), "rresp": ("input", 2), "rlast": ("input", 1), "rvalid": ("input", 1),
        "rready": ("output", 1),
    }  # fmt: skip
    ports |= {f"{CONTROL}_{s}": p for s, p in control.items()}
    ports |= {f"{GMEM}_{s}": p for s, p in gmem.items()}
    return ports


def verilog_ports(path: Path, module: str) -> dict[str, tuple[str, int]]:
    """{port: (direction, width)} of MODULE, in header order, from Verilog as Yosys writes it."""
    text = path.read_text()
    header = re.search(rf"^module\s+{module}\s*\(([^;]*)\);", text, re.M)
    assert header, f"{path} defines no module {module}"
    body = text[header.end():text.index("endmodule", header.end())]
    names = re.findall(r"\w+", header.group(1))
    ports = {}
    for name in names:
        decl = re.search(rf"^\s*(input|output|inout)\s+(?:\[(\d+):(\d+)\]\s*)?{name}\s*;", body, re.M)
        assert decl, f"{module}: port {name} has no declaration"
        ports[name] = (decl.group(1), int(decl.group(2)) - int(decl.group(3)) + 1 if decl.group(2) else 1)
    return ports


def check_section_9_ports(ports: dict[str, tuple[str, int]]) -> None:
    expected = design_ports()
    assert {n: ports.get(n) for n in expected} == expected, "ports differ from DESIGN section 9"
    loose = [n for n in ports if n not in ("ap_clk", "ap_rst_n", "interrupt") and not n.startswith((f"{CONTROL}_", f"{GMEM}_"))]
    assert loose == [], f"ports outside the kernel's interfaces: {loose}"
    assert ports.get("interrupt", ("output", 1)) == ("output", 1)


def placeholder(directory: Path, interrupt: bool = True, ports: dict[str, tuple[str, int]] | None = None) -> Path:
    """A Verilog file in the form Yosys writes (header over two lines, declarations in the body, a
    submodule after it) with section 9's ports and no logic."""
    ports = dict(design_ports() if ports is None else ports)
    if interrupt:
        ports["interrupt"] = ("output", 1)
    names = list(ports)
    decls = "\n".join(f"  {d} {f'[{w - 1}:0] ' if w > 1 else ''}{n};" for n, (d, w) in ports.items())
    text = (f"/* PLACEHOLDER for tests only: the ports of {spec.KERNEL_NAME} */\n\n"
            f"module {spec.KERNEL_NAME}({', '.join(names[:20])}\n, {', '.join(names[20:])});\n{decls}\nendmodule\n\n"
            f"module \\{spec.KERNEL_NAME}.loader (clk, rst);\n  input clk;\n  input rst;\nendmodule\n")  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{spec.KERNEL_NAME}.v"
    path.write_text(text)
    return path


@pytest.fixture
def real_krnl() -> Path:
    if not REAL_KRNL.is_file():
        pytest.fail(f"{REAL_KRNL.relative_to(REPO)} not found: generate the Verilog with `make rtl`")
    return REAL_KRNL


# ---------------------------------------------------------------------- running the scripts
def _tclsh() -> str:
    tclsh = shutil.which("tclsh")
    if tclsh is None:
        pytest.fail("tclsh not found: the dry-run tests need Tcl 8.6 (Debian: apt-get install -y tcl)")
    return tclsh


def gen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GEN_KERNEL), *args], capture_output=True, text=True, timeout=60)


def write_kernel_xml(rtl_file: Path, out: Path) -> Path:
    proc = gen("kernel-xml", "--rtl", str(rtl_file), "-o", str(out / "kernel.xml"))
    assert proc.returncode == 0, proc.stderr
    return out / "kernel.xml"


def dry_run(out: Path, rtl_dir: Path | None, check: bool = True) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Sources package_xo.tcl in tclsh with the recording stubs (rtl_dir None: the default,
    rtl/generated). Returns (process, calls)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VELCRO_")}
    env["VELCRO_VITIS_OUT"] = str(out)
    if rtl_dir is not None:
        env["VELCRO_RTL_DIR"] = str(rtl_dir)
    log = out.parent / "calls.jsonl"
    proc = subprocess.run([_tclsh(), str(DRYRUN_TCL), str(log), str(PACKAGE_XO_TCL)], cwd=out.parent, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    if check:
        assert proc.returncode == 0, f"dry run failed:\n{proc.stdout}\n{proc.stderr}"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def option(call: list[str], flag: str) -> str:
    assert flag in call, f"{flag} missing in {call}"
    return call[call.index(flag) + 1]


def only(calls: list[list[str]], name: str) -> list[str]:
    found = [c for c in calls if c[0] == name]
    assert len(found) == 1, f"expected one {name}, got {found}"
    return found[0]


# ---------------------------------------------------------------------- the checks
def check_kernel_xml(path: Path, interrupt: bool) -> None:
    """kernel.xml names the kernel, its ap_ctrl_hs protocol, the two bus interfaces and the
    arguments of spec.KERNEL_ARGS (offset, size, pointer on m_axi_gmem or scalar on s_axi_control)."""
    root = ET.parse(path).getroot()
    assert root.tag == "root" and root.get("versionMajor") == "1"
    (kernel,) = root.findall("kernel")
    assert kernel.get("name") == spec.KERNEL_NAME
    assert kernel.get("vlnv").split(":")[2:] == [spec.KERNEL_NAME, "1.0"]
    assert kernel.get("hwControlProtocol") == "ap_ctrl_hs"
    assert kernel.get("interrupt") == ("true" if interrupt else "false")
    ports = {p.get("name"): p.attrib for p in kernel.find("ports")}
    assert set(ports) == {CONTROL, GMEM}
    assert ports[CONTROL]["mode"] == "slave" and int(ports[CONTROL]["range"], 16) == 1 << spec.KERNEL_CONTROL_ADDR_WIDTH
    assert int(ports[CONTROL]["dataWidth"]) == spec.AXIL_DATA_WIDTH
    assert ports[GMEM]["mode"] == "master" and int(ports[GMEM]["range"], 16) == (1 << spec.GMEM_ADDR_WIDTH) - 1
    assert int(ports[GMEM]["dataWidth"]) == spec.GMEM_DATA_WIDTH
    args = [a.attrib for a in kernel.find("args")]
    assert [a["name"] for a in args] == [a.name for a in spec.KERNEL_ARGS]
    for i, (xml_arg, arg) in enumerate(zip(args, spec.KERNEL_ARGS)):
        assert int(xml_arg["id"]) == i
        assert int(xml_arg["offset"], 16) == arg.offset, arg.name
        assert int(xml_arg["size"], 16) == int(xml_arg["hostSize"], 16) == arg.size, arg.name
        assert xml_arg["port"] == (GMEM if arg.pointer else CONTROL), arg.name
        assert xml_arg["addressQualifier"] == ("1" if arg.pointer else "0"), arg.name
        assert xml_arg["type"] == arg.c_type


def check_package_xo(calls: list[list[str]], out: Path, rtl_file: Path) -> None:
    """The packaging calls for RTL_FILE's module, checked against its ports and the contract."""
    seq = [c[0] for c in calls]
    assert set(seq) <= COMMANDS, f"not standard Vivado commands: {set(seq) - COMMANDS}"
    kernel_xml = out / "kernel.xml"
    vlnv = ET.parse(kernel_xml).getroot().find("kernel").get("vlnv").split(":")
    # project with the Verilog, top = the kernel
    assert option(only(calls, "create_project"), "-part") == DEFAULT_PART
    assert only(calls, "add_files")[-1] == str(rtl_file) and rtl_file.is_file()
    assert ["set_property", "top", spec.KERNEL_NAME, ""] in calls
    pkg = only(calls, "ipx::package_project")
    assert option(pkg, "-root_dir") == str(out / "ip") and "-import_files" in pkg
    assert (option(pkg, "-vendor"), option(pkg, "-library")) == tuple(vlnv[:2])
    assert seq.index("add_files") < seq.index("ipx::package_project")
    assert ["set_property", "name", spec.KERNEL_NAME, ""] in calls
    assert ["set_property", "version", vlnv[3], ""] in calls
    assert ["set_property", "sdx_kernel", "true", ""] in calls
    assert ["set_property", "sdx_kernel_type", "rtl", ""] in calls
    # interfaces: with stubs none "exists", so each is inferred explicitly, from the module's own ports
    ports = verilog_ports(rtl_file, spec.KERNEL_NAME)
    inferred = {}
    for c in (c for c in calls if c[0] == "ipx::infer_bus_interface"):
        members = c[1].split()
        busif = members[0] if len(members) == 1 else re.sub(r"_[a-z]+$", "", members[0])
        assert busif not in inferred and c[2] == INTERFACE_TYPES[busif], c
        inferred[busif] = members
    assert set(inferred) == {"ap_clk", "ap_rst_n", CONTROL, GMEM} | ({"interrupt"} & set(ports))
    assert inferred[CONTROL] == [p for p in ports if p.startswith(f"{CONTROL}_")]
    assert inferred[GMEM] == [p for p in ports if p.startswith(f"{GMEM}_")]
    assert sorted(sum(inferred.values(), [])) == sorted(ports), "every port in exactly one interface"
    assert ["ipx::associate_bus_interfaces", "-busif", CONTROL, "-clock", "ap_clk", ""] in calls
    assert ["ipx::associate_bus_interfaces", "-busif", GMEM, "-clock", "ap_clk", ""] in calls
    assert ["ipx::associate_bus_interfaces", "-clock", "ap_clk", "-reset", "ap_rst_n", ""] in calls
    # bus parameters (handle = parameter name in the dry run), each after a lookup of its interface
    params = {}
    for i, c in enumerate(calls):
        if c[:2] == ["set_property", "value"] and c[3] in ("POLARITY", "SENSITIVITY", "HAS_BURST", "SUPPORTS_NARROW_BURST"):
            busif = next(b[1] for b in reversed(calls[:i]) if b[0] == "ipx::get_bus_interfaces")
            params[(busif, c[3])] = c[2]
    expected = {("ap_rst_n", "POLARITY"): "ACTIVE_LOW", (GMEM, "HAS_BURST"): "0", (GMEM, "SUPPORTS_NARROW_BURST"): "0"}
    if "interrupt" in ports:
        expected[("interrupt", "SENSITIVITY")] = "LEVEL_HIGH"
    assert params == expected
    # register map of s_axi_control: the control block and the arguments of spec.KERNEL_ARGS
    assert ["ipx::add_memory_map", CONTROL, ""] in calls
    assert ["set_property", "slave_memory_map_ref", CONTROL, ""] in calls
    assert ["set_property", "range", f"0x{1 << spec.KERNEL_CONTROL_ADDR_WIDTH:X}", ""] in calls
    registers = {c[1]: {} for c in calls if c[0] == "ipx::add_register"}
    for c in calls:
        if c[0] == "set_property" and c[-1] in registers:
            registers[c[-1]][c[1]] = c[2]
        elif c[0] == "set_property" and c[-1].endswith("/ASSOCIATED_BUSIF"):
            registers[c[-1].split("/")[0]]["ASSOCIATED_BUSIF"] = c[2]
    control = {int(r["address_offset"], 16): int(r["size"]) for n, r in registers.items() if n not in {a.name for a in spec.KERNEL_ARGS}}
    assert control == {r.offset: 32 for r in spec.KERNEL_REGISTERS if r.offset < 0x10}
    for arg in spec.KERNEL_ARGS:
        reg = registers[arg.name]
        assert int(reg["address_offset"], 16) == arg.offset and int(reg["size"]) == 8 * arg.size, arg.name
        assert reg.get("ASSOCIATED_BUSIF") == (GMEM if arg.pointer else None), arg.name
    # close the IP, then the .xo from it and kernel.xml
    tail = ["ipx::create_xgui_files", "ipx::update_checksums", "ipx::check_integrity", "ipx::save_core", "close_project", "package_xo"]
    assert seq[-len(tail):] == tail
    assert "-kernel" in only(calls, "ipx::check_integrity")
    xo = only(calls, "package_xo")
    assert option(xo, "-kernel_name") == spec.KERNEL_NAME
    assert option(xo, "-ip_directory") == option(pkg, "-root_dir")
    assert option(xo, "-kernel_xml") == str(kernel_xml) and kernel_xml.is_file()
    assert option(xo, "-xo_path") == str(out / f"{spec.KERNEL_NAME}.xo")


def parse_link_cfg(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(general options, {connectivity key: values}) of a v++ config file."""
    general, connectivity, section = {}, {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section is None:
            general[key] = value
        else:
            assert section == "connectivity", f"unexpected section [{section}]"
            connectivity.setdefault(key, []).append(value)
    return general, connectivity


def check_link_cfg(text: str, platform: str = DEFAULT_PLATFORM, clock_mhz: str = "300") -> None:
    general, conn = parse_link_cfg(text)
    assert general == {"platform": platform, "kernel_frequency": f"0:{clock_mhz}"}
    assert conn["nk"] == [f"{spec.KERNEL_NAME}:{spec.INSTANCES}"]
    units = [f"{spec.KERNEL_NAME}_{i}" for i in range(1, spec.INSTANCES + 1)]  # v++'s names for nk without names
    banks = {}
    for sp in conn["sp"]:
        m = re.fullmatch(rf"({spec.KERNEL_NAME}_\d+)\.{GMEM}:HBM\[(\d+)(?::(\d+))?\]", sp)
        assert m, sp
        banks[m[1]] = set(range(int(m[2]), int(m[3] or m[2]) + 1))
    assert sorted(banks) == sorted(units) and len(conn["sp"]) == spec.INSTANCES
    channels = sorted(c for b in banks.values() for c in b)
    assert channels == sorted(set(channels)), "each compute unit on its own pseudo-channels"
    assert channels[0] >= 0 and channels[-1] < U280_HBM_CHANNELS
    assert len({len(b) for b in banks.values()}) == 1, "every unit gets the same share"
    slrs = dict(s.split(":") for s in conn["slr"])
    assert sorted(slrs) == sorted(units) and len(conn["slr"]) == spec.INSTANCES
    counts = [list(slrs.values()).count(s) for s in sorted(U280_SLRS)]
    assert set(slrs.values()) == U280_SLRS and max(counts) - min(counts) <= 1, counts


# ---------------------------------------------------------------------- real RTL
def test_real_rtl_ports_follow_design_section_9(real_krnl: Path) -> None:
    check_section_9_ports(verilog_ports(real_krnl, spec.KERNEL_NAME))


def test_kernel_xml_real_rtl(tmp_path: Path, real_krnl: Path) -> None:
    kernel_xml = write_kernel_xml(real_krnl, tmp_path)
    check_kernel_xml(kernel_xml, interrupt="interrupt" in verilog_ports(real_krnl, spec.KERNEL_NAME))


def test_package_xo_real_rtl(tmp_path: Path, real_krnl: Path) -> None:
    """Default environment, as `make xo` runs it: rtl/generated/velcro_krnl.v."""
    out = tmp_path / "vitis"
    write_kernel_xml(real_krnl, out)
    _, calls = dry_run(out, rtl_dir=None)
    check_package_xo(calls, out, real_krnl)


# ---------------------------------------------------------------------- placeholders
@pytest.mark.parametrize("interrupt", [True, False])
def test_package_xo_placeholder(tmp_path: Path, interrupt: bool) -> None:
    """With and without the optional interrupt port: kernel.xml and the IP follow the module."""
    rtl = placeholder(tmp_path / "rtl", interrupt=interrupt)
    check_section_9_ports(verilog_ports(rtl, spec.KERNEL_NAME))
    out = tmp_path / "vitis"
    check_kernel_xml(write_kernel_xml(rtl, out), interrupt=interrupt)
    _, calls = dry_run(out, rtl.parent)
    check_package_xo(calls, out, rtl)


def test_optional_axi_signals_join_their_interface(tmp_path: Path) -> None:
    """Other AXI4 signals (section 9: optional) are packaged in m_axi_gmem with the rest."""
    ports = design_ports() | {f"{GMEM}_awprot": ("output", 3), f"{GMEM}_arcache": ("output", 4)}
    rtl = placeholder(tmp_path / "rtl", ports=ports)
    out = tmp_path / "vitis"
    write_kernel_xml(rtl, out)
    _, calls = dry_run(out, rtl.parent)
    check_package_xo(calls, out, rtl)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"drop": f"{GMEM}_rlast"}, f"{GMEM}_rlast missing"),
        ({"drop": "ap_rst_n"}, "ap_rst_n missing"),
        ({f"{CONTROL}_awaddr": ("input", 32)}, f"{CONTROL}_awaddr is input [32], expected input [12]"),
        ({f"{GMEM}_araddr": ("output", 32)}, f"{GMEM}_araddr is output [32], expected output [64]"),
        ({"start": ("input", 1)}, "start belongs to no kernel interface"),
        ({"interrupt": ("output", 2)}, "interrupt must be a 1-bit output"),
    ],
)
def test_ports_outside_section_9_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    change = dict(change)
    ports = design_ports()
    ports.pop(change.pop("drop", None), None)
    rtl = placeholder(tmp_path / "rtl", interrupt=False, ports=ports | change)
    proc = gen("kernel-xml", "--rtl", str(rtl), "-o", str(tmp_path / "kernel.xml"))
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "kernel.xml").exists()


def test_missing_rtl_names_make_rtl(tmp_path: Path) -> None:
    """No Verilog: the generator and the TCL script both stop, naming `make rtl`, before any Vivado call."""
    proc = gen("kernel-xml", "--rtl", str(tmp_path / "none" / "velcro_krnl.v"), "-o", str(tmp_path / "kernel.xml"))
    assert proc.returncode == 1 and "(make rtl)" in proc.stderr
    out = tmp_path / "vitis"
    write_kernel_xml(placeholder(tmp_path / "rtl"), out)
    proc, calls = dry_run(out, tmp_path / "empty", check=False)
    assert proc.returncode != 0 and "generate the Verilog first (make rtl)" in proc.stderr
    assert calls == []


def test_package_xo_needs_kernel_xml(tmp_path: Path) -> None:
    out = tmp_path / "vitis"
    out.mkdir()
    proc, calls = dry_run(out, placeholder(tmp_path / "rtl").parent, check=False)
    assert proc.returncode != 0 and "kernel.xml not found: make xo writes it" in proc.stderr
    assert calls == []


def test_kernel_xml_must_agree_with_rtl_on_interrupt(tmp_path: Path) -> None:
    """A kernel.xml from a module with the interrupt port, and Verilog without it: stop."""
    out = tmp_path / "vitis"
    write_kernel_xml(placeholder(tmp_path / "with", interrupt=True), out)
    proc, calls = dry_run(out, placeholder(tmp_path / "without", interrupt=False).parent, check=False)
    assert proc.returncode != 0 and "interrupt=true" in proc.stderr and "rerun make xo" in proc.stderr
    assert calls == []


def test_kernel_arguments_follow_vitis_rules() -> None:
    """The contract's arguments fit a Vitis kernel: after the ap_ctrl_hs block (0x00-0x0C), word
    aligned, no overlaps, inside s_axi_control; pointers 64-bit. So does the link's HBM split."""
    spans = sorted((a.offset, a.offset + a.size) for a in spec.KERNEL_ARGS)
    assert spans[0][0] >= 0x10 and spans[-1][1] <= 1 << spec.KERNEL_CONTROL_ADDR_WIDTH
    assert all(start % 4 == 0 for start, _ in spans)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert all(a.size == 8 for a in spec.KERNEL_ARGS if a.pointer)
    assert spec.INSTANCES <= U280_HBM_CHANNELS


# ---------------------------------------------------------------------- link config
def test_link_cfg_default(tmp_path: Path) -> None:
    proc = gen("link-cfg", "-o", str(tmp_path / "link.cfg"))
    assert proc.returncode == 0, proc.stderr
    check_link_cfg((tmp_path / "link.cfg").read_text())


def test_link_cfg_units_are_the_hosts() -> None:
    """The host opens compute unit c as "velcro_krnl:{<name>}": the link must create exactly those."""
    from host.backends.xrt import compute_unit

    host_names = [re.fullmatch(rf"{spec.KERNEL_NAME}:\{{(\w+)\}}", compute_unit(i))[1] for i in range(spec.INSTANCES)]
    _, conn = parse_link_cfg(gen_kernel.link_cfg())
    assert [sp.split(".")[0] for sp in conn["sp"]] == host_names
    assert [slr.split(":")[0] for slr in conn["slr"]] == host_names


def test_link_cfg_platform_and_clock(tmp_path: Path) -> None:
    proc = gen("link-cfg", "--platform", "xilinx_u280_xdma_201920_3", "--clock-mhz", "250", "-o", str(tmp_path / "l.cfg"))
    assert proc.returncode == 0, proc.stderr
    check_link_cfg((tmp_path / "l.cfg").read_text(), platform="xilinx_u280_xdma_201920_3", clock_mhz="250")
    proc = gen("link-cfg", "--clock-mhz", "0", "-o", str(tmp_path / "bad.cfg"))
    assert proc.returncode == 1 and "--clock-mhz 0" in proc.stderr and not (tmp_path / "bad.cfg").exists()


def test_readme_shows_the_generated_link_cfg() -> None:
    readme = (REPO / "vivado" / "README.md").read_text()
    blocks = re.findall(r"```ini\n(.*?)```", readme, re.S)
    assert blocks == [gen_kernel.link_cfg()], "vivado/README.md: paste the output of gen_kernel.py link-cfg"


def test_package_xo_tcl_parses(tmp_path: Path) -> None:
    """The script is complete Tcl (balanced braces, brackets, quotes) for tclsh 8.6."""
    check = tmp_path / "check.tcl"
    check.write_text("set f [open [lindex $argv 0]]; set t [read $f]; close $f\n"
                     "if {![info complete $t]} {puts stderr incomplete; exit 1}\n")
    proc = subprocess.run([_tclsh(), str(check), str(PACKAGE_XO_TCL)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    for m in re.finditer(r"^\s*proc\s+(\S+)", PACKAGE_XO_TCL.read_text(), re.M):
        assert m.group(1).startswith("velcro::"), f"proc {m.group(1)} outside namespace velcro"


# ---------------------------------------------------------------------- make xo / make xclbin
def _env_without_vitis() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VELCRO_", "XILINX_"))}
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep)
                                  if d and not any((Path(d) / t).exists() for t in ("v++", "vivado")))  # fmt: skip
    return env


@pytest.mark.parametrize("target", ["xo", "xclbin"])
def test_make_without_vitis_fails_fast(tmp_path: Path, target: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), target, f"VELCRO_VITIS_OUT={out}"],
                          env=_env_without_vitis(), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode != 0 and "Error 1" in proc.stderr
    assert "error: Vitis not found (v++ not on PATH, XILINX_VITIS unset, vivado not on PATH)" in proc.stderr
    assert "settings64.sh" in proc.stderr and DEFAULT_PLATFORM in proc.stderr and f"make {target}" in proc.stderr
    assert not out.exists(), "nothing may run before the check"


def test_make_with_v_plus_plus_but_no_xilinx_vitis_fails(tmp_path: Path) -> None:
    """v++ on PATH is not enough: Vitis's settings64.sh also sets XILINX_VITIS."""
    vpp = tmp_path / "bin" / "v++"
    vpp.parent.mkdir()
    vpp.write_text("#!/bin/sh\nexit 0\n")
    vpp.chmod(0o755)
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "xo", f"VELCRO_VITIS_OUT={tmp_path / 'out'}",
                           f"VPP={vpp}", "VIVADO=true"], env=_env_without_vitis(), capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode != 0 and "error: Vitis not found (XILINX_VITIS unset)" in proc.stderr


STUB_VIVADO = """#!{python}
# Stand-in for vivado: runs -source SCRIPT through vivado/dryrun.tcl (calls in VELCRO_VITIS_OUT/xo_calls.jsonl)
# and writes the file of every package_xo -xo_path.
import json, os, pathlib, subprocess, sys
args = sys.argv[1:]
log = pathlib.Path(os.environ["VELCRO_VITIS_OUT"]) / "xo_calls.jsonl"
proc = subprocess.run([{tclsh!r}, {dryrun!r}, str(log), args[args.index("-source") + 1]])
for call in map(json.loads, log.read_text().splitlines()):
    if call[0] == "package_xo":
        pathlib.Path(call[call.index("-xo_path") + 1]).write_text("placeholder .xo")
sys.exit(proc.returncode)
"""
STUB_VPP = """#!{python}
# Stand-in for v++: records its arguments and the config it was given, needs the .xo, writes -o.
import json, pathlib, sys
args = sys.argv[1:]
config = pathlib.Path(args[args.index("--config") + 1])
record = {{"argv": args, "config": config.read_text()}}
pathlib.Path({log!r}).write_text(json.dumps(record))
if not pathlib.Path(args[-1]).is_file():
    sys.exit("v++ stand-in: no .xo at " + args[-1])
pathlib.Path(args[args.index("-o") + 1]).write_text("placeholder xclbin")
"""


@pytest.fixture
def stand_ins(tmp_path: Path) -> dict[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    vivado, vpp = bin_dir / "vivado", bin_dir / "v++"
    vivado.write_text(STUB_VIVADO.format(python=sys.executable, tclsh=_tclsh(), dryrun=str(DRYRUN_TCL)))
    vpp.write_text(STUB_VPP.format(python=sys.executable, log=str(tmp_path / "vpp.json")))
    for stub in (vivado, vpp):
        stub.chmod(0o755)
    return {"vivado": vivado, "vpp": vpp, "vpp_log": tmp_path / "vpp.json", "xilinx_vitis": tmp_path}


def make_xclbin(tmp_path: Path, stand_ins: dict[str, Path], **variables: str) -> tuple[Path, list[list[str]], list[str], str]:
    """`make xclbin` with the stand-ins. Returns (output folder, packaging calls, v++ arguments, link config)."""
    out = tmp_path / "out"
    env = _env_without_vitis() | {"XILINX_VITIS": str(stand_ins["xilinx_vitis"])}
    argv = ["make", "--no-print-directory", "-C", str(REPO), "xclbin", f"VIVADO={stand_ins['vivado']}",
            f"VPP={stand_ins['vpp']}", f"VELCRO_VITIS_OUT={out}", *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [json.loads(line) for line in (out / "xo_calls.jsonl").read_text().splitlines()]
    vpp = json.loads(stand_ins["vpp_log"].read_text())
    argv = vpp["argv"]
    assert argv[:3] == ["-l", "-t", "hw"]
    assert option(argv, "--config") == str(out / "link.cfg")
    assert option(argv, "-o") == str(out / "velcro.xclbin") and (out / "velcro.xclbin").is_file()
    assert argv[-1] == option(only(calls, "package_xo"), "-xo_path")
    for flag in ("--temp_dir", "--log_dir", "--report_dir"):
        assert Path(option(argv, flag)).parent == out
    return out, calls, argv, vpp["config"]


def test_make_xclbin_real_rtl(tmp_path: Path, real_krnl: Path, stand_ins: dict[str, Path]) -> None:
    """`make xclbin` with stand-ins for vivado and v++ and the default settings: package_xo.tcl
    packages the real Verilog, then v++ links the .xo it wrote with the generated config."""
    out, calls, _, config = make_xclbin(tmp_path, stand_ins)
    check_package_xo(calls, out, real_krnl)
    check_kernel_xml(out / "kernel.xml", interrupt="interrupt" in verilog_ports(real_krnl, spec.KERNEL_NAME))
    check_link_cfg(config)


def test_make_xclbin_settings(tmp_path: Path, stand_ins: dict[str, Path]) -> None:
    """VELCRO_RTL_DIR, VELCRO_PLATFORM and VELCRO_CLOCK_MHZ reach the packaging and the link config."""
    rtl = placeholder(tmp_path / "rtl", interrupt=False)
    out, calls, _, config = make_xclbin(tmp_path, stand_ins, VELCRO_RTL_DIR=str(rtl.parent),
                                        VELCRO_PLATFORM="xilinx_u280_gen3x16_xdma_base_1", VELCRO_CLOCK_MHZ="322.265625")
    check_package_xo(calls, out, rtl)
    check_kernel_xml(out / "kernel.xml", interrupt=False)
    check_link_cfg(config, platform="xilinx_u280_gen3x16_xdma_base_1", clock_mhz="322.265625")
