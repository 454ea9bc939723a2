"""cocotb bench of `velcro_krnl`, the Alveo kernel, driven only through its ports (rtl/README.md, section 9).

Device memory is cocotbext-axi's `AxiRam` on `m_axi_gmem`, with random pauses on all five channels
and a fixed latency that the bench adds (`MemoryLatency`: AxiRam answers as soon as it can);
`s_axi_control` is driven by an `AxiLiteMaster`. `BusMonitor` watches every handshake on the memory
bus on its own: it asserts the AXI4 burst rules and records, per beat address, the cycle its data
passed, which is when the instance's stream took it (R and W beats pass straight through).

Knobs (environment): VELCRO_SEED, VELCRO_LATENCY (cycles), VELCRO_PAUSE (share of idle cycles per
channel), VELCRO_DENSITY, VELCRO_FRAMES, VELCRO_ZP (-1 off, else the pattern), VELCRO_RESULTS (a
JSON-lines file the measured intervals are appended to), and for `test_host_job` VELCRO_JOB and
VELCRO_RESULT (model/hw/job.py).
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import random
from collections import deque
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, FallingEdge, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam, AxiResp

from model.hw import cycles, golden, image, spec
from sim.benches.common import CLOCK_PS, env_float, env_int
from model.hw.job import KernelJob, KernelResult

KREG, A = spec.KREG, spec.kernel_addr
AP = {f.name: f.mask for f in KREG["AP_CTRL"].fields}
ERR = {f.name: f.mask for f in KREG["ERROR"].fields}
BEAT = spec.GMEM_DATA_WIDTH // 8
LAST_BEAT = spec.FRAME_BYTES - BEAT  # offset of a frame's last beat
RESET_CYCLES = 5
RAM_BYTES = 1 << 48  # sparse; AxiRam's default of 2**64 bytes overflows len()
LOAD_CYCLES = 1300  # more than the load ever takes with no pauses (rtl/README.md, section 9)
LOADED_WORDS = spec.IMAGE_LOADED_WORDS  # one instance write per cycle


def start_costs(latency: int) -> dict[str, int]:
    """The kernel's fixed costs with a memory of `latency` cycles and no pauses, in cycles from the
    ap_start write's handshake (rtl/README.md, section 9, "Cycle costs")."""
    return {"first IFMAP request": LOADED_WORDS + 13 + latency, "first IFMAP beat": spec.KERNEL_LOAD_CYCLES + 2 * latency,
            "last OFMAP beat to ap_done": spec.KERNEL_SAVE_CYCLES + 2 * latency}  # fmt: skip


class MemoryLatency:
    """A fixed latency for AxiRam, which otherwise answers at once: a read burst's first beat comes
    no earlier than `cycles` after its AR handshake, a write burst's B response `cycles` after its
    last W beat. Bursts stay in order and any number may be outstanding, as in a pipelined memory
    controller; data then flows at full rate, so the latency is paid once per stream of bursts.

    AxiRam serves AR requests by awaiting its AR channel's `recv` and sends responses through its B
    channel's `send`; both are replaced on the instance by versions that hold each item until due.
    """

    def __init__(self, ram: AxiRam, clock, cycles_: int):
        self.clock, self.cycles = clock, cycles_
        ar, b = ram.read_if.ar_channel, ram.write_if.b_channel
        self._ars: Queue = Queue()  # (due cycle, AR), in handshake order
        self._bs: Queue = Queue()  # (due cycle, B)
        take_ar, self._send_b = ar.recv, b.send
        ar.recv = self._next_ar
        b.send = self._queue_b
        cocotb.start_soon(self._take_ars(take_ar))
        cocotb.start_soon(self._send_bs())

    def clear(self) -> None:
        """Forget requests in flight (the kernel was reset)."""
        for queue in (self._ars, self._bs):
            while not queue.empty():
                queue.get_nowait()

    @staticmethod
    def _now() -> int:
        return int(get_sim_time("ps")) // CLOCK_PS  # rising edges are at multiples of the period

    async def _wait_until(self, due: int) -> None:
        if due > self._now():
            await ClockCycles(self.clock, due - self._now())

    async def _take_ars(self, take_ar) -> None:
        while True:  # drains the AR channel as requests come, so the stamp is the handshake's cycle
            ar = await take_ar()
            self._ars.put_nowait((self._now() + self.cycles, ar))

    async def _next_ar(self):
        due, ar = await self._ars.get()
        await self._wait_until(due)
        return ar

    async def _queue_b(self, b) -> None:
        self._bs.put_nowait((self._now() + self.cycles, b))

    async def _send_bs(self) -> None:
        while True:
            due, b = await self._bs.get()
            await self._wait_until(due)
            await self._send_b(b)


