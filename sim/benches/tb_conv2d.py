"""cocotb bench of one `velcro_conv2d` instance, driven only through its DESIGN §4 ports.

Stimulus knobs come from the environment so pytest can parametrize them:
VELCRO_SEED, VELCRO_DENSITY (fraction of compressed outputs), VELCRO_STALLS (1 = random input
idle and output backpressure), VELCRO_FRAMES (frames per run), VELCRO_RESULTS (a JSON file the
measured cycles are appended to, for `make sim`).
"""
from __future__ import annotations

import itertools
import logging
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from model.hw import cycles, golden
from model.hw.golden import H, W, ConvConfig

REG = {
    "ID": 0x00, "GEOMETRY": 0x04, "CONTROL": 0x08, "STATUS": 0x0C, "FRAMES": 0x10,
    "LAST_CYCLES": 0x14, "LAST_MACS": 0x18, "LAST_COMPUTED": 0x1C, "W0": 0x20, "BIAS": 0x44,
    "MULT": 0x48, "SHIFT": 0x4C, "MASK": 0x400, "AVG": 0x1000,
}  # fmt: skip
CLOCK_PS = int(os.environ.get("VELCRO_CLOCK_PS", 4000))  # SAIF runs use the U280 clock's period
FRAME_TIMEOUT_CYCLES = 20_000  # > the slowest frame (about 5,200 cycles); a hang fails, never waits


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Conv2dTB:
    """Bus models, reset, configuration and an independent cycle monitor for one instance."""

    def __init__(self, dut, prefix: str = ""):
        self.dut = dut
        self.log = dut._log
        Clock(dut.clk, CLOCK_PS, unit="ps").start()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
        for model in (self.axil.write_if, self.axil.read_if, self.source, self.sink):
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
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 5)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)
        self.input_first_beats.clear()
        self.output_last_beats.clear()
        self.output_last_times_ps.clear()

    def set_stalls(self, seed: int) -> None:
        """Random idle cycles on the input and backpressure on the output (about 1 in 3)."""
        rng = random.Random(seed)
        self.source.set_pause_generator(itertools.cycle([rng.random() < 0.3 for _ in range(997)]))
        self.sink.set_pause_generator(itertools.cycle([rng.random() < 0.35 for _ in range(1009)]))

    async def read(self, name_or_addr) -> int:
        addr = REG[name_or_addr] if isinstance(name_or_addr, str) else name_or_addr
        return (await self.axil.read_dword(addr))

    async def write(self, name_or_addr, value: int) -> None:
        addr = REG[name_or_addr] if isinstance(name_or_addr, str) else name_or_addr
        await self.axil.write_dword(addr, value & 0xFFFFFFFF)

    async def configure(self, cfg: ConvConfig) -> None:
        await self.write("CONTROL", int(cfg.skip_en))
        for i, w in enumerate(np.asarray(cfg.weights).reshape(-1)):
            await self.write(REG["W0"] + 4 * i, int(w))
        await self.write("BIAS", int(cfg.bias))
        await self.write("MULT", int(cfg.mult))
        await self.write("SHIFT", int(cfg.shift))
        avg_bytes = np.asarray(cfg.avg, dtype=np.uint8).tobytes()
        await self.axil.write(REG["MASK"], golden.mask_bytes(cfg.mask))
        await self.axil.write(REG["AVG"], avg_bytes)

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
        computed = await self.read("LAST_COMPUTED")
        macs = await self.read("LAST_MACS")
        assert computed == cfg.computed_outputs, f"LAST_COMPUTED {computed} != {cfg.computed_outputs}"
        assert macs == golden.MACS_PER_OUTPUT * computed, f"LAST_MACS {macs} != 9 x {computed}"
        return {"computed": computed, "macs": macs, "last_cycles": await self.read("LAST_CYCLES")}

    def measured_interval(self) -> int:
        """Steady-state interval: the last gap between output frames (all gaps must agree past
        the pipeline fill, which the caller checks)."""
        gaps = np.diff(self.output_last_beats)
        return int(gaps[-1])


def random_ifmap(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(H, W), dtype=np.uint8)


