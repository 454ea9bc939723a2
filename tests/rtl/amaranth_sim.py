"""Amaranth-simulator helpers shared by the fast-tier RTL tests."""
from __future__ import annotations

from amaranth.sim import Simulator


def simulate(dut, bench) -> None:
    """Run testbench coroutine `bench` on `dut` with one clock."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def scan_trace(dut, max_cycles: int, *, each_cycle=None) -> list[tuple[int, int, int, int]]:
    """Start `dut.scanner` (once its `rows` input has settled) and record (cycle, issue, index, done)
    every cycle from the start until done.

    `each_cycle(ctx, scanner)` runs before each record, for checks that must hold every cycle.
    """
    trace = []

    async def bench(ctx):
        s = dut.scanner
        for _ in range(s.ROWS_SETUP):
            await ctx.tick()
        ctx.set(s.start, 1)
        await ctx.tick()
        ctx.set(s.start, 0)
        for cycle in range(1, max_cycles):
            if each_cycle is not None:
                each_cycle(ctx, s)
            trace.append((cycle, ctx.get(s.issue), ctx.get(s.index), ctx.get(s.done)))
            if ctx.get(s.done):
                break
            await ctx.tick()

    simulate(dut, bench)
    return trace