@dataclass
class _Burst:
    addr: int
    beats: int
    beat: int = 0


class BusMonitor:
    """Every handshake on m_axi_gmem, cycle by cycle, independently of the kernel.

    Asserts the kernel's bursts: INCR of full 8-byte beats, at most 256 beats, never across 4 KB,
    WLAST on exactly the last beat of each AW burst, and no W beat before its AW. Records the bursts,
    the cycle of every R and W beat by byte address, and the cycles of AP_CTRL writes that set
    ap_start (the later of their AW and W handshakes).
    """

    def __init__(self, dut):
        self.dut = dut
        self.clear()
        # A clock edge without a handshake is followed by none until a valid or a ready rises: the
        # monitor then sleeps until one does or reset falls. That is most cycles of a frame's compute,
        # where the memory holds R valid against the kernel's back-pressure and per-cycle sampling
        # would cost most of the run.
        self._wake = Event()
        d = dut
        for channel in ("m_axi_gmem_ar", "m_axi_gmem_r", "m_axi_gmem_aw", "m_axi_gmem_w", "m_axi_gmem_b",
                        "s_axi_control_aw", "s_axi_control_w"):  # fmt: skip
            for handshake in ("valid", "ready"):
                cocotb.start_soon(self._wake_on(RisingEdge(getattr(d, channel + handshake))))
        cocotb.start_soon(self._wake_on(FallingEdge(d.ap_rst_n)))
        cocotb.start_soon(self._run())

    @property
    def cycle(self) -> int:
        """Rising edges of ap_clk so far: they fall on multiples of the period from time 0."""
        return int(get_sim_time("ps")) // CLOCK_PS

    async def _wake_on(self, edge) -> None:
        while True:
            await edge
            self._wake.set()

    def clear(self) -> None:
        self.reads: list[tuple[int, int, int]] = []  # (cycle, addr, beats)
        self.writes: list[tuple[int, int, int]] = []
        self.r_cycle: dict[int, int] = {}  # beat address -> cycle of its R handshake
        self.w_cycle: dict[int, int] = {}  # beat address -> cycle of its W handshake
        self.b_count = 0
        self.start_cycles: list[int] = []
        self._ar: deque[_Burst] = deque()
        self._aw: deque[_Burst] = deque()
        self._ctrl_aw: deque[tuple[int, int]] = deque()  # (cycle, addr) of control writes
        self._ctrl_w: deque[tuple[int, int]] = deque()  # (cycle, data)

    def _burst(self, prefix: str) -> _Burst:
        get = lambda name: int(getattr(self.dut, f"m_axi_gmem_{prefix}{name}").value)  # noqa: E731
        addr, beats = get("addr"), get("len") + 1
        what = f"cycle {self.cycle}: {prefix.upper()} burst of {beats} beats at 0x{addr:x}"
        assert get("size") == 3 and get("burst") == 1, f"{what}: AxSIZE {get('size')}, AxBURST {get('burst')}"
        assert addr % BEAT == 0, f"{what}: unaligned"
        assert beats <= spec.GMEM_MAX_BURST_BEATS, f"{what}: too long"
        boundary = spec.GMEM_BURST_BOUNDARY
        assert addr // boundary == (addr + beats * BEAT - 1) // boundary, f"{what}: crosses a 4 KB boundary"
        (self.reads if prefix == "ar" else self.writes).append((self.cycle, addr, beats))
        return _Burst(addr, beats)

    async def _run(self) -> None:
        clock = RisingEdge(self.dut.ap_clk)
        while True:
            await clock
            if not self._sample():
                self._wake.clear()
                await self._wake.wait()

    def _sample(self) -> bool:
        """Record this clock edge's handshakes; False when out of reset and there was none."""
        d = self.dut
        if not int(d.ap_rst_n.value):
            self._ar.clear()
            self._aw.clear()
            return True
        busy = False
        if int(d.m_axi_gmem_arvalid.value) and int(d.m_axi_gmem_arready.value):
            busy = True
            self._ar.append(self._burst("ar"))
        if int(d.m_axi_gmem_rvalid.value) and int(d.m_axi_gmem_rready.value):
            busy = True
            assert self._ar, f"cycle {self.cycle}: R beat without a read burst"
            burst = self._ar[0]
            self.r_cycle[burst.addr + BEAT * burst.beat] = self.cycle
            burst.beat += 1
            if burst.beat == burst.beats:
                self._ar.popleft()
        if int(d.m_axi_gmem_awvalid.value) and int(d.m_axi_gmem_awready.value):
            busy = True
            self._aw.append(self._burst("aw"))
        if int(d.m_axi_gmem_wvalid.value) and int(d.m_axi_gmem_wready.value):
            busy = True
            self._w_beat()
        if int(d.m_axi_gmem_bvalid.value) and int(d.m_axi_gmem_bready.value):
            busy = True
            self.b_count += 1
        if int(d.s_axi_control_awvalid.value) and int(d.s_axi_control_awready.value):
            busy = True
            self._ctrl_aw.append((self.cycle, int(d.s_axi_control_awaddr.value)))
        if int(d.s_axi_control_wvalid.value) and int(d.s_axi_control_wready.value):
            busy = True
            self._ctrl_w.append((self.cycle, int(d.s_axi_control_wdata.value) & int(d.s_axi_control_wstrb.value)))
        while self._ctrl_aw and self._ctrl_w:
            (aw_cycle, addr), (w_cycle, data) = self._ctrl_aw.popleft(), self._ctrl_w.popleft()
            if addr >> 2 == KREG["AP_CTRL"].word and data & AP["AP_START"]:
                self.start_cycles.append(max(aw_cycle, w_cycle))
        return busy

    def _w_beat(self) -> None:
        d = self.dut
        assert self._aw, f"cycle {self.cycle}: W beat before its write address"
        burst = self._aw[0]
        last = burst.beat == burst.beats - 1
        assert int(d.m_axi_gmem_wlast.value) == last, (
            f"cycle {self.cycle}: WLAST {int(d.m_axi_gmem_wlast.value)} on beat {burst.beat} of a "
            f"{burst.beats}-beat burst at 0x{burst.addr:x}"
        )
        self.w_cycle[burst.addr + BEAT * burst.beat] = self.cycle
        burst.beat += 1
        if last:
            self._aw.popleft()

    @property
    def quiet(self) -> bool:
        """No burst in flight."""
        return not (self._ar or self._aw)


