"""cocotb bench of one `velcro_conv2d` instance, driven only through its ports (rtl/README.md).

Stimulus knobs come from the environment so pytest can parametrize them:
VELCRO_SEED, VELCRO_DENSITY (fraction of compressed outputs), VELCRO_STALLS (1 = random input
idle and output backpressure), VELCRO_FRAMES (frames per run), VELCRO_RESULTS (a JSON file the
measured cycles are appended to, for `make sim`).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from model.hw import cycles, golden, spec
from model.hw.golden import ConvConfig
from model.hw.spec import H, K, W
from sim.benches import common
from sim.benches.common import CLOCK_PS, FRAME_TIMEOUT_CYCLES, env_float, env_int, random_ifmap


BUSY = spec.REG["STATUS"].field("BUSY").mask
FRAME_ERROR = spec.REG["STATUS"].field("FRAME_ERROR").mask
BEAT_BYTES = spec.PIXELS_PER_BEAT


class Conv2dTB:
    """Bus models, reset, registers and an independent cycle monitor for one instance."""

    def __init__(self, dut):
        self.dut = dut
        self.log = dut._log
        self.axil = common.start_clock_and_bus(dut)
        self.regs = common.Registers(self.axil)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
        for model in (self.source, self.sink):
            model.log.setLevel(logging.WARNING)  # one line per beat would drown the results
        self.cycle = 0
        self.input_first_beats: list[int] = []  # cycle of each input frame's first handshake
        self.output_last_beats: list[int] = []  # cycle of each output frame's last handshake
        self.output_last_times_ps: list[int] = []  # and its simulation time, for waveform windows
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        """Record handshake cycles on both streams, independently of the core's counters."""
        dut = self.dut
        input_beat = 0
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if int(dut.rst.value):
                input_beat = 0
                continue
            if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
                if input_beat == 0:
                    self.input_first_beats.append(self.cycle)
                input_beat = 0 if int(dut.s_axis_tlast.value) else input_beat + 1
            if int(dut.m_axis_tvalid.value) and int(dut.m_axis_tready.value) and int(dut.m_axis_tlast.value):
                self.output_last_beats.append(self.cycle)
                self.output_last_times_ps.append(int(get_sim_time("ps")))

    async def reset(self) -> None:
        await common.reset(self.dut)
        self.input_first_beats.clear()
        self.output_last_beats.clear()
        self.output_last_times_ps.clear()

    def set_stalls(self, seed: int) -> None:
        """Random idle cycles on the input and backpressure on the output (about 1 in 3)."""
        rng = random.Random(seed)
        self.source.set_pause_generator(itertools.cycle([rng.random() < 0.3 for _ in range(997)]))
        self.sink.set_pause_generator(itertools.cycle([rng.random() < 0.35 for _ in range(1009)]))

    async def send(self, ifmap: np.ndarray) -> None:
        await self.source.send(AxiStreamFrame(np.asarray(ifmap, dtype=np.uint8).tobytes()))

    async def receive(self) -> np.ndarray:
        frame = await with_timeout(self.sink.recv(), FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")
        data = bytes(frame.tdata)
        assert len(data) == H * W, f"output frame has {len(data)} bytes, expected {H * W}"
        return np.frombuffer(data, dtype=np.uint8).reshape(H, W)

    async def run_frames(self, cfg: ConvConfig, ifmaps: list[np.ndarray]) -> None:
        """Send frames back to back and check every output bit against the golden model."""
        for x in ifmaps:
            await self.send(x)
        for n, x in enumerate(ifmaps):
            got = await self.receive()
            expect = golden.conv2d(x, cfg)
            if not np.array_equal(got, expect):
                bad = np.argwhere(got != expect)
                y, xx = bad[0]
                raise AssertionError(
                    f"frame {n}: {len(bad)} outputs differ; first at (y={y}, x={xx}): "
                    f"got {got[y, xx]}, expected {expect[y, xx]}"
                )

    async def check_counters(self, cfg: ConvConfig) -> dict:
        computed = await self.regs.read("LAST_COMPUTED")
        macs = await self.regs.read("LAST_MACS")
        assert computed == cfg.computed_outputs, f"LAST_COMPUTED {computed} != {cfg.computed_outputs}"
        assert macs == spec.MACS_PER_OUTPUT * computed, f"LAST_MACS {macs} != {spec.MACS_PER_OUTPUT} x {computed}"
        return {"computed": computed, "macs": macs, "last_cycles": await self.regs.read("LAST_CYCLES")}


def record(result: dict) -> None:
    path = os.environ.get("VELCRO_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(result) + "\n")


def read_back(reg: spec.Register, value: int) -> int:
    """What a register reads after a full-word write of `value`: `width` bits kept, maybe sign-extended."""
    kept = value & ((1 << reg.width) - 1)
    if reg.sign_extend and kept >> (reg.width - 1):
        kept |= 0xFFFFFFFF & ~((1 << reg.width) - 1)
    return kept


@cocotb.test()
async def test_registers(dut):
    """Identity, reset values, stored widths, byte strobes, unmapped addresses never hang."""
    tb = Conv2dTB(dut)
    regs = tb.regs
    await tb.reset()
    assert await regs.read("ID") == spec.ID_VALUE
    assert await regs.read("GEOMETRY") == spec.GEOMETRY_VALUE
    for reg in spec.REGISTERS:
        if reg.reset is not None:
            for i in range(reg.count):
                got = await regs.read(reg.name, i)
                assert got == reg.reset, f"{reg.name}[{i}] resets to 0x{got:08x}, not 0x{reg.reset:08x}"
    # Every writable word keeps its `width` bits (W sign-extends); the first and last word of arrays.
    for reg in (r for r in spec.REGISTERS if r.access == "RW"):
        for i in sorted({0, reg.count - 1}):
            for value in (0xFFFFFFFF, 0x12345680, 0xA5A5A5A5 ^ (i << 4)):
                await regs.write(reg.name, value, i)
                got = await regs.read(reg.name, i)
                assert got == read_back(reg, value), f"{reg.name}[{i}] <- 0x{value:08x} reads 0x{got:08x}"
    await regs.write("BIAS", -123456)
    assert await regs.read("BIAS") == (-123456) & 0xFFFFFFFF
    # wstrb is honoured per byte.
    await regs.write_bytes(spec.addr("BIAS") + 1, b"\xaa")
    assert await regs.read("BIAS") == ((-123456) & 0xFFFF00FF) | 0xAA00
    await regs.write("CONTROL", 0)
    assert await regs.read("CONTROL") == 0
    # MASK and AVG read back what was written, through byte strobes too.
    last_mask = spec.REG["MASK"].count - 1
    await regs.write("MASK", 0xDEADBEEF, last_mask)
    assert await regs.read("MASK", last_mask) == 0xDEADBEEF
    last_avg = spec.REG["AVG"].count - 1
    await regs.write("AVG", 0, last_avg)
    await regs.write_bytes(spec.addr("AVG", last_avg) + 2, b"\x5a")
    await regs.write_bytes("AVG", b"\x01\x02", last_avg)
    assert await regs.read("AVG", last_avg) == 0x5A0201
    # Unmapped addresses (every gap of the map): OKAY, read 0, and the bus keeps working.
    for offset in common.unmapped_probes():
        await regs.write(offset, 0xFFFFFFFF)
        assert await regs.read(offset) == 0, f"unmapped 0x{offset:04x} must read 0"
    assert await regs.read("ID") == spec.ID_VALUE


@cocotb.test()
async def test_random_frames(dut):
    """Random configuration at VELCRO_DENSITY: bit-exact outputs, counters, cycles vs the model."""
    seed = env_int("VELCRO_SEED", 1)
    density = env_float("VELCRO_DENSITY", 0.3)
    stalls = bool(env_int("VELCRO_STALLS", 0))
    n_frames = env_int("VELCRO_FRAMES", 3)
    rng = np.random.default_rng(seed)
    tb = Conv2dTB(dut)
    await tb.reset()
    cfg = golden.random_config(rng, density)
    await tb.regs.configure(cfg)
    computed = cfg.computed_outputs

    # One isolated frame: LAST_CYCLES must equal the cycle model (only without stalls).
    await tb.run_frames(cfg, [random_ifmap(rng)])
    counters = await tb.check_counters(cfg)
    assert tb.output_last_beats[-1] - tb.input_first_beats[-1] == counters["last_cycles"], (
        "LAST_CYCLES disagrees with the bench's own handshake monitor"
    )
    if not stalls:
        assert counters["last_cycles"] == cycles.frame_latency(computed), (
            f"LAST_CYCLES {counters['last_cycles']} != model {cycles.frame_latency(computed)} (c={computed})"
        )

    # Back-to-back frames: steady-state interval equals the model.
    if stalls:
        tb.set_stalls(seed)
    tb.output_last_beats.clear()
    await tb.run_frames(cfg, [random_ifmap(rng) for _ in range(n_frames)])
    await tb.check_counters(cfg)
    assert await tb.regs.read("FRAMES") == 1 + n_frames
    result = {"density": density, "computed": computed, "stalls": stalls, **counters,
              "model_latency": cycles.frame_latency(computed)}  # fmt: skip
    if not stalls and n_frames >= 3:
        gaps = np.diff(tb.output_last_beats)
        interval = int(gaps[-1])
        assert all(g == interval for g in gaps[1:]), f"intervals not steady: {gaps.tolist()}"
        assert interval == cycles.frame_interval(computed), (
            f"steady-state interval {interval} != model {cycles.frame_interval(computed)} (c={computed})"
        )
        result.update(interval=interval, model_interval=cycles.frame_interval(computed))
    assert (await tb.regs.read("STATUS")) == 0, "no error and idle after well-formed frames"
    record(result)


def edge_cases(rng: np.random.Generator) -> dict[str, tuple[ConvConfig, np.ndarray]]:
    """Named corner cases of the arithmetic and the skip (model/hw/golden.py); each is (configuration, IFMAP)."""
    ones = np.ones((H, W), bool)
    none = np.zeros((H, W), bool)
    avg = rng.integers(0, 256, size=(H, W))
    x = random_ifmap(rng)
    w = rng.integers(-128, 128, size=(K, K))
    border = none.copy()
    border[1:-1, 1:-1] = True  # only the border is computed
    cases = {
        "all_compressed": (ConvConfig(w, 0, 1, 8, ones, avg), x),
        "none_compressed": (ConvConfig(w, 100, 300, 14, none, avg), x),
        "borders_only": (ConvConfig(np.full((K, K), 127), 0, 1, 9, border, avg), np.full((H, W), 255, np.uint8)),
        "saturate_255": (ConvConfig(np.full((K, K), 127), 0, 65535, 0, none, avg), x),
        "saturate_0": (ConvConfig(np.full((K, K), -128), 0, 65535, 4, none, avg), x),
        "negative_acc": (ConvConfig(w, -200000, 40000, 16, rng.random((H, W)) < 0.5, avg), x),
        "shift_0": (ConvConfig(np.eye(K, dtype=int) - 1, 300, 1, 0, none, avg), x),
        "mult_65535": (ConvConfig(w, 12345, 65535, 31, none, avg), x),
        "bias_wraps": (ConvConfig(np.full((K, K), 127), 2**31 - 1000, 1, 20, none, avg), x),
        "skip_disabled": (ConvConfig(w, 0, 1000, 16, ones, avg, skip_en=False), x),
        "checkerboard": (ConvConfig(w, 0, 1000, 16, (np.indices((H, W)).sum(0) % 2) == 1, avg), x),
    }
    return cases


@cocotb.test()
async def test_edge_cases(dut):
    """Named corner cases, each on an isolated frame: outputs, counters and LAST_CYCLES."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 7))
    for name, (cfg, x) in edge_cases(rng).items():
        tb.log.info("edge case %s", name)
        await tb.regs.configure(cfg)
        try:
            await tb.run_frames(cfg, [x])
        except AssertionError as err:
            raise AssertionError(f"edge case {name}: {err}") from None
        counters = await tb.check_counters(cfg)
        assert counters["last_cycles"] == cycles.frame_latency(cfg.computed_outputs), name


@cocotb.test()
async def test_malformed_frames(dut):
    """Early and late tlast set FRAME_ERROR, never hang, and the next frame is exact."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 3))
    cfg = golden.random_config(rng, 0.5)
    await tb.regs.configure(cfg)

    # tlast on beat 99: dropped, no output, not counted.
    await tb.source.send(AxiStreamFrame(bytes(100 * BEAT_BYTES)))
    await tb.run_frames(cfg, [random_ifmap(rng)])
    assert await tb.regs.read("FRAMES") == 1
    status = await tb.regs.read("STATUS")
    assert status & FRAME_ERROR, "early tlast must set FRAME_ERROR"
    await tb.regs.write("STATUS", FRAME_ERROR)  # write 1 to clear
    assert await tb.regs.read("STATUS") == 0

    # A 1-beat frame (tlast on beat 0) as well.
    await tb.source.send(AxiStreamFrame(bytes(BEAT_BYTES)))
    await tb.run_frames(cfg, [random_ifmap(rng)])
    assert (await tb.regs.read("STATUS")) & FRAME_ERROR
    await tb.regs.write("STATUS", FRAME_ERROR)

    # No tlast on beat 511: processed, the extra beats up to tlast are dropped.
    x = random_ifmap(rng)
    long_frame = x.tobytes() + bytes(rng.integers(0, 256, 37 * BEAT_BYTES, dtype=np.uint8))
    await tb.source.send(AxiStreamFrame(long_frame))
    got = await tb.receive()
    assert np.array_equal(got, golden.conv2d(x, cfg)), "the frame with a late tlast is still processed"
    assert (await tb.regs.read("STATUS")) & FRAME_ERROR, "missing tlast on beat 511 must set FRAME_ERROR"
    await tb.run_frames(cfg, [random_ifmap(rng)])
    assert await tb.regs.read("FRAMES") == 4
    await tb.regs.write("STATUS", FRAME_ERROR)
    assert await tb.regs.read("STATUS") == 0


@cocotb.test()
async def test_write_during_frame(dut):
    """Configuration written while BUSY: the frame in flight completes (its outputs are
    unspecified), nothing hangs, and the next frame uses the new configuration exactly."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 5))
    old = golden.random_config(rng, 0.3)
    new = golden.random_config(rng, 0.6)
    await tb.regs.configure(old)
    await tb.send(random_ifmap(rng))
    await ClockCycles(dut.clk, 700)  # inside the compute stage
    assert (await tb.regs.read("STATUS")) & BUSY, "BUSY while a frame is in flight"
    await tb.regs.configure(new)
    await tb.receive()  # in-flight frame: structure preserved, values unspecified
    assert (await tb.regs.read("STATUS")) & BUSY == 0
    await tb.run_frames(new, [random_ifmap(rng)])
    await tb.check_counters(new)


@cocotb.test()
async def test_sweep_point(dut):
    """One point of the C sweep: back-to-back frames from VELCRO_CONFIG, checked bit-exact, with the
    steady-state interval and the simulation times of each frame's end recorded for the reports."""
    from sim.harness.bench_files import read_runs

    runs, ifmaps = read_runs(os.environ["VELCRO_CONFIG"])
    cfg, ifmaps = runs[0][0], list(ifmaps[0])
    tb = Conv2dTB(dut)
    await tb.reset()
    await tb.regs.configure(cfg)
    tb.output_last_beats.clear()
    tb.output_last_times_ps.clear()
    await tb.run_frames(cfg, ifmaps)
    counters = await tb.check_counters(cfg)
    gaps = np.diff(tb.output_last_beats).tolist()
    assert gaps[-1] == cycles.frame_interval(cfg.computed_outputs), (gaps, cfg.computed_outputs)
    record({"computed": cfg.computed_outputs, "interval": gaps[-1], "intervals": gaps, **counters,
            "frame_end_ps": tb.output_last_times_ps, "clock_ps": CLOCK_PS})  # fmt: skip
