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

import dataclasses

import cocotb
import numpy as np
from cocotb.queue import Queue
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
        self.input_first_times_ps: list[int] = []  # simulation time of each input frame's first handshake
        self.frames_out = 0  # output frames completed since reset
        self.inputs_complete = 0  # input frames whose tlast was taken since reset
        self.output_beats = 0  # output beats taken since reset
        self.frame_counters: list[dict] = []  # per output frame, the counters read right after it
        self._done_frames: Queue | None = None
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        """Record handshake cycles on both streams, independently of the core's counters, and fail the
        test when m_axis breaks the AXI4-Stream rule: once TVALID is up, it stays up with TDATA and
        TLAST unchanged until the beat is taken."""
        dut = self.dut
        input_beat = 0
        held = None  # (TDATA, TLAST) of a beat offered but not taken at the last edge
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if int(dut.rst.value):
                input_beat, held = 0, None
                continue
            if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
                if input_beat == 0:
                    self.input_first_beats.append(self.cycle)
                    self.input_first_times_ps.append(int(get_sim_time("ps")))
                if int(dut.s_axis_tlast.value):
                    input_beat = 0
                    self.inputs_complete += 1
                else:
                    input_beat += 1
            out_valid = int(dut.m_axis_tvalid.value)
            if held is not None:
                now = (int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)) if out_valid else None
                assert now == held, (
                    f"cycle {self.cycle}: m_axis changed a beat it offered before it was taken "
                    f"(TVALID {out_valid}, TDATA/TLAST {now} after {held})"
                )
            out_ready = int(dut.m_axis_tready.value)
            held = (int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)) if out_valid and not out_ready else None
            if out_valid and out_ready:
                self.output_beats += 1
                if int(dut.m_axis_tlast.value):
                    self.output_last_beats.append(self.cycle)
                    self.output_last_times_ps.append(int(get_sim_time("ps")))
                    self.frames_out += 1
                    if self._done_frames is not None:
                        self._done_frames.put_nowait(self.frames_out)

    async def reset(self) -> None:
        await common.reset(self.dut)
        self.input_first_beats.clear()
        self.output_last_beats.clear()
        self.output_last_times_ps.clear()
        self.input_first_times_ps.clear()
        self.frames_out = self.inputs_complete = self.output_beats = 0
        self.frame_counters.clear()

    def read_counters_per_frame(self) -> None:
        """From now on, read the frame counters right after every output frame's last handshake.

        They change only at a frame's last OFMAP handshake, and the next frame ends at least 512
        cycles later; FRAMES is read last and must still count this frame, which proves that the
        counters read before it belong to this frame."""
        if self._done_frames is None:
            self._done_frames = Queue()
            cocotb.start_soon(self._read_counters())

    async def _read_counters(self) -> None:
        names = ["LAST_COMPUTED", "LAST_MACS", "LAST_CYCLES", "LAST_PREDICTED"]
        while True:
            frame = await self._done_frames.get()
            values = {name: await self.regs.read(name) for name in names}
            frames = await self.regs.read("FRAMES")
            assert frames == frame, (
                f"FRAMES reads {frames} after output frame {frame}: the counters were read too late to be that frame's"
            )
            self.frame_counters.append({"frame": frame, **values})

    async def counters_of(self, frame: int) -> dict:
        """The counters read after output frame `frame` (1-based count since reset)."""
        for _ in range(200):
            for entry in self.frame_counters:
                if entry["frame"] == frame:
                    return entry
            await ClockCycles(self.dut.clk, 10)
        raise AssertionError(f"no counters were read after output frame {frame}")

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
                assert got == common.read_back(reg, value), f"{reg.name}[{i}] <- 0x{value:08x} reads 0x{got:08x}"
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
    """Random configuration at VELCRO_DENSITY: bit-exact outputs, every frame's counters, and cycles: one
    isolated frame's LAST_CYCLES against the model, then VELCRO_FRAMES back to back (with VELCRO_STALLS,
    random input idle cycles and output backpressure) whose LAST_CYCLES must equal the bench's handshake
    monitor and, without stalls, whose every gap between frame ends must equal the model's interval."""
    seed = env_int("VELCRO_SEED", 1)
    density = env_float("VELCRO_DENSITY", 0.3)
    stalls = bool(env_int("VELCRO_STALLS", 0))
    n_frames = env_int("VELCRO_FRAMES", 5)
    rng = np.random.default_rng(seed)
    tb = Conv2dTB(dut)
    await tb.reset()
    cfg = golden.random_config(rng, density)
    await tb.regs.configure(cfg)
    computed = cfg.computed_outputs
    tb.read_counters_per_frame()

    # One isolated frame, never stalled: LAST_CYCLES equals the cycle model and the monitor.
    await tb.run_frames(cfg, [random_ifmap(rng)])
    counters = await tb.check_counters(cfg)
    assert tb.output_last_beats[-1] - tb.input_first_beats[-1] == counters["last_cycles"], (
        "LAST_CYCLES disagrees with the bench's own handshake monitor"
    )
    assert counters["last_cycles"] == cycles.frame_latency(computed), (
        f"LAST_CYCLES {counters['last_cycles']} != model {cycles.frame_latency(computed)} (c={computed})"
    )

    # Back-to-back frames.
    if stalls:
        tb.set_stalls(seed)
    ifmaps = [random_ifmap(rng) for _ in range(n_frames)]
    first, start, ends_from = tb.frames_out + 1, len(tb.input_first_beats), len(tb.output_last_beats)
    await tb.run_frames(cfg, ifmaps)
    ends = tb.output_last_beats[ends_from:]
    for n in range(n_frames):
        frame = await tb.counters_of(first + n)
        expect = {"LAST_COMPUTED": computed, "LAST_MACS": spec.MACS_PER_OUTPUT * computed,
                  "LAST_CYCLES": ends[n] - tb.input_first_beats[start + n]}  # fmt: skip
        got = {k: frame[k] for k in expect}
        assert got == expect, f"back-to-back frame {n}: counters {got}, expected (LAST_CYCLES: the monitor's) {expect}"
    assert await tb.regs.read("FRAMES") == 1 + n_frames
    result = {"density": density, "computed": computed, "stalls": stalls, **counters,
              "model_latency": cycles.frame_latency(computed)}  # fmt: skip
    if not stalls:
        gaps = np.diff(ends).tolist()
        model = cycles.back_to_back_gaps(cfg, ifmaps)
        assert gaps == model and all(g == cycles.frame_interval(computed) for g in gaps), (
            f"gaps between frame ends {gaps} != model {model}, interval {cycles.frame_interval(computed)} (c={computed})"
        )
        result.update(interval=gaps[-1], model_interval=cycles.frame_interval(computed))
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
    zero_block = x.copy()
    zero_block[20:40, 8:30] = 0
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
        # int32 wraps below -2^31 to a large positive accumulator (255 after S = 20, 0 without the wrap);
        # inside the zero block it does not wrap (0)
        "bias_wraps_negative": (ConvConfig(np.full((K, K), -128), -(2**31) + 1000, 1, 20, none, avg), zero_block),
        "mult_0": (ConvConfig(w, 12345, 0, 7, none, avg), x),  # M = 0: every computed output is 0
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
    # Only a 1 written with wstrb[0] set clears it: not a 1 in another byte lane, not a 0.
    await tb.regs.write_bytes(spec.addr("STATUS") + 1, bytes([FRAME_ERROR]))
    await tb.regs.write("STATUS", 0)
    assert await tb.regs.read("STATUS") == FRAME_ERROR, "FRAME_ERROR cleared without a 1 in byte lane 0"
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


