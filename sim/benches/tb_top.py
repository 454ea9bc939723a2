"""cocotb bench of `velcro_top`, driven only through its DESIGN §4 ports.

All instances run at once, each with its own configuration. cocotbext-axi's stream models cannot
bind to one slice of a vector port, so `StreamSlices` drives and samples all slices itself, once
per clock edge; configuration goes through cocotbext-axi's AxiLiteMaster on the single s_axil port.
"""
from __future__ import annotations

import logging
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from model.hw import cycles, golden
from model.hw.golden import BEATS_PER_FRAME, MACS_PER_OUTPUT, ConvConfig
from sim.benches.tb_conv2d import CLOCK_PS, FRAME_TIMEOUT_CYCLES, REG, random_ifmap

INSTANCE_STRIDE = 0x2000
BEAT_MASK = (1 << 64) - 1


class StreamSlices:
    """Per-instance AXI4-Stream source and sink on the concatenated vectors, in one coroutine.

    Handshakes are sampled at each rising edge; instances in `stalls` get random input idle cycles
    and output backpressure (about 1 in 3). Records each frame's first input and last output
    handshake cycle per instance, independently of the core's counters.
    """

    def __init__(self, dut, n: int, stalls: set[int], seed: int):
        self.dut, self.n, self.stalls = dut, n, stalls
        self.rng = random.Random(seed)
        self.pending: list[list[int]] = [[] for _ in range(n)]  # input beats still to send
        self.sent = [0] * n  # beats of the current input frame already taken
        self.received: list[list[int]] = [[] for _ in range(n)]  # beats of the current output frame
        self.frames: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.first_in: list[list[int]] = [[] for _ in range(n)]
        self.last_out: list[list[int]] = [[] for _ in range(n)]
        self.done = Event()
        self.expected = 0
        self.cycle = 0
        self.task = cocotb.start_soon(self._run())

    def send(self, i: int, ifmap: np.ndarray) -> None:
        self.pending[i] += golden.frame_to_beats(ifmap)
        self.expected += 1
        self.done.clear()

    async def _run(self) -> None:
        dut, n = self.dut, self.n
        valid = ready = 0
        data = [0] * n
        last = 0
        driven = None  # what the ports hold: rewriting a 1024-bit vector every cycle is slow
        all_ready = (1 << n) - 1
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            taken = valid & int(dut.s_axis_tready.value)
            out = int(dut.m_axis_tvalid.value) & ready
            if not (taken or out or self.stalls) and ready == all_ready:
                waiting = sum(1 << i for i in range(n) if self.pending[i])
                if valid == waiting:
                    continue  # nothing moved and nothing new to offer: the ports stay as they are
            if out:
                m_data, m_last = int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)
            for i in range(n):
                bit = 1 << i
                if taken & bit:
                    if self.sent[i] == 0:
                        self.first_in[i].append(self.cycle)
                    self.pending[i].pop(0)
                    self.sent[i] = 0 if last & bit else self.sent[i] + 1
                    valid &= ~bit
                if out & bit:
                    self.received[i].append((m_data >> (64 * i)) & BEAT_MASK)
                    if m_last & bit:
                        self.last_out[i].append(self.cycle)
                        self.frames[i].append(golden.beats_to_frame(self.received[i]))
                        self.received[i] = []
                        if sum(map(len, self.frames)) == self.expected:
                            self.done.set()
                stalled = i in self.stalls and self.rng.random() < 0.3
                if not valid & bit and self.pending[i] and not stalled:  # valid holds until taken
                    valid |= bit
                    data[i] = self.pending[i][0]
                    last = last & ~bit | (bit if self.sent[i] == BEATS_PER_FRAME - 1 else 0)
                stalled = i in self.stalls and self.rng.random() < 0.35
                ready = ready & ~bit | (0 if stalled else bit)
            state = (valid, last, tuple(data), ready)
            if state != driven:
                dut.s_axis_tvalid.value = valid
                dut.s_axis_tlast.value = last
                dut.s_axis_tdata.value = sum(d << (64 * i) for i, d in enumerate(data))
                dut.m_axis_tready.value = ready
                driven = state


