"""cocotb bench of `velcro_top`, driven only through its ports (rtl/README.md).

All instances run at once, each with its own configuration. cocotbext-axi's stream models cannot
bind to one slice of a vector port, so `StreamSlices` drives and samples all slices itself, once
per clock edge; configuration goes through cocotbext-axi's AxiLiteMaster on the single s_axil port.
"""
from __future__ import annotations

import os
import random
from collections import deque

import cocotb
import numpy as np
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, RisingEdge, with_timeout

from model.hw import cycles, golden, spec
from sim.benches import common
from sim.benches.common import CLOCK_PS, FRAME_TIMEOUT_CYCLES, env_int, random_ifmap

BEAT_BITS = spec.BEAT_BITS
ZP_INTERVAL_SLACK = 64  # with prediction, a gap may exceed max(512, computed + 3) by at most this
BEAT_MASK = (1 << BEAT_BITS) - 1


class StreamSlices:
    """Per-instance AXI4-Stream source and sink on the concatenated vectors, in one coroutine.

    Handshakes are sampled at each rising edge; instances in `stalls` get random input idle cycles
    and output backpressure (about 1 in 3), instances in the bit mask `held` keep m_axis_tready low
    until it is cleared. Records each frame's first input and last output
    handshake cycle per instance, independently of the core's counters. Each cycle only the
    instances with something to do are visited, and a port is written only when its value changes.
    """

    def __init__(self, dut, n: int, stalls: set[int], seed: int, finished: Queue | None = None):
        self.dut, self.n, self.stalls = dut, n, stalls
        self.finished = finished  # gets instance i at each of its output frames' last handshake
        self.rng = random.Random(seed)
        self.held = 0  # bit i: instance i's output is held back
        self.pending: list[deque[int]] = [deque() for _ in range(n)]  # input beats still to send
        self.waiting = 0  # bit i: instance i has input beats to send
        self.sent = [0] * n  # beats of the current input frame already taken
        self.received: list[list[int]] = [[] for _ in range(n)]  # beats of the current output frame
        self.frames: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.first_in: list[list[int]] = [[] for _ in range(n)]
        self.last_out: list[list[int]] = [[] for _ in range(n)]
        self.done = Event()
        self.expected = 0
        self.received_frames = 0
        self.cycle = 0
        self.task = cocotb.start_soon(self._run())

    def send(self, i: int, ifmap: np.ndarray) -> None:
        self.pending[i].extend(golden.frame_to_beats(ifmap))
        self.waiting |= 1 << i
        self.expected += 1
        self.done.clear()

    async def _run(self) -> None:
        dut, n = self.dut, self.n
        pending, sent, received = self.pending, self.sent, self.received
        valid = ready = last = 0
        data = [0] * n
        driven_valid = driven_last = driven_ready = None  # what the ports hold
        data_changed = False  # rewriting the wide tdata vector is the slowest write: only when needed
        all_ready = (1 << n) - 1
        stall_bits = sum(1 << i for i in self.stalls)
        last_beat = spec.BEATS_PER_FRAME - 1
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            taken = valid & int(dut.s_axis_tready.value)
            out = int(dut.m_axis_tvalid.value) & ready
            offer = self.waiting & ~valid  # beats to offer on lanes not yet valid
            active = taken | out | offer | stall_bits | (all_ready & ~ready)
            if not active:
                continue  # nothing moved and nothing new to offer: the ports stay as they are
            if out:
                m_data, m_last = int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)
            while active:
                bit = active & -active
                active ^= bit
                i = bit.bit_length() - 1
                if taken & bit:
                    if sent[i] == 0:
                        self.first_in[i].append(self.cycle)
                    pending[i].popleft()
                    if not pending[i]:
                        self.waiting &= ~bit
                    sent[i] = 0 if last & bit else sent[i] + 1
                    valid &= ~bit
                if out & bit:
                    received[i].append((m_data >> (BEAT_BITS * i)) & BEAT_MASK)
                    if m_last & bit:
                        self.last_out[i].append(self.cycle)
                        if self.finished is not None:
                            self.finished.put_nowait(i)
                        self.frames[i].append(golden.beats_to_frame(received[i]))
                        received[i] = []
                        self.received_frames += 1
                        if self.received_frames == self.expected:
                            self.done.set()
                stalled = bool(stall_bits & bit) and self.rng.random() < 0.3
                if not valid & bit and pending[i] and not stalled:  # valid holds until taken
                    valid |= bit
                    data[i] = pending[i][0]
                    data_changed = True
                    last = last & ~bit | (bit if sent[i] == last_beat else 0)
                stalled = bool(self.held & bit) or (bool(stall_bits & bit) and self.rng.random() < 0.35)
                ready = ready & ~bit | (0 if stalled else bit)
            if valid != driven_valid:
                dut.s_axis_tvalid.value = driven_valid = valid
            if last != driven_last:
                dut.s_axis_tlast.value = driven_last = last
            if data_changed:
                dut.s_axis_tdata.value = sum(d << (BEAT_BITS * i) for i, d in enumerate(data))
                data_changed = False
            if ready != driven_ready:
                dut.m_axis_tready.value = driven_ready = ready