def mask_from_bytes(data: bytes) -> np.ndarray:
    """The mask that MASK memory bytes `data` describe (the inverse of golden.mask_bytes)."""
    return np.unpackbits(np.frombuffer(bytes(data), np.uint8), bitorder="little").reshape(H, W).astype(bool)


# Partial MASK writes: (byte offset into MASK, bytes). Lanes 2, 0-1, 3 and 1-3 of four words.
PARTIAL_MASK_WRITES = [(4 * 3 + 2, b"\xff"), (4 * 10, b"\xff\x0f"), (4 * 127 + 3, b"\x81"), (4 * 64 + 1, b"\x00\xff\x7e")]


@cocotb.test()
async def test_partial_mask_then_frame(dut):
    """MASK words written through partial byte strobes, over an all-computed and an all-compressed mask:
    the strobed bytes change, the others keep their value, and the next frame is exact with LAST_CYCLES
    equal to the model (a group flag left stale by a partial write costs a cycle or drops outputs).
    Then every read-only register ignores writes of all ones and all zeros."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 9))
    base = golden.random_config(rng, 0.0)
    await tb.regs.configure(base)
    for fill in (0x00, 0xFF):
        mask = bytearray([fill] * spec.REG["MASK"].count * 4)
        await tb.regs.write_bytes("MASK", bytes(mask))
        for offset, data in PARTIAL_MASK_WRITES:
            await tb.regs.write_bytes(spec.addr("MASK") + offset, data)
            mask[offset : offset + len(data)] = data
        for word in sorted({offset // 4 for offset, _ in PARTIAL_MASK_WRITES}):
            got, expect = await tb.regs.read("MASK", word), int.from_bytes(mask[4 * word : 4 * word + 4], "little")
            assert got == expect, f"MASK[{word}] over 0x{fill:02x} bytes reads 0x{got:08x}, expected 0x{expect:08x}"
        cfg = dataclasses.replace(base, mask=mask_from_bytes(mask))
        label = f"partial MASK writes over 0x{fill:02x} bytes"
        try:
            await tb.run_frames(cfg, [random_ifmap(rng)])
        except AssertionError as err:
            raise AssertionError(f"{label}: {err}") from None
        counters = await tb.check_counters(cfg)
        model = cycles.frame_latency(cfg.computed_outputs)
        assert counters["last_cycles"] == model, f"{label}: LAST_CYCLES {counters['last_cycles']} != model {model}"

    for reg in (r for r in spec.REGISTERS if r.access.startswith("RO")):
        before = await tb.regs.read(reg.name)
        for value in (0xFFFFFFFF, 0):
            await tb.regs.write(reg.name, value & ~FRAME_ERROR if reg.name == "STATUS" else value)
            got = await tb.regs.read(reg.name)
            assert got == before, f"read-only {reg.name} <- 0x{value:08x}: reads 0x{got:08x}, was 0x{before:08x}"


async def wait_for(tb: Conv2dTB, condition, what: str, cycles_max: int = FRAME_TIMEOUT_CYCLES) -> None:
    """Wait, clock by clock, until `condition()` holds; fail after `cycles_max` cycles."""
    for _ in range(cycles_max):
        if condition():
            return
        await RisingEdge(tb.dut.clk)
    raise AssertionError(f"{what}: not reached in {cycles_max} cycles")


# Where test_reset_mid_frame asserts rst: a condition on the bench, given the cycle of the first frame's
# first input beat and the output beats counted before it.
RESET_POINTS = {
    "input": lambda tb, t0, beats: tb.cycle >= t0 + 200,  # 200 of the first frame's 512 beats loaded
    "compute": lambda tb, t0, beats: tb.cycle >= t0 + spec.BEATS_PER_FRAME + 300,  # and the second loading
    "drain": lambda tb, t0, beats: tb.output_beats >= beats + 100,  # 100 of the first frame's beats out
}


@cocotb.test()
async def test_reset_mid_frame(dut):
    """rst in the middle of a frame's input, its computation and its output (also with the output held
    back, the output FIFO full), a second frame behind it: afterwards every register reads its reset
    value, nothing more leaves m_axis, and after the driver writes the configuration again (the contract
    leaves MASK and AVG undefined) the next frame is exact, with LAST_CYCLES equal to the model."""
    tb = Conv2dTB(dut)
    tb.source.log.setLevel(logging.ERROR)  # the source warns about every frame a reset cuts short
    tb.axil.write_if.log.setLevel(logging.ERROR)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 11))
    await tb.regs.configure(golden.random_config(rng, 0.5))
    for point, held in (("input", False), ("compute", False), ("drain", False), ("drain", True)):
        label = f"reset during the {point}{' with the output held back' if held else ''}"
        start, beats = len(tb.input_first_beats), tb.output_beats
        for _ in range(2):
            await tb.send(random_ifmap(rng))
        await wait_for(tb, lambda: len(tb.input_first_beats) > start, f"{label}: first input beat")
        t0 = tb.input_first_beats[start]
        await wait_for(tb, lambda: RESET_POINTS[point](tb, t0, beats), label)
        if held:
            tb.sink.pause = True
            await ClockCycles(dut.clk, 50)
            assert int(dut.m_axis_tvalid.value), f"{label}: an output beat waits"
        assert (await tb.regs.read("STATUS")) & BUSY, f"{label}: BUSY before the reset"
        tb.source.clear()
        await tb.reset()
        tb.sink.pause = False
        tb.sink.clear()
        assert int(dut.s_axis_tready.value) and not int(dut.m_axis_tvalid.value), f"{label}: ports after reset"
        for reg in (r for r in spec.REGISTERS if r.reset is not None):
            for i in range(reg.count):
                got = await tb.regs.read(reg.name, i)
                assert got == reg.reset, f"{label}: {reg.name}[{i}] reads 0x{got:08x}, resets to 0x{reg.reset:08x}"
        await ClockCycles(dut.clk, 100)
        assert tb.output_beats == 0, f"{label}: {tb.output_beats} output beats after the reset"

        # Every other time SKIP_EN = 0, with which the contract needs no AVG (1,024 slow writes on Icarus).
        cfg = golden.random_config(rng, 0.5, skip_en=held or point == "compute")
        await tb.regs.configure(cfg, averages=cfg.skip_en)
        try:
            await tb.run_frames(cfg, [random_ifmap(rng)])
        except AssertionError as err:
            raise AssertionError(f"{label}, the frame after it: {err}") from None
        counters = await tb.check_counters(cfg)
        model = cycles.frame_latency(cfg.computed_outputs)
        assert counters["last_cycles"] == model, f"{label}: LAST_CYCLES {counters['last_cycles']} != model {model}"
        assert await tb.regs.read("FRAMES") == 1, f"{label}: FRAMES counts from the reset"


FULL_QUEUE_FRAMES = 7
BUFFERED_FRAMES = cycles.IFMAP_SLOTS + cycles.OFMAP_SLOTS  # what an instance holds with its output blocked


@cocotb.test()
async def test_full_queues(dut):
    """m_axis held back for long with frames waiting on s_axis: the instance takes exactly the frames its
    two IFMAP and three OFMAP slots hold, then keeps s_axis_tready low; its first output beat waits
    unchanged (the monitor checks every cycle). Released, every frame comes out exact and in order, each
    with its own counters and a LAST_CYCLES equal to the handshake monitor's."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 13))
    cfg = golden.random_config(rng, 0.85)
    await tb.regs.configure(cfg)
    tb.read_counters_per_frame()
    ifmaps = [random_ifmap(rng) for _ in range(FULL_QUEUE_FRAMES)]
    tb.sink.pause = True
    for x in ifmaps:
        await tb.send(x)
    await wait_for(tb, lambda: tb.inputs_complete == BUFFERED_FRAMES, "the buffers fill",
                   cycles_max=2 * BUFFERED_FRAMES * cycles.frame_latency(cfg.computed_outputs))  # fmt: skip
    await ClockCycles(dut.clk, 2 * cycles.frame_latency(cfg.computed_outputs))
    assert tb.inputs_complete == BUFFERED_FRAMES, (
        f"{tb.inputs_complete} input frames taken with the output blocked; the instance buffers {BUFFERED_FRAMES}"
    )
    assert not int(dut.s_axis_tready.value) and int(dut.m_axis_tvalid.value), "s_axis held off, a beat waiting"
    assert await tb.regs.read("FRAMES") == 0 and (await tb.regs.read("STATUS")) & BUSY
    tb.sink.pause = False
    for n, x in enumerate(ifmaps):
        expect_frame(await tb.receive(), golden.frame_result(x, cfg), f"frame {n} after the backpressure")
    for n in range(FULL_QUEUE_FRAMES):
        counters = await tb.counters_of(n + 1)
        monitor = tb.output_last_beats[n] - tb.input_first_beats[n]
        got = (counters["LAST_COMPUTED"], counters["LAST_CYCLES"])
        assert got == (cfg.computed_outputs, monitor), (
            f"frame {n}: (LAST_COMPUTED, LAST_CYCLES) {got} != ({cfg.computed_outputs}, monitor {monitor})"
        )
    assert await tb.regs.read("FRAMES") == FULL_QUEUE_FRAMES
    assert await tb.regs.read("STATUS") == 0