class TopTB:
    """Clock, reset and register access to instance i at i·0x2000 through the one AXI4-Lite port."""

    def __init__(self, dut):
        self.dut = dut
        self.n = len(dut.s_axis_tvalid)
        Clock(dut.clk, CLOCK_PS, unit="ps").start()
        dut.s_axis_tvalid.value = 0
        dut.m_axis_tready.value = 0
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        for model in (self.axil.write_if, self.axil.read_if):
            model.log.setLevel(logging.WARNING)  # one line per transfer would drown the results

    async def reset(self) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 5)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    @staticmethod
    def addr(i: int, reg) -> int:
        return i * INSTANCE_STRIDE + (REG[reg] if isinstance(reg, str) else reg)

    async def read(self, i: int, reg) -> int:
        return await self.axil.read_dword(self.addr(i, reg))

    async def write(self, i: int, reg, value: int) -> None:
        await self.axil.write_dword(self.addr(i, reg), value & 0xFFFFFFFF)

    async def write_mask(self, i: int, mask: np.ndarray) -> None:
        await self.axil.write(self.addr(i, "MASK"), golden.mask_bytes(mask))  # one call per region: pipelined

    async def configure(self, i: int, cfg: ConvConfig, *, averages: bool = True) -> None:
        """Write instance i's registers, MASK and (unless told otherwise: they reset to 0) AVG."""
        await self.write(i, "CONTROL", int(cfg.skip_en))
        for k, w in enumerate(np.asarray(cfg.weights).reshape(-1)):
            await self.write(i, REG["W0"] + 4 * k, int(w))
        for reg, value in (("BIAS", cfg.bias), ("MULT", cfg.mult), ("SHIFT", cfg.shift)):
            await self.write(i, reg, int(value))
        await self.write_mask(i, cfg.mask)
        if averages:
            await self.axil.write(self.addr(i, "AVG"), np.asarray(cfg.avg, dtype=np.uint8).tobytes())


@cocotb.test()
async def test_address_decode(dut):
    """Every instance answers its own ID and GEOMETRY; a write reaches only the addressed instance."""
    tb = TopTB(dut)
    await tb.reset()
    assert tb.n == 16
    for i in range(tb.n):
        assert await tb.read(i, "ID") == 0x56454C43, f"instance {i} ID"
        assert await tb.read(i, "GEOMETRY") == 64 | 64 << 8 | 3 << 16 | 8 << 24, f"instance {i} GEOMETRY"
    await tb.write(3, REG["W0"] + 4 * 4, -5)
    assert await tb.read(3, REG["W0"] + 4 * 4) == (-5) & 0xFFFFFFFF
    for i in (2, 4):
        assert await tb.read(i, REG["W0"] + 4 * 4) == 0, f"instance {i} saw instance 3's weight"
    for i in range(tb.n):
        await tb.write(i, "BIAS", 0x1000 * i + 7)
    for i in range(tb.n):
        assert await tb.read(i, "BIAS") == 0x1000 * i + 7, f"instance {i} BIAS"
    await tb.axil.write(tb.addr(9, "MASK") + 4 * 127, b"\xef\xbe")  # byte strobes pass through
    assert await tb.read(9, REG["MASK"] + 4 * 127) & 0xFFFF == 0xBEEF
    assert await tb.read(9, 0x50) == 0, "unmapped inside an instance reads 0"