class TopTB:
    """Clock, reset and the registers of every instance through the one AXI4-Lite port:
    `regs[i]` is instance i's map at i x spec.INSTANCE_STRIDE."""

    def __init__(self, dut):
        self.dut = dut
        self.n = len(dut.s_axis_tvalid)
        dut.s_axis_tvalid.value = 0
        dut.m_axis_tready.value = 0
        self.axil = common.start_clock_and_bus(dut)
        self.regs = [common.Registers(self.axil, base=i * spec.INSTANCE_STRIDE) for i in range(self.n)]

    async def reset(self) -> None:
        await common.reset(self.dut)


@cocotb.test()
async def test_address_decode(dut):
    """Every instance answers its own ID and GEOMETRY; a write reaches only the addressed instance."""
    tb = TopTB(dut)
    await tb.reset()
    assert tb.n == spec.INSTANCES, f"velcro_top has {tb.n} stream slices, the contract says {spec.INSTANCES}"
    for i, regs in enumerate(tb.regs):
        assert regs.addr("ID") == spec.top_addr(i, "ID")
        assert await regs.read("ID") == spec.ID_VALUE, f"instance {i} ID"
        assert await regs.read("GEOMETRY") == spec.GEOMETRY_VALUE, f"instance {i} GEOMETRY"
    await tb.regs[3].write("W", -5, 4)
    assert await tb.regs[3].read("W", 4) == (-5) & 0xFFFFFFFF
    for i in (2, 4):
        assert await tb.regs[i].read("W", 4) == 0, f"instance {i} saw instance 3's weight"
    for i, regs in enumerate(tb.regs):
        await regs.write("BIAS", 0x1000 * i + 7)
    for i, regs in enumerate(tb.regs):
        assert await regs.read("BIAS") == 0x1000 * i + 7, f"instance {i} BIAS"
    last_mask = spec.REG["MASK"].count - 1
    await common.write_checked(tb.axil, spec.top_addr(9, "MASK", last_mask), b"\xef\xbe")  # byte strobes pass through
    assert await tb.regs[9].read("MASK", last_mask) & 0xFFFF == 0xBEEF
    for offset in common.unmapped_probes():
        assert await tb.regs[9].read(offset) == 0, f"unmapped 0x{offset:04x} inside an instance reads 0"