# test_skip_en_toggled_in_flight: (cycles after the first input beat, SKIP_EN written then); the last write
# sets the final value, under which every later frame is exact.
SKIP_TOGGLES = [(600, False), (1500, True), (2300, False), (3100, True)]
SKIP_FRAMES = 6


@cocotb.test()
async def test_skip_en_toggled_in_flight(dut):
    """SKIP_EN written while frames are in flight (rtl/README.md, section 4): every frame still comes out
    whole (512 beats, tlast on the last) and is counted, nothing hangs, and every frame whose first beat
    arrives after the last write completed is exact, with its counters, under the final setting."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 15))
    cfg = golden.random_config(rng, 0.6)
    await tb.regs.configure(cfg)
    tb.read_counters_per_frame()
    ifmaps = [random_ifmap(rng) for _ in range(SKIP_FRAMES)]
    for x in ifmaps:
        await tb.send(x)
    await wait_for(tb, lambda: tb.input_first_beats, "first input beat")
    t0 = tb.input_first_beats[0]
    for at, skip in SKIP_TOGGLES:
        await wait_for(tb, lambda: tb.cycle >= t0 + at, f"cycle {at}")
        await tb.regs.write("CONTROL", common.control_word(dataclasses.replace(cfg, skip_en=skip)))
    written = tb.cycle  # the last write's response has been taken
    assert cfg.skip_en, "the last write restores the configured SKIP_EN"
    got = [await tb.receive() for _ in ifmaps]
    exact = [n for n in range(SKIP_FRAMES) if tb.input_first_beats[n] > written]
    assert len(exact) >= 2, f"only frames {exact} start after the last write at cycle {written}: move the writes"
    for n in exact:
        expect_frame(got[n], golden.frame_result(ifmaps[n], cfg), f"frame {n}, first beat after the last write")
        counters = await tb.counters_of(n + 1)
        monitor = tb.output_last_beats[n] - tb.input_first_beats[n]
        assert (counters["LAST_COMPUTED"], counters["LAST_CYCLES"]) == (cfg.computed_outputs, monitor), (
            f"frame {n}: counters {counters}, expected LAST_COMPUTED {cfg.computed_outputs}, LAST_CYCLES {monitor}"
        )
    assert await tb.regs.read("FRAMES") == SKIP_FRAMES
    assert await tb.regs.read("STATUS") == 0


@cocotb.test()
async def test_malformed_frame_while_computing(dut):
    """Malformed frames arriving while another frame computes, back to back with good ones: a frame, an
    early tlast (beat 99), a frame, a missing tlast (37 extra beats), a frame. The partial frame produces
    nothing, the long one is processed; every output frame is exact with its own counters and LAST_CYCLES
    equal to the monitor's (no start time of a malformed frame leaks into them); FRAME_ERROR is set."""
    tb = Conv2dTB(dut)
    await tb.reset()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 17))
    cfg = golden.random_config(rng, 0.2)  # a compute stage of about 3,280 cycles
    await tb.regs.configure(cfg)
    tb.read_counters_per_frame()
    good = [random_ifmap(rng) for _ in range(4)]
    stream = [good[0].tobytes(), bytes(100 * BEAT_BYTES), good[1].tobytes(),
              good[2].tobytes() + bytes(rng.integers(0, 256, 37 * BEAT_BYTES, dtype=np.uint8)), good[3].tobytes()]  # fmt: skip
    for data in stream:
        await tb.source.send(AxiStreamFrame(data))
    for n, x in enumerate(good):
        expect_frame(await tb.receive(), golden.frame_result(x, cfg), f"good frame {n}")
    starts = tb.input_first_beats
    assert len(starts) == len(stream), f"input frames seen by the monitor: {len(starts)}"
    computing = (starts[0] + spec.BEATS_PER_FRAME, tb.output_last_beats[0] - spec.BEATS_PER_FRAME)
    assert computing[0] <= starts[1] < computing[1], (
        f"the partial frame (cycle {starts[1]}) must arrive while frame 0 computes {computing}"
    )
    for n, first in enumerate(starts[i] for i in (0, 2, 3, 4)):
        counters = await tb.counters_of(n + 1)
        monitor = tb.output_last_beats[n] - first
        assert (counters["LAST_COMPUTED"], counters["LAST_CYCLES"]) == (cfg.computed_outputs, monitor), (
            f"output frame {n}: counters {counters}, expected LAST_COMPUTED {cfg.computed_outputs}, LAST_CYCLES {monitor}"
        )
    assert await tb.regs.read("FRAMES") == len(good)
    assert await tb.regs.read("STATUS") == FRAME_ERROR, "FRAME_ERROR set, BUSY clear"


