"""Verilator lint (-Wall) of the generated Verilog, with the documented waivers (`make lint`).

Waivers, all artefacts of generated code rather than design issues:
  WIDTH          Amaranth/Yosys extend and truncate operands implicitly and on purpose.
  DECLFILENAME   every submodule sits inside the one generated file, which is self-contained on purpose.
  PROCASSINIT    registers carry their reset value as a declaration initialiser as well.
  UNUSEDSIGNAL   Yosys names intermediate nets whose spare bits nothing reads.
  CASEOVERLAP    Yosys writes one-hot multiplexers as `casez` with parallel_case: their patterns
                 overlap only for select values that cannot occur.
  SYMRSVDWORD    the Vitis kernel contract names a port `interrupt`, a common C++ word.
"""
from __future__ import annotations

import subprocess
import sys

from rtl.tools.generate import GENERATED_DIR as GENERATED

WAIVERS = ["WIDTH", "DECLFILENAME", "PROCASSINIT", "UNUSEDSIGNAL", "CASEOVERLAP", "SYMRSVDWORD"]


def lint(module: str) -> subprocess.CompletedProcess:
    cmd = ["verilator", "--lint-only", "-Wall", *(f"-Wno-{w}" for w in WAIVERS),
           "--top-module", module, str(GENERATED / f"{module}.v")]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True)


def main() -> int:
    failed = 0
    for path in sorted(GENERATED.glob("*.v")):
        result = lint(path.stem)
        status = "clean" if result.returncode == 0 and "%Warning" not in result.stderr else "FINDINGS"
        print(f"{path.name}: {status} (waived: {', '.join(WAIVERS)})")
        if status != "clean":
            failed = 1
            print(result.stderr)
    return failed


if __name__ == "__main__":
    sys.exit(main())