@cocotb.test()
async def test_all_instances_concurrently(dut):
    """A different configuration per instance, a frame in flight on every instance at once, stalls on
    some: outputs bit-exact per instance, counters, LAST_CYCLES equal to the model without stalls."""
    tb = TopTB(dut)
    await tb.reset()
    rng = np.random.default_rng(11)
    densities = np.linspace(0.0, 0.95, tb.n)
    configs = [golden.random_config(rng, float(d)) for d in densities]
    for i, cfg in enumerate(configs):
        await tb.regs[i].configure(cfg)
    stalls = {i for i in range(tb.n) if i % 4 == 3}
    streams = StreamSlices(dut, tb.n, stalls, seed=5)
    ifmaps = [random_ifmap(rng) for _ in range(tb.n)]
    for i, x in enumerate(ifmaps):
        streams.send(i, x)
    await with_timeout(streams.done.wait(), 2 * FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")

    for i, (cfg, x) in enumerate(zip(configs, ifmaps)):
        got, expect = streams.frames[i][0], golden.conv2d(x, cfg)
        assert np.array_equal(got, expect), f"instance {i}: {np.count_nonzero(got != expect)} outputs differ"
        computed = await tb.regs[i].read("LAST_COMPUTED")
        assert computed == cfg.computed_outputs, f"instance {i}: LAST_COMPUTED {computed} != {cfg.computed_outputs}"
        assert await tb.regs[i].read("LAST_MACS") == spec.MACS_PER_OUTPUT * computed, f"instance {i}: LAST_MACS"
        assert await tb.regs[i].read("FRAMES") == 1, f"instance {i}: FRAMES"
        last_cycles = await tb.regs[i].read("LAST_CYCLES")
        assert last_cycles == streams.last_out[i][0] - streams.first_in[i][0], (
            f"instance {i}: LAST_CYCLES {last_cycles} disagrees with the bench's handshake monitor"
        )
        if i not in stalls:
            assert last_cycles == cycles.frame_latency(computed), (
                f"instance {i}: LAST_CYCLES {last_cycles} != model {cycles.frame_latency(computed)} (c={computed})"
            )
        assert await tb.regs[i].read("STATUS") == 0, f"instance {i}: idle, no error"


class CounterReader:
    """Reads LAST_COMPUTED and LAST_PREDICTED of an instance right after each of its output frames.

    The counters change only at a frame's last OFMAP handshake and an instance's next frame ends at
    least 512 cycles later; FRAMES, read last, must still count this frame, which proves that the
    values read before it are this frame's. Instances queue up in the order their frames end."""

    def __init__(self, tb: "TopTB"):
        self.tb = tb
        self.queue: Queue = Queue()
        self.frames = [0] * tb.n  # output frames per instance since reset
        self.values: list[list[tuple[int, int]]] = [[] for _ in range(tb.n)]  # (computed, predicted) per frame
        self.pending = 0
        self.idle = Event()
        self.idle.set()
        self.names = ["LAST_COMPUTED", "LAST_PREDICTED"]
        cocotb.start_soon(self._run())

    def frame_done(self, i: int) -> None:
        self.pending += 1
        self.idle.clear()
        self.queue.put_nowait(i)

    async def _run(self) -> None:
        while True:
            i = await self.queue.get()
            self.frames[i] += 1
            regs = self.tb.regs[i]
            values = [await regs.read(name) for name in self.names]
            frames = await regs.read("FRAMES")
            assert frames == self.frames[i], (
                f"instance {i}: FRAMES reads {frames} after its frame {self.frames[i]}: counters read too late"
            )
            self.values[i].append((values[0], values[1]))
            self.pending -= 1
            if not self.pending:
                self.idle.set()


class _Forward:
    """A queue stand-in for StreamSlices that hands each finished instance to a CounterReader."""

    def __init__(self, reader: CounterReader):
        self.reader = reader

    def put_nowait(self, i: int) -> None:
        self.reader.frame_done(i)


BACKPRESSURE_FRAMES = 6
BUFFERED_FRAMES = cycles.IFMAP_SLOTS + cycles.OFMAP_SLOTS  # what an instance holds with its output blocked


@cocotb.test()
async def test_back_to_back_under_backpressure(dut):
    """Back-to-back frames through the top under output backpressure: instance 0's m_axis held back for
    long (it takes exactly the frames its two IFMAP and three OFMAP slots hold, then holds its s_axis
    slice off), the last instance with random stalls on both streams. Every output exact, every frame's
    LAST_COMPUTED read right after it, LAST_CYCLES of each instance's last frame equal to the monitor's."""
    tb = TopTB(dut)
    await tb.reset()
    seed = env_int("VELCRO_SEED", 41)
    rng = np.random.default_rng(seed)
    held, stalled = 0, tb.n - 1  # the two ends of the concatenated vectors
    configs = {i: golden.random_config(rng, 0.9) for i in (held, stalled)}
    for i, cfg in configs.items():
        await tb.regs[i].configure(cfg)
    reader = CounterReader(tb)
    streams = StreamSlices(dut, tb.n, {stalled}, seed=seed, finished=_Forward(reader))
    streams.held = 1 << held
    frames = {i: [random_ifmap(rng) for _ in range(BACKPRESSURE_FRAMES)] for i in configs}
    for i, xs in frames.items():
        for x in xs:
            streams.send(i, x)
    latency = cycles.frame_latency(configs[held].computed_outputs)
    for _ in range(2 * BUFFERED_FRAMES * latency):
        if len(streams.first_in[held]) == BUFFERED_FRAMES:
            break
        await RisingEdge(dut.clk)
    await ClockCycles(dut.clk, 2 * latency)
    taken = len(streams.first_in[held])
    assert taken == BUFFERED_FRAMES, f"instance {held} took {taken} frames with its output held back, not {BUFFERED_FRAMES}"
    assert not int(dut.s_axis_tready.value) >> held & 1, f"instance {held}: s_axis_tready low while its buffers are full"
    assert not streams.last_out[held], f"instance {held}: a frame left while its output was held back"
    streams.held = 0
    await with_timeout(streams.done.wait(), 2 * BACKPRESSURE_FRAMES * FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")
    await with_timeout(reader.idle.wait(), FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")
    for i, cfg in configs.items():
        label = f"instance {i} ({'held back' if i == held else 'random stalls'}, VELCRO_SEED={seed})"
        for n, x in enumerate(frames[i]):
            got, expect = streams.frames[i][n], golden.conv2d(x, cfg)
            assert np.array_equal(got, expect), f"{label}, frame {n}: {np.count_nonzero(got != expect)} outputs differ"
        assert reader.values[i] == [(cfg.computed_outputs, 0)] * BACKPRESSURE_FRAMES, (
            f"{label}: (LAST_COMPUTED, LAST_PREDICTED) per frame {reader.values[i]}"
        )
        last_cycles = await tb.regs[i].read("LAST_CYCLES")
        monitor = streams.last_out[i][-1] - streams.first_in[i][-1]
        assert last_cycles == monitor, f"{label}: LAST_CYCLES {last_cycles} != monitor {monitor}"
        assert await tb.regs[i].read("FRAMES") == BACKPRESSURE_FRAMES, f"{label}: FRAMES"
        assert await tb.regs[i].read("STATUS") == 0, f"{label}: idle, no error"


async def run_frames(tb: TopTB, dut, ifmaps: list[list[np.ndarray]], reader: CounterReader | None = None) -> StreamSlices:
    """Send instance i its frames back to back (all instances at once) and wait for every output
    (and, with a reader, for the counters of every frame)."""
    streams = StreamSlices(dut, tb.n, set(), seed=0, finished=_Forward(reader) if reader else None)
    for i, frames in enumerate(ifmaps):
        for x in frames:
            streams.send(i, x)
    longest = max(len(frames) for frames in ifmaps)
    await with_timeout(streams.done.wait(), (longest + 1) * FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")
    streams.task.cancel()  # the next run drives the streams with a driver of its own
    if reader is not None:
        await with_timeout(reader.idle.wait(), FRAME_TIMEOUT_CYCLES * CLOCK_PS, "ps")
    return streams


@cocotb.test()
async def test_runs_from_file(dut):
    """Runs described by VELCRO_CONFIG (sim/harness/bench_files.py), for the C sweep and hardware in the
    loop: configure once, then per run rewrite MASK (and CONTROL and ZP_CONFIG where they change) and let
    every instance process its IFMAPs. Every output is checked against the golden model. With
    VELCRO_COUNTERS=1 the bench also reads LAST_COMPUTED and LAST_PREDICTED after every frame of every
    instance and checks them against the golden model. In runs with prediction on, every gap between
    an instance's frame ends must equal the cycle model's. To VELCRO_OUTPUT: OFMAPs (R, instances, K,
    H, W), each run's last gap per instance (R, instances), every gap (R, instances, K-1) and, with
    VELCRO_COUNTERS, the counters read per frame (R, instances, K) as `computed` and `predicted`."""
    from sim.harness.bench_files import read_runs

    runs, ifmaps = read_runs(os.environ["VELCRO_CONFIG"])
    tb = TopTB(dut)
    await tb.reset()
    reader = CounterReader(tb) if os.environ.get("VELCRO_COUNTERS") == "1" else None
    outputs, intervals, all_gaps, computed, predicted = [], [], [], [], []
    for run, configs in enumerate(runs):
        settle = False
        for i, cfg in enumerate(configs):
            if run == 0:
                await tb.regs[i].configure(cfg, averages=not os.environ.get("VELCRO_SKIP_AVG"))
            else:
                previous = runs[run - 1][i]
                if (common.control_word(cfg), common.zp_config_word(cfg)) != (
                    common.control_word(previous), common.zp_config_word(previous)
                ):
                    await tb.regs[i].write_control(cfg)
                    settle = True
                await tb.regs[i].write_mask(cfg.mask)
        if settle:
            await ClockCycles(dut.clk, common.ZP_CONFIG_SETTLE_CYCLES)  # the first frames are timed too
        if reader is not None:
            reader.values = [[] for _ in range(tb.n)]
        streams = await run_frames(tb, dut, [list(frames) for frames in ifmaps], reader)
        ofmaps = np.stack([np.stack(streams.frames[i]) for i in range(tb.n)])
        for i, cfg in enumerate(configs):
            for n, x in enumerate(ifmaps[i]):
                result = golden.frame_result(x, cfg)
                assert np.array_equal(ofmaps[i, n], result.ofmap), f"run {run}, instance {i}, frame {n}"
                if reader is not None:
                    expected = (result.computed_outputs, result.predicted_outputs)
                    assert reader.values[i][n] == expected, (
                        f"run {run}, instance {i}, frame {n}: (LAST_COMPUTED, LAST_PREDICTED) "
                        f"{reader.values[i][n]} != golden {expected}"
                    )
        gaps = [np.diff(streams.last_out[i]).tolist() for i in range(tb.n)]
        for i, cfg in enumerate(configs):
            if cfg.zp_en:
                model = list(cycles.back_to_back_gaps(cfg, list(ifmaps[i])))
                assert gaps[i] == model, f"run {run}, instance {i}: gaps {gaps[i]} != cycle model {model}"
                computed_per_frame = [golden.frame_result(x, cfg).computed_outputs for x in ifmaps[i][1:]]
                for gap, c in zip(gaps[i], computed_per_frame):
                    bound = max(spec.BEATS_PER_FRAME, c + cycles.STARTUP) + ZP_INTERVAL_SLACK
                    assert gap <= bound, f"run {run}, instance {i}: gap {gap} > max(512, computed + 3) + 64 = {bound}"
        outputs.append(ofmaps)
        intervals.append([g[-1] for g in gaps])
        all_gaps.append(gaps)
        if reader is not None:
            computed.append([[c for c, _ in v] for v in reader.values])
            predicted.append([[p for _, p in v] for v in reader.values])
    extra = {"computed": np.array(computed), "predicted": np.array(predicted)} if reader is not None else {}
    np.savez(os.environ["VELCRO_OUTPUT"], ofmaps=np.stack(outputs), intervals=np.array(intervals),
             gaps=np.array(all_gaps), **extra)  # fmt: skip