@cocotb.test()
async def test_sweep_point(dut):
    """One point of the C sweep: back-to-back frames from VELCRO_CONFIG, checked bit-exact, every gap between
    frame ends equal to the cycle model's, the steady-state interval and the simulation times of each
    frame's end recorded for the reports."""
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
    model = cycles.back_to_back_gaps(cfg, ifmaps)
    assert gaps == model, f"gaps between frame ends {gaps} != model {model} (c={cfg.computed_outputs})"
    record({"computed": cfg.computed_outputs, "interval": gaps[-1], "intervals": gaps, **counters,
            "frame_end_ps": tb.output_last_times_ps, "clock_ps": CLOCK_PS})  # fmt: skip


# ---------------------------------------------------------------- zero-value prediction
# Knobs of test_zp_frames (besides VELCRO_SEED, VELCRO_DENSITY, VELCRO_STALLS, VELCRO_FRAMES):
# VELCRO_STIMULUS  "blobs" (random frames with zero discs), "random" or "real" (the default CNN's
#                  hardware layer: VELCRO_CONFIG is a bench file of its channels, see below);
# VELCRO_ZP_EN     1 (default) or 0; VELCRO_ZP_PATTERN 0 (GRID2) or 1 (CHECKER); VELCRO_ZP_MAX 0..255;
# VELCRO_RUN, VELCRO_CHANNEL  which run (mask set) and channel of the VELCRO_CONFIG file ("real").
ZP_FRAMES = 5  # back-to-back frames per case: 4 gaps, each compared with the cycle model
INTERVAL_SLACK = 64  # a steady interval may exceed max(512, computed + 3) by at most this