@dataclass
class Buffers:
    """Where one start's buffers sit in device memory."""

    cfg: int
    ifmap: int
    ofmap: int
    n_frames: int


@dataclass
class Run:
    start: int  # cycle of the ap_start write's handshake
    done: int  # first cycle ap_done was set (the interrupt rose)
    image: np.ndarray  # the image after the run
    ofmaps: np.ndarray  # (n_frames, 64, 64)


class KrnlTB:
    """Clock, reset, control master, memory with latency and pauses, and the bus monitor."""

    def __init__(self, dut, *, latency: int | None = None, pause: float | None = None, seed: int = 0):
        self.dut = dut
        dut.ap_rst_n.value = 0
        Clock(dut.ap_clk, CLOCK_PS, unit="ps").start()
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)  # fmt: skip
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False,
                          size=RAM_BYTES)  # fmt: skip
        for model in (self.ctrl.write_if, self.ctrl.read_if, self.ram.write_if, self.ram.read_if):
            model.log.setLevel(logging.WARNING)  # one line per transfer would drown the results
        self.latency = env_int("VELCRO_LATENCY", 64) if latency is None else latency
        self.pause = env_float("VELCRO_PAUSE", 0.2) if pause is None else pause
        self.memory = MemoryLatency(self.ram, dut.ap_clk, self.latency)
        self.monitor = BusMonitor(dut)
        rng = random.Random(seed)
        channels = (self.ram.write_if.aw_channel, self.ram.write_if.w_channel, self.ram.write_if.b_channel,
                    self.ram.read_if.ar_channel, self.ram.read_if.r_channel)  # fmt: skip
        for n, channel in enumerate(channels):
            if self.pause > 0:
                channel.set_pause_generator(itertools.cycle([rng.random() < self.pause for _ in range(997 + 2 * n)]))

    @property
    def cycle(self) -> int:
        return self.monitor.cycle

    async def reset(self) -> None:
        """ap_rst_n low for RESET_CYCLES cycles (synchronous, active low), then two idle cycles."""
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, RESET_CYCLES)
        self.memory.clear()
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    async def read(self, name: str, index: int = 0) -> int:
        return await self.read_addr(A(name, index))

    async def read_addr(self, addr: int) -> int:
        resp = await self.ctrl.read(addr, 4)
        assert resp.resp == AxiResp.OKAY, f"read of 0x{addr:x} answered {resp.resp!r}"
        return int.from_bytes(resp.data, "little")

    async def write(self, name: str, value: int, index: int = 0) -> None:
        await self.write_addr(A(name, index), value)

    async def write_addr(self, addr: int, value: int) -> None:
        resp = await self.ctrl.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))
        assert resp.resp == AxiResp.OKAY, f"write to 0x{addr:x} answered {resp.resp!r}"

    async def set_args(self, bufs: Buffers) -> None:
        for name, value in (("CFG", bufs.cfg), ("IFMAP", bufs.ifmap), ("OFMAP", bufs.ofmap)):
            await self.write(name, value & 0xFFFFFFFF, 0)
            await self.write(name, value >> 32, 1)
        await self.write("N_FRAMES", bufs.n_frames)

    def place(self, bufs: Buffers, img: np.ndarray, ifmaps: np.ndarray) -> None:
        self.ram.write(bufs.cfg, np.asarray(img, dtype=np.uint8).tobytes())
        if len(ifmaps):
            self.ram.write(bufs.ifmap, image.frames_buffer(ifmaps).tobytes())

    def image_at(self, addr: int) -> np.ndarray:
        return np.frombuffer(self.ram.read(addr, spec.IMAGE_BYTES), dtype=np.uint8).copy()

    async def run(self, bufs: Buffers, timeout_cycles: int | None = None) -> Run:
        """Arguments, ap_start, and wait for the interrupt (GIE and IER on); then AP_CTRL must read
        ap_done, ap_ready and ap_idle, and the interrupt is acknowledged (ISR written 1)."""
        await self.write("GIE", 1)
        await self.write("IER", 1)
        await self.set_args(bufs)
        self.monitor.clear()
        await self.write("AP_CTRL", 1)
        if timeout_cycles is None:
            timeout_cycles = 3 * (LOAD_CYCLES + 4 * self.latency + bufs.n_frames * cycles.frame_latency(spec.N_OUTPUTS))
        if not int(self.dut.interrupt.value):
            await with_timeout(RisingEdge(self.dut.interrupt), timeout_cycles * CLOCK_PS, "ps")
        done = self.cycle
        assert await self.read("AP_CTRL") == AP["AP_DONE"] | AP["AP_READY"] | AP["AP_IDLE"]
        await self.write("ISR", 1)
        assert not int(self.dut.interrupt.value), "ISR written 1 did not clear the interrupt"
        assert self.monitor.quiet, "ap_done with a burst still in flight"
        (start,) = self.monitor.start_cycles
        out = np.frombuffer(self.ram.read(bufs.ofmap, bufs.n_frames * spec.FRAME_BYTES), dtype=np.uint8)
        return Run(start, done, self.image_at(bufs.cfg), image.frames_from_buffer(out, bufs.n_frames))

    def frame_times(self, bufs: Buffers) -> list[tuple[int, int]]:
        """(first IFMAP beat, last OFMAP beat) cycles of every frame of the last run, from the monitor."""
        return [(self.monitor.r_cycle[bufs.ifmap + k * spec.FRAME_BYTES],
                 self.monitor.w_cycle[bufs.ofmap + k * spec.FRAME_BYTES + LAST_BEAT])
                for k in range(bufs.n_frames)]  # fmt: skip


