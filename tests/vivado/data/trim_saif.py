"""Trim a SAIF file written by Verilator's --trace-saif into a small test fixture.

    python3 tests/vivado/data/trim_saif.py IN.saif OUT.saif [--keep-children bridge,conv0,conv15]

Every kept line is copied verbatim: the header, every INSTANCE and NET bracket and, per NET block,
a selection of its net lines (the first three and the last, clk and rst, two names with a '$'
inside, two unpacked-array bits such as storage[7]\\[0\\], and up to four nets that toggled).
--keep-children keeps only the named children (and their whole subtrees) of the design's top
instance; the $rootio instance is always kept. Relies on Verilator's layout: one item per line,
an instance's closing ')' at the indentation of its '(INSTANCE'.
"""
from __future__ import annotations

import argparse
import re


def select(block: list[str]) -> list[str]:
    keep, dollar, unpacked, toggled = [], 0, 0, 0
    for i, line in enumerate(block):
        name = re.match(r"\s*\((\S+) ", line).group(1)
        pick = i < 3 or i == len(block) - 1 or name in ("clk", "rst")
        if not pick and re.search(r".\$", name.split("\\[")[0]) and dollar < 2:
            dollar, pick = dollar + 1, True
        if not pick and re.search(r"[^\\]\[", name) and unpacked < 2:
            unpacked, pick = unpacked + 1, True
        if not pick and " (TC 0))" not in line and toggled < 4:
            toggled, pick = toggled + 1, True
        if pick:
            keep.append(line)
    return keep


def trim(lines: list[str], keep_children: set[str] | None) -> list[str]:
    out: list[str] = []
    block: list[str] | None = None
    stack: list[tuple[str, int]] = []  # (instance name, indentation)
    skip_indent: int | None = None
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        s = line.strip()
        if skip_indent is not None:
            if s == ")" and indent == skip_indent:
                skip_indent = None
            continue
        if block is not None:
            if s == ")":
                out += select(block)
                out.append(line)
                block = None
            else:
                block.append(line)
            continue
        m = re.fullmatch(r"\(INSTANCE (\S+)", s)
        if m:
            top = stack[0][0] if stack else None
            if keep_children is not None and len(stack) == 1 and top != "$rootio" and m.group(1) not in keep_children:
                skip_indent = indent
                continue
            stack.append((m.group(1), indent))
        elif s == ")" and stack and indent == stack[-1][1]:
            stack.pop()
        out.append(line)
        if s == "(NET":
            block = []
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--keep-children", help="comma-separated children of the design's top instance to keep")
    args = parser.parse_args()
    lines = open(args.src).read().splitlines(keepends=True)
    keep = set(args.keep_children.split(",")) if args.keep_children else None
    open(args.dst, "w").write("".join(trim(lines, keep)))


if __name__ == "__main__":
    main()