def zero_blobs(rng: np.random.Generator, frames: int, coverage: float = 0.5) -> list[np.ndarray]:
    """Random IFMAPs with zero discs (radius 3..14) over about `coverage` of the map."""
    y, x = np.indices((H, W))
    out = []
    for _ in range(frames):
        frame = random_ifmap(rng)
        zero = np.zeros((H, W), bool)
        while zero.mean() < coverage:
            cy, cx, r = rng.integers(0, H), rng.integers(0, W), rng.integers(3, 15)
            zero |= (y - cy) ** 2 + (x - cx) ** 2 <= r * r
        frame[zero] = 0
        out.append(frame)
    return out


def with_zp(cfg: ConvConfig, *, zp_en: bool = True, pattern: int = golden.ZP_GRID2, zp_max: int = 0,
            **changes) -> ConvConfig:
    return dataclasses.replace(cfg, zp_en=zp_en, zp_pattern=pattern, zp_max=zp_max, **changes)


def interval_margins(gaps: list[int], computed: list[int]) -> list[int]:
    """max(512, c + 3) + 64 - gap for every gap, c the LAST_COMPUTED of the frame the gap ends with."""
    return [max(spec.BEATS_PER_FRAME, c + cycles.STARTUP) + INTERVAL_SLACK - gap for gap, c in zip(gaps, computed[1:])]


def expect_frame(got: np.ndarray, result: golden.FrameResult, label: str) -> None:
    if not np.array_equal(got, result.ofmap):
        bad = np.argwhere(got != result.ofmap)
        y, x = bad[0]
        how = "compressed" if result.compressed[y, x] else "predicted" if result.predicted[y, x] else "computed"
        raise AssertionError(
            f"{label}: {len(bad)} outputs differ; first at (y={y}, x={x}, {how}"
            f"{', anchor' if result.anchors[y, x] else ''}): got {got[y, x]}, expected {result.ofmap[y, x]}"
        )


def expect_counters(counters: dict, result: golden.FrameResult, label: str) -> None:
    expected = {"LAST_COMPUTED": result.computed_outputs, "LAST_MACS": result.macs,
                "LAST_PREDICTED": result.predicted_outputs}  # fmt: skip
    wrong = {k: (counters[k], v) for k, v in expected.items() if counters[k] != v}
    assert not wrong, f"{label}: counters (read, golden) {wrong}"


async def zp_case(tb: Conv2dTB, cfg: ConvConfig, ifmaps: list[np.ndarray], label: str, *,
                  stalls: bool = False, seed: int = 0) -> dict:
    """`ifmaps` back to back: every output bit, the counters of every frame, LAST_CYCLES against the
    bench's handshake monitor, and without stalls the gaps between frame ends against the cycle model
    and the interval bound. LAST_CYCLES of an isolated frame is compared with the cycle model: the first
    frame of an unstalled run is one (the frames behind it never delay it); with stalls, one unstalled
    frame runs first."""
    tb.read_counters_per_frame()
    await tb.regs.configure(cfg)
    results = [golden.frame_result(x, cfg) for x in ifmaps]
    model_latency = cycles.isolated_latency(cfg, ifmaps[0])

    def check_isolated(counters: dict, what: str) -> None:
        assert counters["LAST_CYCLES"] == model_latency, (
            f"{label}: LAST_CYCLES {counters['LAST_CYCLES']} of {what} != model {model_latency} "
            f"(computed {results[0].computed_outputs}, predicted {results[0].predicted_outputs})"
        )

    tb.source.set_pause_generator(None)
    tb.sink.set_pause_generator(None)
    if stalls:  # one isolated frame, never stalled, first
        first = tb.frames_out + 1
        start = len(tb.input_first_beats)
        await tb.send(ifmaps[0])
        expect_frame(await tb.receive(), results[0], f"{label}, isolated frame")
        counters = await tb.counters_of(first)
        expect_counters(counters, results[0], f"{label}, isolated frame")
        monitor = tb.output_last_beats[-1] - tb.input_first_beats[start]
        assert counters["LAST_CYCLES"] == monitor, f"{label}: LAST_CYCLES {counters['LAST_CYCLES']} != monitor {monitor}"
        check_isolated(counters, "the isolated frame")

    # Back to back, with stalls if asked.
    if stalls:
        tb.set_stalls(seed)
    first, start, ends_from = tb.frames_out + 1, len(tb.input_first_beats), len(tb.output_last_beats)
    for x in ifmaps:
        await tb.send(x)
    for n, result in enumerate(results):
        expect_frame(await tb.receive(), result, f"{label}, frame {n}")
    per_frame = [await tb.counters_of(first + n) for n in range(len(ifmaps))]
    ends = tb.output_last_beats[ends_from:]
    for n, (counters, result) in enumerate(zip(per_frame, results)):
        expect_counters(counters, result, f"{label}, frame {n}")
        monitor = ends[n] - tb.input_first_beats[start + n]
        assert counters["LAST_CYCLES"] == monitor, (
            f"{label}, frame {n}: LAST_CYCLES {counters['LAST_CYCLES']} != monitor {monitor}"
        )
    if not stalls:
        check_isolated(per_frame[0], "the first frame")
    gaps = np.diff(ends).tolist()
    out = {"label": label, "computed": [r.computed_outputs for r in results],
           "predicted": [r.predicted_outputs for r in results], "isolated_cycles": model_latency,
           "gaps": gaps, "stalls": stalls}  # fmt: skip
    if not stalls:
        model_gaps = list(cycles.back_to_back_gaps(cfg, ifmaps))
        assert gaps == model_gaps, f"{label}: gaps between frame ends {gaps} != model {model_gaps}"
        margins = interval_margins(gaps, [c["LAST_COMPUTED"] for c in per_frame])
        for n, (gap, margin) in enumerate(zip(gaps, margins), start=1):
            assert margin >= 0, (
                f"{label}: gap {gap} before frame {n} exceeds max(512, LAST_COMPUTED + 3) + 64 by {-margin}"
            )
        out["bound_margin"] = min(margins)
    tb.source.set_pause_generator(None)
    tb.sink.set_pause_generator(None)
    assert (await tb.regs.read("STATUS")) == 0, f"{label}: idle and no error after well-formed frames"
    return out