# ---------------------------------------------------------------- checks
def check_ofmaps(cfg: golden.ConvConfig, ifmaps: np.ndarray, ofmaps: np.ndarray, what: str = "") -> None:
    """Every OFMAP bit against the golden model (compression, prediction and masks included)."""
    for n, (x, got) in enumerate(zip(ifmaps, ofmaps)):
        expect = golden.conv2d(x, cfg)
        if not np.array_equal(got, expect):
            bad = np.argwhere(got != expect)
            y, xx = bad[0]
            raise AssertionError(f"{what}frame {n}: {len(bad)} outputs differ; first at (y={y}, x={xx}): "
                                 f"got {got[y, xx]}, expected {expect[y, xx]}")  # fmt: skip


def check_image(before: np.ndarray, after: np.ndarray) -> None:
    """The run changed no byte of the image but the counters'."""
    changed = np.flatnonzero(before != after)
    counters = {a for name in spec.IMAGE_WRITTEN_BACK for a in range(spec.addr(name), spec.addr(name) + 4)}
    stray = [hex(a) for a in changed if a not in counters]
    assert not stray, f"the kernel wrote image bytes outside the counters: {stray[:8]}"


def check_counters(tb: KrnlTB, bufs: Buffers, cfg: golden.ConvConfig, ifmaps: np.ndarray, run: Run) -> None:
    """The written-back counters: per-frame counts from the golden model, LAST_CYCLES from the bus
    monitor always and from the cycle model when the memory never pauses."""
    got = image.written_back(run.image)
    if bufs.n_frames == 0:
        assert got == dict.fromkeys(spec.IMAGE_WRITTEN_BACK, 0), f"n_frames = 0 wrote back {got}"
        return
    last = golden.frame_result(ifmaps[-1], cfg)
    first_in, last_out = tb.frame_times(bufs)[-1]
    expect = {"FRAMES": bufs.n_frames, "LAST_CYCLES": last_out - first_in, "LAST_MACS": last.macs,
              "LAST_COMPUTED": last.computed_outputs, "LAST_PREDICTED": last.predicted_outputs}  # fmt: skip
    assert got == expect, f"written-back counters {got}, expected {expect}"
    if tb.pause == 0:
        ends = [end for _, end in tb.frame_times(bufs)]
        gaps = [b - a for a, b in zip(ends, ends[1:])]
        assert gaps == cycles.back_to_back_gaps(cfg, list(ifmaps)), f"frame gaps {gaps} differ from the cycle model"
        if bufs.n_frames == 1:
            assert got["LAST_CYCLES"] == cycles.isolated_latency(cfg, ifmaps[0])