def record(result: dict) -> None:
    path = os.environ.get("VELCRO_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(result) + "\n")


@cocotb.test()
async def test_registers(dut):
    """Identity, reset values, byte strobes, sign extension, unmapped addresses never hang."""
    tb = Conv2dTB(dut)
    await tb.reset()
    assert await tb.read("ID") == 0x56454C43
    assert await tb.read("GEOMETRY") == 64 | 64 << 8 | 3 << 16 | 8 << 24
    assert await tb.read("CONTROL") == 1, "SKIP_EN resets to 1"
    for name in ("STATUS", "FRAMES", "LAST_CYCLES", "LAST_MACS", "LAST_COMPUTED", "BIAS", "MULT", "SHIFT"):
        assert await tb.read(name) == 0, f"{name} must reset to 0"
    for i in range(9):
        assert await tb.read(REG["W0"] + 4 * i) == 0
    # Weights are int8: reads sign-extend, upper bytes are not stored.
    await tb.write(REG["W0"] + 8, 0x12345680)
    assert await tb.read(REG["W0"] + 8) == 0xFFFFFF80
    await tb.write("BIAS", -123456)
    assert await tb.read("BIAS") == (-123456) & 0xFFFFFFFF
    await tb.write("MULT", 0xABCD1234)
    assert await tb.read("MULT") == 0x1234
    await tb.write("SHIFT", 0xFFFFFFFF)
    assert await tb.read("SHIFT") == 31
    # wstrb is honoured per byte.
    await tb.axil.write(REG["BIAS"] + 1, b"\xaa")
    assert await tb.read("BIAS") == ((-123456) & 0xFFFF00FF) | 0xAA00
    await tb.axil.write_dword(REG["CONTROL"], 0)
    assert await tb.read("CONTROL") == 0
    # MASK and AVG read back what was written, through byte strobes too.
    await tb.write(REG["MASK"] + 4 * 127, 0xDEADBEEF)
    assert await tb.read(REG["MASK"] + 4 * 127) == 0xDEADBEEF
    await tb.axil.write(REG["AVG"] + 4 * 1023 + 2, b"\x5a")
    await tb.axil.write(REG["AVG"] + 4 * 1023, b"\x01\x02")
    assert (await tb.read(REG["AVG"] + 4 * 1023)) & 0x00FFFFFF == 0x5A0201
    # Unmapped addresses: OKAY, read 0, and the bus keeps working.
    for addr in (0x0050, 0x03FC, 0x0600, 0x0800, 0x0FFC):
        await tb.write(addr, 0xFFFFFFFF)
        assert await tb.read(addr) == 0, f"unmapped 0x{addr:04x} must read 0"
    assert await tb.read("ID") == 0x56454C43


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
    await tb.configure(cfg)
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
    assert await tb.read("FRAMES") == 1 + n_frames
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
    assert (await tb.read("STATUS")) == 0, "no error and idle after well-formed frames"
    record(result)


def edge_cases(rng: np.random.Generator) -> dict[str, tuple[ConvConfig, np.ndarray]]:
    """Named corner cases of DESIGN §3; each is (configuration, IFMAP)."""
    ones = np.ones((H, W), bool)
    none = np.zeros((H, W), bool)
    avg = rng.integers(0, 256, size=(H, W))
    x = random_ifmap(rng)
    w = rng.integers(-128, 128, size=(3, 3))
    border = none.copy()
    border[1:-1, 1:-1] = True  # only the border is computed
    cases = {
        "all_compressed": (ConvConfig(w, 0, 1, 8, ones, avg), x),
        "none_compressed": (ConvConfig(w, 100, 300, 14, none, avg), x),
        "borders_only": (ConvConfig(np.full((3, 3), 127), 0, 1, 9, border, avg), np.full((H, W), 255, np.uint8)),
        "saturate_255": (ConvConfig(np.full((3, 3), 127), 0, 65535, 0, none, avg), x),
        "saturate_0": (ConvConfig(np.full((3, 3), -128), 0, 65535, 4, none, avg), x),
        "negative_acc": (ConvConfig(w, -200000, 40000, 16, rng.random((H, W)) < 0.5, avg), x),
        "shift_0": (ConvConfig(np.eye(3, dtype=int) - 1, 300, 1, 0, none, avg), x),
        "mult_65535": (ConvConfig(w, 12345, 65535, 31, none, avg), x),
        "bias_wraps": (ConvConfig(np.full((3, 3), 127), 2**31 - 1000, 1, 20, none, avg), x),
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
        await tb.configure(cfg)
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
    await tb.configure(cfg)

    # tlast on beat 99: dropped, no output, not counted.
    await tb.source.send(AxiStreamFrame(bytes(100 * 8)))
    await tb.run_frames(cfg, [random_ifmap(rng)])
    assert await tb.read("FRAMES") == 1
    status = await tb.read("STATUS")
    assert status & 2, "early tlast must set FRAME_ERROR"
    await tb.write("STATUS", 2)  # write 1 to clear
    assert await tb.read("STATUS") == 0

    # A 1-beat frame (tlast on beat 0) as well.
    await tb.source.send(AxiStreamFrame(bytes(8)))
    await tb.run_frames(cfg, [random_ifmap(rng)])
    assert (await tb.read("STATUS")) & 2
    await tb.write("STATUS", 2)

    # No tlast on beat 511: processed, the extra beats up to tlast are dropped.
    x = random_ifmap(rng)
    long_frame = x.tobytes() + bytes(rng.integers(0, 256, 37 * 8, dtype=np.uint8))
    await tb.source.send(AxiStreamFrame(long_frame))
    got = await tb.receive()
    assert np.array_equal(got, golden.conv2d(x, cfg)), "the frame with a late tlast is still processed"
    assert (await tb.read("STATUS")) & 2, "missing tlast on beat 511 must set FRAME_ERROR"
    await tb.run_frames(cfg, [random_ifmap(rng)])
    assert await tb.read("FRAMES") == 4
    await tb.write("STATUS", 2)
    assert await tb.read("STATUS") == 0


@cocotb.test()
async def test_write_during_frame(dut):
    """Configuration written while BUSY: the frame in flight completes (its outputs are
    unspecified), nothing hangs, and the next frame uses the new configuration exactly."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 5))
    old = golden.random_config(rng, 0.3)
    new = golden.random_config(rng, 0.6)
    await tb.configure(old)
    await tb.send(random_ifmap(rng))
    await ClockCycles(dut.clk, 700)  # inside the compute stage
    assert (await tb.read("STATUS")) & 1, "BUSY while a frame is in flight"
    await tb.configure(new)
    await tb.receive()  # in-flight frame: structure preserved, values unspecified
    assert (await tb.read("STATUS")) & 1 == 0
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
    await tb.configure(cfg)
    tb.output_last_beats.clear()
    tb.output_last_times_ps.clear()
    await tb.run_frames(cfg, ifmaps)
    counters = await tb.check_counters(cfg)
    gaps = np.diff(tb.output_last_beats).tolist()
    assert gaps[-1] == cycles.frame_interval(cfg.computed_outputs), (gaps, cfg.computed_outputs)
    record({"computed": cfg.computed_outputs, "interval": gaps[-1], "intervals": gaps, **counters,
            "frame_end_ps": tb.output_last_times_ps, "clock_ps": CLOCK_PS})  # fmt: skip