def zp_stimulus(rng: np.random.Generator, density: float) -> tuple[ConvConfig, list[np.ndarray]]:
    """The configuration (prediction off) and IFMAPs of test_zp_frames from VELCRO_STIMULUS."""
    stimulus = os.environ.get("VELCRO_STIMULUS", "blobs")
    frames = max(env_int("VELCRO_FRAMES", ZP_FRAMES), 2)
    if stimulus == "real":
        from sim.harness.bench_files import read_runs

        runs, ifmaps = read_runs(os.environ["VELCRO_CONFIG"])
        configs = runs[env_int("VELCRO_RUN", 0)]
        channel = env_int("VELCRO_CHANNEL", 0)
        images = ifmaps[channel]
        picked = rng.choice(len(images), size=min(frames, len(images)), replace=False)
        return configs[channel], [images[i] for i in picked]
    base = golden.random_config(rng, density)
    if stimulus == "blobs":
        # A non-positive bias: inside a zero disc the accumulator is the bias, so the output is 0.
        return dataclasses.replace(base, bias=-abs(base.bias)), zero_blobs(rng, frames)
    if stimulus == "random":
        return base, [random_ifmap(rng) for _ in range(frames)]
    raise ValueError(f"VELCRO_STIMULUS={stimulus!r}: use blobs, random or real")


@cocotb.test()
async def test_zp_frames(dut):
    """Zero-value prediction on back-to-back frames (knobs above): outputs, counters, cycles vs the model."""
    seed = env_int("VELCRO_SEED", 1)
    rng = np.random.default_rng(seed)
    base, ifmaps = zp_stimulus(rng, env_float("VELCRO_DENSITY", 0.3))
    cfg = with_zp(base, zp_en=bool(env_int("VELCRO_ZP_EN", 1)), pattern=env_int("VELCRO_ZP_PATTERN", golden.ZP_GRID2),
                  zp_max=env_int("VELCRO_ZP_MAX", 0))  # fmt: skip
    tb = Conv2dTB(dut)
    await tb.reset()
    label = (f"{os.environ.get('VELCRO_STIMULUS', 'blobs')} pattern={cfg.zp_pattern} zp_max={cfg.zp_max} "
             f"density={cfg.effective_mask.mean():.2f} seed={seed}")  # fmt: skip
    result = await zp_case(tb, cfg, ifmaps, label, stalls=bool(env_int("VELCRO_STALLS", 0)), seed=seed)
    tb.log.info("%s: computed %s predicted %s gaps %s", label, result["computed"], result["predicted"], result["gaps"])
    record(result)


def identity_config(mask: np.ndarray | None = None, avg: np.ndarray | None = None, **zp) -> ConvConfig:
    """out = x: centre tap 1, bias 0, M = 1, S = 0, so an IFMAP spells out the OFMAP (and the anchors)."""
    w = np.zeros((K, K), int)
    w[1, 1] = 1
    none = np.zeros((H, W), bool)
    return with_zp(ConvConfig(w, 0, 1, 0, none if mask is None else mask,
                              np.zeros((H, W), np.uint8) if avg is None else avg), **zp)  # fmt: skip