def make_config(rng: np.random.Generator, density: float, zp: int = -1) -> golden.ConvConfig:
    cfg = golden.random_config(rng, density)
    if zp < 0:
        return cfg
    return golden.ConvConfig(cfg.weights, cfg.bias, cfg.mult, cfg.shift, cfg.mask, cfg.avg, zp_en=True,
                             zp_pattern=zp, zp_max=int(rng.integers(0, 60)))  # fmt: skip


def blobs(rng: np.random.Generator, n: int) -> np.ndarray:
    """IFMAPs with dark regions, so that prediction finds zeros to predict."""
    y, x = np.indices((spec.H, spec.W))
    frames = []
    for _ in range(n):
        cy, cx = rng.integers(0, 64, 2)
        bright = (y - cy) ** 2 + (x - cx) ** 2 < int(rng.integers(100, 600))
        frames.append(np.where(bright, rng.integers(0, 256, (spec.H, spec.W)), 0).astype(np.uint8))
    return np.array(frames)


# Buffers off any 4 KB boundary and above 4 GB: the bursts must split, the 64-bit addresses carry.
BUFS = Buffers(cfg=0x2_0000_0F08, ifmap=0x3_0000_0A48, ofmap=0x4_0000_0128, n_frames=0)


def record(result: dict) -> None:
    path = os.environ.get("VELCRO_RESULTS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(result) + "\n")


async def one_start(tb: KrnlTB, rng: np.random.Generator, cfg: golden.ConvConfig, n_frames: int,
                    bufs: Buffers = BUFS, ifmaps: np.ndarray | None = None) -> Run:  # fmt: skip
    """Place a fresh image (counters filled with garbage) and IFMAPs, run, check everything."""
    bufs = Buffers(bufs.cfg, bufs.ifmap, bufs.ofmap, n_frames)
    if ifmaps is None:
        ifmaps = blobs(rng, n_frames) if cfg.zp_en else rng.integers(0, 256, (n_frames, spec.H, spec.W), np.uint8)
    img = image.config_image(cfg)
    for name in spec.IMAGE_WRITTEN_BACK:
        img[spec.addr(name) : spec.addr(name) + 4] = rng.integers(0, 256, 4, dtype=np.uint8)
    tb.place(bufs, img, ifmaps)
    tb.ram.write(bufs.ofmap, bytes(n_frames * spec.FRAME_BYTES))
    run = await tb.run(bufs)
    check_ofmaps(cfg, ifmaps, run.ofmaps)
    check_image(img, run.image)
    check_counters(tb, bufs, cfg, ifmaps, run)
    assert await tb.read("ERROR") == 0
    return run


# ---------------------------------------------------------------- tests
@cocotb.test()
async def test_control_registers(dut):
    """Reset values, arguments with byte strobes, unmapped addresses (OKAY, 0), ERROR read-only."""
    tb = KrnlTB(dut)
    await tb.reset()
    for reg in spec.KERNEL_REGISTERS:
        for i in range(reg.count):
            assert await tb.read(reg.name, i) == reg.reset, f"{reg.name}[{i}] after reset"
    values = {"CFG": [0x89ABCDE8, 0x01234567], "IFMAP": [0x76543210, 0xFEDCBA98], "OFMAP": [0x1000, 1],
              "N_FRAMES": [0x87654321]}  # fmt: skip
    for name, words in values.items():
        for i, word in enumerate(words):
            await tb.write(name, word, i)
    for name, words in values.items():
        assert [await tb.read(name, i) for i in range(len(words))] == words, name
    await tb.ctrl.write(A("N_FRAMES") + 3, b"\x5a")  # one byte: strobe 0b1000
    assert await tb.read("N_FRAMES") == 0x5A654321
    mapped = {r.addr(i) for r in spec.KERNEL_REGISTERS for i in range(r.count)}
    for addr in sorted({0x18, 0x24, 0x30, 0x38, 0x3C, 0x44, 0x800, 0xFFC} - mapped):
        await tb.write_addr(addr, 0xFFFFFFFF)
        assert await tb.read_addr(addr) == 0, f"unmapped 0x{addr:x}"
    await tb.write("ERROR", 0xFFFFFFFF)
    assert await tb.read("ERROR") == 0
    assert await tb.read("AP_CTRL") == AP["AP_IDLE"]  # nothing started by any of these
    assert not tb.monitor.reads and not tb.monitor.writes


@cocotb.test()
async def test_frames(dut):
    """One start: every OFMAP bit against the golden model, the counters written back, only they
    change in the image (knobs: VELCRO_DENSITY, VELCRO_FRAMES, VELCRO_ZP, latency and pauses)."""
    seed = env_int("VELCRO_SEED", 1)
    tb = KrnlTB(dut, seed=seed)
    await tb.reset()
    rng = np.random.default_rng(seed)
    cfg = make_config(rng, env_float("VELCRO_DENSITY", 0.5), env_int("VELCRO_ZP", -1))
    bufs = Buffers(BUFS.cfg, BUFS.ifmap, BUFS.ofmap, env_int("VELCRO_FRAMES", 3))
    run = await one_start(tb, rng, cfg, bufs.n_frames, bufs)
    times = tb.frame_times(bufs)
    request = next(cycle for cycle, addr, _ in tb.monitor.reads if addr == bufs.ifmap)
    costs = {"first IFMAP request": request - run.start, "first IFMAP beat": times[0][0] - run.start,
             "last OFMAP beat to ap_done": run.done - times[-1][1]}  # fmt: skip
    print(f"test_frames, latency {tb.latency}, pauses {tb.pause:.0%}: ap_start to ap_done {run.done - run.start}, "
          f"{costs}, counters {image.written_back(run.image)}")
    if tb.pause == 0:
        assert costs == start_costs(tb.latency), f"cycle costs {costs}, documented {start_costs(tb.latency)}"


@cocotb.test()
async def test_starts_in_a_row(dut):
    """Several starts without a reset, each with a new image and n_frames 1, 0, 2 and 1: every start
    loads its own image (prediction on and off alternate) and begins from a reset instance."""
    tb = KrnlTB(dut, seed=7)
    await tb.reset()
    rng = np.random.default_rng(7)
    plan = [(0.3, -1, 1), (0.6, golden.ZP_CHECKER, 0), (0.75, golden.ZP_GRID2, 2), (0.0, -1, 1)]
    for density, zp, n in plan:
        await one_start(tb, rng, make_config(rng, density, zp), n)
    # n_frames = 0 loads and finishes: no frame traffic, only the image's reads and counter writes.
    run = await one_start(tb, rng, make_config(rng, 0.5), 0)
    assert all(BUFS.cfg <= a < BUFS.cfg + spec.IMAGE_BYTES for _, a, _ in tb.monitor.reads + tb.monitor.writes)
    print(f"n_frames = 0: {run.done - run.start} cycles from ap_start to ap_done")


@cocotb.test()
async def test_ap_ctrl_handshake(dut):
    """ap_start clears when the kernel takes it, ap_idle is low while it runs, ap_done and ap_ready
    appear together at the end and clear on read; ISR only with IER, interrupt = GIE & ISR & IER,
    ISR toggles on a written 1; a start written while running is taken after the current one."""
    tb = KrnlTB(dut, pause=0.0)
    await tb.reset()
    rng = np.random.default_rng(3)
    cfg = golden.random_config(rng, 0.9)
    bufs = Buffers(BUFS.cfg, BUFS.ifmap, BUFS.ofmap, 1)
    tb.place(bufs, image.config_image(cfg), rng.integers(0, 256, (1, spec.H, spec.W), np.uint8))
    await tb.set_args(bufs)
    await tb.write("AP_CTRL", AP["AP_START"])
    assert await tb.read("AP_CTRL") == 0, "running: ap_start taken, not idle, not done"
    while not (await tb.read("AP_CTRL")) & AP["AP_DONE"]:  # polling, interrupts off
        await ClockCycles(dut.ap_clk, 50)
    assert await tb.read("AP_CTRL") == AP["AP_IDLE"], "ap_done and ap_ready clear on read"
    assert await tb.read("ISR") == 0 and not int(dut.interrupt.value), "IER = 0: no interrupt status"

    await tb.write("IER", 1)  # GIE still 0
    await tb.write("AP_CTRL", AP["AP_START"])
    await tb.write("AP_CTRL", AP["AP_START"])  # queued: taken when the first start is done
    assert await tb.read("AP_CTRL") == AP["AP_START"]
    while not await tb.read("ISR"):
        await ClockCycles(dut.ap_clk, 50)
    assert not int(dut.interrupt.value), "GIE = 0: no interrupt"
    await tb.write("GIE", 1)
    assert int(dut.interrupt.value)
    await tb.write("ISR", 1)  # toggle: cleared
    assert not int(dut.interrupt.value) and await tb.read("ISR") == 0
    await tb.write("ISR", 1)  # toggle: set again
    assert int(dut.interrupt.value)
    await tb.write("ISR", 1)
    assert await tb.read("AP_CTRL") & AP["AP_START"] == 0, "the queued start was taken"
    await with_timeout(RisingEdge(dut.interrupt), 20 * cycles.frame_latency(spec.N_OUTPUTS) * CLOCK_PS, "ps")
    assert await tb.read("AP_CTRL") == AP["AP_DONE"] | AP["AP_READY"] | AP["AP_IDLE"]
    assert image.written_back(tb.image_at(bufs.cfg))["FRAMES"] == 1, "each start counts its own frames"


@cocotb.test()
async def test_misaligned_buffers(dut):
    """An address that is not a multiple of 8 sets ERROR.MISALIGNED: the start moves no data and
    finishes at once with ap_done; the next aligned start clears ERROR and runs normally."""
    tb = KrnlTB(dut)
    await tb.reset()
    rng = np.random.default_rng(11)
    cfg = golden.random_config(rng, 0.8)
    ifmaps = rng.integers(0, 256, (1, spec.H, spec.W), np.uint8)
    for field, offset in (("cfg", 4), ("ifmap", 1), ("ofmap", 2), ("cfg", 7), ("ofmap", 4)):
        bufs = Buffers(BUFS.cfg, BUFS.ifmap, BUFS.ofmap, 1)
        setattr(bufs, field, getattr(bufs, field) + offset)
        run = await tb.run(bufs, timeout_cycles=100)
        assert run.done - run.start == 2, f"refusal took {run.done - run.start} cycles"
        assert await tb.read("ERROR") == ERR["MISALIGNED"], f"{field} + {offset}"
        assert not tb.monitor.reads and not tb.monitor.writes, "a refused start moved data"
    await one_start(tb, rng, cfg, 1, ifmaps=ifmaps)  # checks ERROR = 0


@cocotb.test()
async def test_bus_error(dut):
    """A write answered SLVERR sets ERROR.BUS_ERROR; the start still completes with ap_done."""
    tb = KrnlTB(dut, pause=0.0)
    await tb.reset()
    rng = np.random.default_rng(13)
    cfg = golden.random_config(rng, 0.9)
    bufs = Buffers(BUFS.cfg, BUFS.ifmap, BUFS.ofmap, 1)
    tb.place(bufs, image.config_image(cfg), rng.integers(0, 256, (1, spec.H, spec.W), np.uint8))
    write = tb.ram.write_if._write

    async def failing(address, data):  # AxiRam answers SLVERR when its write raises
        if address == bufs.ofmap:
            raise OSError("injected memory error")
        await write(address, data)

    tb.ram.write_if._write = failing
    await tb.run(bufs)
    assert await tb.read("ERROR") == ERR["BUS_ERROR"]


@cocotb.test()
async def test_memory_fed_interval(dut):
    """Steady-state frame interval with the memory's latency and pauses, against the instance's own
    (model/hw/cycles.py) at C = 0, 0.5 and 0.8; within 5 %. Appends the numbers to VELCRO_RESULTS."""
    seed = env_int("VELCRO_SEED", 5)
    tb = KrnlTB(dut, seed=seed)
    await tb.reset()
    rng = np.random.default_rng(seed)
    for density, frames in ((0.0, 5), (0.5, 6), (0.8, 9)):
        cfg = golden.random_config(rng, density)
        bufs = Buffers(BUFS.cfg, BUFS.ifmap, BUFS.ofmap, frames)
        ifmaps = rng.integers(0, 256, (frames, spec.H, spec.W), np.uint8)
        await one_start(tb, rng, cfg, frames, bufs, ifmaps)
        ends = [end for _, end in tb.frame_times(bufs)]
        steady = ends[2:]  # the first frames fill the pipeline
        measured = (steady[-1] - steady[0]) / (len(steady) - 1)
        model = cycles.frame_interval(cfg.computed_outputs)
        result = {"C": density, "computed": cfg.computed_outputs, "frames": frames, "latency": tb.latency,
                  "pause": tb.pause, "interval": measured, "model": model, "ratio": measured / model}  # fmt: skip
        record(result)
        print(f"memory-fed interval at C = {density}: {measured:.1f} cycles, model {model} "
              f"({100 * (measured / model - 1):+.2f} %), latency {tb.latency}, pauses {tb.pause:.0%}")
        assert measured <= 1.05 * model, f"memory-fed interval {measured:.1f} > 105 % of {model} at C = {density}"


@cocotb.test(skip="VELCRO_JOB" not in os.environ)
async def test_host_job(dut):
    """The host's sim backend: run VELCRO_JOB's runs one after another, each from reset as every
    start is, check every OFMAP against the golden model of its image, write VELCRO_RESULT."""
    job = KernelJob.load(os.environ["VELCRO_JOB"])
    tb = KrnlTB(dut, latency=env_int("VELCRO_LATENCY", 64), pause=env_float("VELCRO_PAUSE", 0.0))
    images, ofmaps = np.zeros_like(job.images), np.zeros_like(job.ifmaps)
    ends = np.zeros(len(job.ifmaps), np.int64)
    starts, dones = np.zeros(job.runs, np.int64), np.zeros(job.runs, np.int64)
    base = 1 << 32
    for r in range(job.runs):
        n, frames = int(job.n_frames[r]), job.frames(r)
        bufs = Buffers(base, base + spec.IMAGE_BYTES, base + spec.IMAGE_BYTES + n * spec.FRAME_BYTES, n)
        await tb.reset()
        tb.place(bufs, job.images[r], job.ifmaps[frames])
        tb.ram.write(bufs.ofmap, bytes(n * spec.FRAME_BYTES))  # no OFMAP of an earlier run left to pass for this one's
        run = await tb.run(bufs)
        check_ofmaps(image.config_from_image(job.images[r]), job.ifmaps[frames], run.ofmaps, f"run {r}, ")
        assert await tb.read("ERROR") == 0, f"run {r}: ERROR set"
        images[r], ofmaps[frames], starts[r], dones[r] = run.image, run.ofmaps, run.start, run.done
        ends[frames] = [end for _, end in tb.frame_times(bufs)]
    KernelResult(images, ofmaps, ends, starts, dones).save(os.environ["VELCRO_RESULT"])