@cocotb.test()
async def test_all_instances_concurrently(dut):
    """Sixteen different configurations, a frame in flight on every instance at once, stalls on
    some: outputs bit-exact per instance, counters, LAST_CYCLES equal to the model without stalls."""
    tb = TopTB(dut)
    await tb.reset()
    rng = np.random.default_rng(11)
    densities = np.linspace(0.0, 0.95, tb.n)
    configs = [golden.random_config(rng, float(d)) for d in densities]
    for i, cfg in enumerate(configs):
        await tb.configure(i, cfg)
    stalls = {i for i in range(tb.n) if i % 4 == 3}
    streams = StreamSlices(dut, tb.n, stalls, seed=5)
    ifmaps = [random_ifmap(rng) for _ in range(tb.n)]
    for i, x in enumerate(ifmaps):
        streams.send(i, x)
    await with_timeout(streams.done.wait(), 2 * FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")

    for i, (cfg, x) in enumerate(zip(configs, ifmaps)):
        got, expect = streams.frames[i][0], golden.conv2d(x, cfg)
        assert np.array_equal(got, expect), f"instance {i}: {np.count_nonzero(got != expect)} outputs differ"
        computed = await tb.read(i, "LAST_COMPUTED")
        assert computed == cfg.computed_outputs, f"instance {i}: LAST_COMPUTED {computed} != {cfg.computed_outputs}"
        assert await tb.read(i, "LAST_MACS") == MACS_PER_OUTPUT * computed, f"instance {i}: LAST_MACS"
        assert await tb.read(i, "FRAMES") == 1, f"instance {i}: FRAMES"
        last_cycles = await tb.read(i, "LAST_CYCLES")
        assert last_cycles == streams.last_out[i][0] - streams.first_in[i][0], (
            f"instance {i}: LAST_CYCLES {last_cycles} disagrees with the bench's handshake monitor"
        )
        if i not in stalls:
            assert last_cycles == cycles.frame_latency(computed), (
                f"instance {i}: LAST_CYCLES {last_cycles} != model {cycles.frame_latency(computed)} (c={computed})"
            )
        assert await tb.read(i, "STATUS") == 0, f"instance {i}: idle, no error"


async def run_frames(tb: TopTB, dut, ifmaps: list[list[np.ndarray]]) -> StreamSlices:
    """Send instance i its frames back to back (all instances at once) and wait for every output."""
    streams = StreamSlices(dut, tb.n, set(), seed=0)
    for i, frames in enumerate(ifmaps):
        for x in frames:
            streams.send(i, x)
    longest = max(len(frames) for frames in ifmaps)
    await with_timeout(streams.done.wait(), (longest + 1) * FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")
    streams.task.cancel()  # the next run drives the streams with a driver of its own
    return streams


@cocotb.test()
async def test_runs_from_file(dut):
    """Runs described by VELCRO_CONFIG (sim/harness/bench_files.py), for the C sweep and hardware in the
    loop: configure once, then per run rewrite MASK and let every instance process its IFMAPs.
    Every output is checked against the golden model; OFMAPs (R, 16, K, 64, 64) and each run's
    steady-state interval per instance (R, 16) go to VELCRO_OUTPUT."""
    import os

    from sim.harness.bench_files import read_runs

    runs, ifmaps = read_runs(os.environ["VELCRO_CONFIG"])
    tb = TopTB(dut)
    await tb.reset()
    outputs, intervals = [], []
    for run, configs in enumerate(runs):
        for i, cfg in enumerate(configs):
            if run == 0:
                await tb.configure(i, cfg, averages=not os.environ.get("VELCRO_SKIP_AVG"))
            else:
                await tb.write_mask(i, cfg.mask)
        streams = await run_frames(tb, dut, [list(frames) for frames in ifmaps])
        ofmaps = np.stack([np.stack(streams.frames[i]) for i in range(tb.n)])
        for i, cfg in enumerate(configs):
            for n, x in enumerate(ifmaps[i]):
                assert np.array_equal(ofmaps[i, n], golden.conv2d(x, cfg)), f"run {run}, instance {i}, frame {n}"
        outputs.append(ofmaps)
        intervals.append([int(np.diff(streams.last_out[i])[-1]) for i in range(tb.n)])
    np.savez(os.environ["VELCRO_OUTPUT"], ofmaps=np.stack(outputs), intervals=np.array(intervals))