def zp_edge_cases(rng: np.random.Generator, pattern: int) -> dict[str, tuple[ConvConfig, np.ndarray]]:
    """Named corner cases of prediction for one pattern; each is (configuration, IFMAP)."""
    anchor = golden.anchors(pattern)
    none = np.zeros((H, W), bool)
    x = random_ifmap(rng)
    avg = np.zeros((H, W), np.uint8)  # cases without a mask share it (fewer AVG writes)
    w = rng.integers(-128, 128, size=(K, K))
    zp = {"pattern": pattern}
    ring = np.zeros((H, W), np.uint8)  # nonzero on the outermost ring only
    ring[[0, -1], :] = rng.integers(1, 256, size=(2, W))
    ring[:, [0, -1]] = rng.integers(1, 256, size=(H, 2))
    corners = np.zeros((H, W), np.uint8)
    for y, xx in ((0, 0), (0, 63), (63, 0), (63, 63), (1, 1), (62, 62), (0, 62), (62, 0), (1, 62), (62, 1)):
        corners[y, xx] = 200
    near = rng.integers(99, 102, size=(H, W)).astype(np.uint8)  # around ZP_MAX = 100: 99, 100, 101
    near[rng.random((H, W)) < 0.7] = 0
    hot = np.full((H, W), 200, np.uint8)
    region = np.zeros((H, W), bool)
    region[8:40, 16:56] = True
    cases = {
        # every output 0 (negative accumulator), so every anchor is zero and every non-anchor predicted
        "all_anchors_zero": (with_zp(ConvConfig(np.zeros((K, K), int), -1000, 1, 0, none, avg), **zp), x),
        # every output >= 1 and ZP_MAX = 0: nothing predicted, the whole frame computed
        "no_zeros": (with_zp(ConvConfig(np.zeros((K, K), int), 1000, 1, 2, none, avg), **zp), x),
        # ZP_MAX = 255: every anchor counts as zero, every non-anchor predicted whatever its value
        "zp_max_255": (with_zp(ConvConfig(w, 100, 300, 14, none, avg), zp_max=255, **zp), x),
        "random_zp_max_0": (with_zp(ConvConfig(w, -3000, 300, 14, none, avg), **zp), x),
        # border and corner neighbourhoods are clipped to the map
        "border_ring": (identity_config(**zp), ring),
        "corners": (identity_config(**zp), corners),
        # anchors at ZP_MAX - 1, ZP_MAX and ZP_MAX + 1: "at most ZP_MAX" counts as zero
        "at_zp_max": (identity_config(zp_max=100, **zp), near),
        # compressed anchors: their average, not their computed value, decides
        "compressed_anchor_avg_hot": (identity_config(anchor & (rng.random((H, W)) < 0.2),
                                                      np.full((H, W), 7, np.uint8), zp_max=5, **zp),
                                      np.zeros((H, W), np.uint8)),
        "compressed_anchor_avg_zero": (identity_config(anchor & region, np.zeros((H, W), np.uint8), **zp), hot),
        # compressed non-anchors keep their average even where they would be predicted
        "compressed_non_anchor": (identity_config(~anchor & (rng.random((H, W)) < 0.5),
                                                  rng.integers(0, 256, size=(H, W)), **zp),
                                  np.zeros((H, W), np.uint8)),
        # SKIP_EN = 0: the mask is ignored, prediction alone
        "skip_disabled": (with_zp(ConvConfig(w, -2000, 300, 14, np.ones((H, W), bool), np.full((H, W), 9, np.uint8),
                                          skip_en=False), **zp),
                          zero_blobs(rng, 1)[0]),
        # prediction off with ZP_CONFIG set: the configuration of ZP_CONFIG alone changes nothing
        "zp_config_without_zp_en": (with_zp(ConvConfig(w, 0, 300, 14, none, avg), zp_en=False, zp_max=255, **zp), x),
    }
    return cases


@cocotb.test()
async def test_zp_edge_cases(dut):
    """Named corner cases of prediction on both patterns, each an isolated frame: every output bit,
    LAST_COMPUTED, LAST_PREDICTED, LAST_MACS, LAST_CYCLES against the monitor and the cycle model."""
    tb = Conv2dTB(dut)
    await tb.reset()
    tb.read_counters_per_frame()
    rng = np.random.default_rng(env_int("VELCRO_SEED", 17))
    patterns = [int(p) for p in os.environ.get("VELCRO_ZP_PATTERNS", f"{golden.ZP_GRID2},{golden.ZP_CHECKER}").split(",")]
    summary = {}
    written_avg = None
    for pattern in patterns:
        for name, (cfg, x) in zp_edge_cases(rng, pattern).items():
            label = f"edge case {name} (pattern {pattern})"
            same_avg = written_avg is not None and np.array_equal(written_avg, cfg.avg)
            await tb.regs.configure(cfg, averages=not same_avg)  # AVG is 1,024 writes: only when it changes
            if not same_avg:
                written_avg = np.asarray(cfg.avg).copy()
            result = golden.frame_result(x, cfg)
            start, first = len(tb.input_first_beats), tb.frames_out + 1
            await tb.send(x)
            expect_frame(await tb.receive(), result, label)
            counters = await tb.counters_of(first)
            expect_counters(counters, result, label)
            monitor = tb.output_last_beats[-1] - tb.input_first_beats[start]
            assert counters["LAST_CYCLES"] == monitor, f"{label}: LAST_CYCLES {counters['LAST_CYCLES']} != monitor {monitor}"
            model = cycles.isolated_latency(cfg, x)
            assert counters["LAST_CYCLES"] == model, f"{label}: LAST_CYCLES {counters['LAST_CYCLES']} != model {model}"
            summary[label] = (result.computed_outputs, result.predicted_outputs)
    # The cases must exercise what they are named for.
    for pattern, anchors in ((golden.ZP_GRID2, 1024), (golden.ZP_CHECKER, 2048)):
        if pattern not in patterns:
            continue
        assert summary[f"edge case all_anchors_zero (pattern {pattern})"] == (anchors, spec.N_OUTPUTS - anchors)
        assert summary[f"edge case no_zeros (pattern {pattern})"] == (spec.N_OUTPUTS, 0)
        assert summary[f"edge case zp_max_255 (pattern {pattern})"] == (anchors, spec.N_OUTPUTS - anchors)
    tb.log.info("zp edge cases (computed, predicted): %s", summary)


@cocotb.test()
async def test_zp_registers(dut):
    """ZP_CONFIG resets to 0, keeps PATTERN (codes 2 and 3 store 0) and ZP_MAX, honours byte strobes;
    CONTROL.ZP_EN reads back; LAST_PREDICTED resets to 0 and ignores writes."""
    tb = Conv2dTB(dut)
    regs = tb.regs
    await tb.reset()
    reg = spec.REG["ZP_CONFIG"]
    pattern, zp_max = reg.field("PATTERN"), reg.field("ZP_MAX")
    zp_en, skip_en = spec.REG["CONTROL"].field("ZP_EN"), spec.REG["CONTROL"].field("SKIP_EN")
    assert await regs.read("ZP_CONFIG") == 0, "ZP_CONFIG resets to 0"
    assert await regs.read("LAST_PREDICTED") == 0, "LAST_PREDICTED resets to 0"
    assert await regs.read("CONTROL") == skip_en.mask, "CONTROL resets to SKIP_EN = 1, ZP_EN = 0"
    for code, stored in ((0, 0), (1, 1), (2, 0), (3, 0), (1, 1)):
        await regs.write("ZP_CONFIG", code << pattern.lsb)
        got = await regs.read("ZP_CONFIG")
        assert got == stored << pattern.lsb, f"PATTERN {code} reads back 0x{got:x}, expected {stored}"
    for value in (0, 1, 0x5A, 0x80, 0xFF):
        await regs.write("ZP_CONFIG", (value << zp_max.lsb) | (1 << pattern.lsb))
        got = await regs.read("ZP_CONFIG")
        assert got == (value << zp_max.lsb) | (1 << pattern.lsb), f"ZP_MAX {value} reads back 0x{got:x}"
    await regs.write("ZP_CONFIG", 0xFFFFFFFF)
    assert await regs.read("ZP_CONFIG") == 0xFF << zp_max.lsb, "all ones: ZP_MAX 255, PATTERN 3 stores 0"
    await regs.write("ZP_CONFIG", 0)
    await regs.write_bytes(spec.addr("ZP_CONFIG") + zp_max.lsb // 8, b"\x42")  # ZP_MAX's byte only
    assert await regs.read("ZP_CONFIG") == 0x42 << zp_max.lsb
    for value in (zp_en.mask, zp_en.mask | skip_en.mask, 0, skip_en.mask):
        await regs.write("CONTROL", value)
        assert await regs.read("CONTROL") == value, f"CONTROL <- 0x{value:x}"
    await regs.write("LAST_PREDICTED", 0xFFFFFFFF)
    assert await regs.read("LAST_PREDICTED") == 0, "LAST_PREDICTED is read-only"


@cocotb.test()
async def test_runs_of_one_instance(dut):
    """The runs of a VELCRO_CONFIG file (sim/harness/bench_files.py) on this instance, for `make sim`'s
    prediction section: instance VELCRO_CHANNEL's configuration of every run, its IFMAPs back to back
    without stalls. Every output and every frame's counters are checked against the golden model, the
    gaps between frame ends against the cycle model; per run, the simulation times of the first input
    and of every frame end (for waveform windows) and the counters go to VELCRO_RESULTS."""
    from sim.harness.bench_files import read_runs

    runs, ifmaps = read_runs(os.environ["VELCRO_CONFIG"])
    channel = env_int("VELCRO_CHANNEL", 0)
    frames = list(ifmaps[channel])
    tb = Conv2dTB(dut)
    await tb.reset()
    tb.read_counters_per_frame()
    for run, configs in enumerate(runs):
        cfg = configs[channel]
        if run == 0:
            await tb.regs.configure(cfg)
        else:
            await tb.regs.write_control(cfg)
            await tb.regs.write_mask(cfg.mask)
            await ClockCycles(dut.clk, common.ZP_CONFIG_SETTLE_CYCLES)  # the first frame is timed too
        results = [golden.frame_result(x, cfg) for x in frames]
        first, start, ends_from = tb.frames_out + 1, len(tb.input_first_beats), len(tb.output_last_beats)
        for x in frames:
            await tb.send(x)
        for n, result in enumerate(results):
            expect_frame(await tb.receive(), result, f"run {run}, frame {n}")
        counters = [await tb.counters_of(first + n) for n in range(len(frames))]
        for n, (c, result) in enumerate(zip(counters, results)):
            expect_counters(c, result, f"run {run}, frame {n}")
        gaps = np.diff(tb.output_last_beats[ends_from:]).tolist()
        model_gaps = list(cycles.back_to_back_gaps(cfg, frames))
        assert gaps == model_gaps, f"run {run}: gaps {gaps} != model {model_gaps}"
        margins = interval_margins(gaps, [c["LAST_COMPUTED"] for c in counters])
        assert min(margins) >= 0, f"run {run}: a gap exceeds max(512, LAST_COMPUTED + 3) + 64: {gaps}"
        record({"run": run, "channel": channel, "gaps": gaps, "model_gaps": model_gaps,
                "computed": [c["LAST_COMPUTED"] for c in counters],
                "predicted": [c["LAST_PREDICTED"] for c in counters],
                "macs": [c["LAST_MACS"] for c in counters],
                "bound_margin": min(margins), "first_input_ps": tb.input_first_times_ps[start],
                "frame_end_ps": tb.output_last_times_ps[ends_from:], "clock_ps": CLOCK_PS})  # fmt: skip
        await ClockCycles(dut.clk, 20)  # the counter reads of the last frame finish before reconfiguring
