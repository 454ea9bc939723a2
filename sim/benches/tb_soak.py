"""Randomized soak of `velcro_top` (rtl/README.md, sections 2-6 and 8): many frames on all instances at once,
random settings and traffic, and disturbances, every output bit against the golden model.

Each instance (lane) runs segments on its own: new settings (weights, bias, M, S, CONTROL, ZP_CONFIG, MASK
with densities from 0 to 1, AVG; random upper bits and byte strobes), a few random frames with random
idle cycles on s_axis and backpressure on m_axis (rates and burst lengths drawn per segment), then, once
idle, FRAMES and STATUS checked and FRAME_ERROR cleared. Per good frame queued, a disturbance follows with
probability VELCRO_SOAK_RATE, of the kinds in DISTURBANCE_WEIGHTS:

* early_tlast / late_tlast: a malformed frame before a good one (section 5): FRAME_ERROR, the partial
  frame produces nothing and is not counted, the long one is processed as a frame;
* write_busy: arithmetic registers, CONTROL, ZP_CONFIG, MASK, AVG or a few bytes of one register written
  while the lane is mid-frame (section 4): frames in flight are only checked for shape and counted, later
  ones must be exact with the new values;
* reset: rst pulsed while frames are in flight: ports and registers at their reset values, nothing more
  leaves m_axis; the epoch ends and every lane is configured again (MASK and AVG are undefined);
* bus_sweep: AXI4-Lite reads and writes, while the lanes stream, to every named register of an instance,
  to its unmapped gaps and to the next stretch of a walk over the whole 17-bit address space: every
  response OKAY, constants, unmapped words (0) and RW words (the bench's shadow) read as documented;
  writes go only where they must be ignored.

Every frame whose first beat arrives after the last write to its lane completed is compared bit for bit
with `golden.frame_result` under the settings then in effect (the bench keeps a shadow image of every
lane's registers); right after it its LAST_COMPUTED, LAST_PREDICTED, LAST_MACS and LAST_CYCLES (against
the bench's handshake monitor) are read, when FRAMES around the reads shows they are still its own.
Every disturbance must be followed by an exact frame on every lane it touched. A lane with work
outstanding and no handshake for WATCHDOG_CYCLES, or an AXI4-Lite operation without a response, stops
the run at once, naming the lane and its state; other failures are counted and fail the test at the end.

Knobs (environment): VELCRO_SEED, VELCRO_SOAK_FRAMES (frames through the cores, all lanes together),
VELCRO_SOAK_RATE, VELCRO_SOAK_WALK_WORDS (address-walk words per bus sweep; default: enough to cover the
space once), VELCRO_SOAK_STATS (a JSON file rewritten every few seconds, for progress and the report),
VELCRO_SOAK_PLANT ("wrong_frame": corrupt the expected value of the 4th frame checked, on whichever lane;
"stuck_lane": hold lane PLANTED_LANE's m_axis_tready low), to prove that the soak can fail.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import cocotb
import numpy as np
from cocotb.queue import Queue
from cocotb.triggers import ClockCycles, Event, Lock, RisingEdge
from cocotbext.axi import AxiResp

from model.hw import golden, image, spec
from model.hw.golden import ConvConfig
from sim.benches import common
from sim.benches.common import env_float, env_int

DISTURBANCE_WEIGHTS = {"early_tlast": 0.2, "late_tlast": 0.2, "write_busy": 0.35, "bus_sweep": 0.19, "reset": 0.06}
# No lane stays silent this long with work outstanding: the slowest frame, stalled, is far shorter.
WATCHDOG_CYCLES = common.FRAME_TIMEOUT_CYCLES
WATCHDOG_PERIOD = 256  # cycles between watchdog checks
BUS_TIMEOUT_CYCLES = 200  # beyond the queueing of a bulk transfer (1 cycle per word), nothing answers
PLANTED_LANE = 5
IN_PROGRESS = 1 << 62  # the end cycle of a write still under way
MAX_RECORDED = 20  # failures kept in full in the statistics
MAX_FAILURES = 50  # stop early: a broken build should not soak for twenty minutes
STALL_PATTERN_CYCLES = 4096
FEED_POLL_CYCLES = 64  # how often a lane's feeder looks at its queue: far less than a frame's 512 beats
SEGMENT_FRAMES = (2, 13)  # good frames per segment (configure, stream, check), drawn from this range
WIND_DOWN_FRAMES_PER_LANE = 3  # the last frames of the run come without disturbances
STALL_RATES = (0.0, 0.05, 0.2, 0.4)  # share of cycles a lane's s_axis idles / m_axis backpressures
STALL_BURSTS = (1.0, 4.0, 32.0, 200.0)  # mean length of those stalls in cycles
STATS_PERIOD_S = 2.0  # the statistics file is rewritten at most this often (progress)
BEAT_MASK = (1 << spec.BEAT_BITS) - 1
WORDS_PER_INSTANCE = spec.INSTANCE_STRIDE // 4
TOTAL_WORDS = spec.INSTANCES * WORDS_PER_INSTANCE
SWEEP_CHUNK_WORDS = 32  # bus operations of a sweep stay this short so other users interleave
STATUS = spec.REG["STATUS"]
FRAME_ERROR = STATUS.field("FRAME_ERROR").mask
COUNTER_BLOCK = ("FRAMES", "LAST_CYCLES", "LAST_MACS", "LAST_COMPUTED")  # consecutive words
REGISTER_BLOCK = ("W", "BIAS", "MULT", "SHIFT", "ZP_CONFIG")  # consecutive words, written as one burst


def _register_of_word() -> list[spec.Register | None]:
    table: list[spec.Register | None] = [None] * WORDS_PER_INSTANCE
    for reg in spec.REGISTERS:
        for i in range(reg.count):
            table[reg.addr(i) // 4] = reg
    return table


REG_AT = _register_of_word()
RW_BYTE = np.array([REG_AT[b // 4] is not None and REG_AT[b // 4].writable for b in range(spec.INSTANCE_STRIDE)])
NAMED_WORDS = [a // 4 for a in range(0, spec.REG["MASK"].offset, 4) if not spec.unmapped(a)]


class EpochAborted(Exception):
    """A reset ended the epoch: the task that sees it stops."""


class Hang(AssertionError):
    pass


# ---------------------------------------------------------------- stimulus
def random_frame(rng: np.random.Generator) -> np.ndarray:
    """Uniform noise, zero rectangles (what prediction feeds on), sparse, or constant IFMAPs."""
    kind = rng.choice(4, p=[0.35, 0.4, 0.15, 0.1])
    x = common.random_ifmap(rng)
    if kind == 1:
        for _ in range(rng.integers(1, 7)):
            y0, x0 = rng.integers(0, spec.H, 2)
            h, w = rng.integers(4, 40, 2)
            x[y0 : y0 + h, x0 : x0 + w] = 0
    elif kind == 2:
        x[rng.random((spec.H, spec.W)) > 0.1] = 0
    elif kind == 3:
        x[:] = rng.choice([0, 255, int(rng.integers(0, 256))])
    return x


def random_mask(rng: np.random.Generator) -> np.ndarray:
    """Density uniform in [0, 1], independent bits or blocks, or all / nothing compressed."""
    kind = rng.choice(3, p=[0.7, 0.2, 0.1])
    if kind == 0:
        return rng.random((spec.H, spec.W)) < rng.random()
    if kind == 1:
        blocks = rng.random((spec.H // 8, spec.W // 8)) < rng.random()
        return np.kron(blocks, np.ones((8, 8), dtype=bool)).astype(bool)
    return np.full((spec.H, spec.W), bool(rng.integers(2)))


def random_arithmetic(rng: np.random.Generator) -> tuple[np.ndarray, int, int, int]:
    """(weights, bias, M, S): mostly outputs spread over 0..255 (golden.random_config), sometimes anything."""
    if rng.random() < 0.7:
        cfg = golden.random_config(rng, 0.0)
        return cfg.weights, cfg.bias, cfg.mult, cfg.shift
    return (rng.integers(-128, 128, size=(spec.K, spec.K)), int(rng.integers(-(2**31), 2**31)),
            int(rng.integers(0, 2**16)), int(rng.integers(0, 32)))  # fmt: skip


def junk_upper(rng: np.random.Generator, value: int, bits: int) -> int:
    """`value` in its low `bits`, random bits above (the register drops them) half of the time."""
    low = value & ((1 << bits) - 1)
    return low | (int(rng.integers(0, 2**32)) & ~((1 << bits) - 1) if rng.random() < 0.5 and bits < 32 else 0)


def words(values: list[int]) -> bytes:
    return b"".join((int(v) & 0xFFFFFFFF).to_bytes(4, "little") for v in values)


def stall_pattern(rng: np.random.Generator, rate: float, mean_stall: float, length: int) -> np.ndarray:
    """Alternating runs of go and stall cycles (geometric lengths, stalls capped at 1,000) with about
    `rate` of the cycles stalled."""
    out = np.zeros(length, dtype=bool)
    if rate <= 0:
        return out
    mean_go = mean_stall * (1 - rate) / rate
    pos = int(rng.integers(0, max(1, int(mean_go)) + 1))
    while pos < length:
        stall = min(1000, int(rng.geometric(1 / mean_stall)))
        out[pos : pos + stall] = True
        pos += stall + int(rng.geometric(min(1.0, 1 / max(mean_go, 1.0))))
    return out


def describe(cfg: ConvConfig) -> dict:
    """The settings of a frame in a few numbers, for a failure report."""
    return {"skip_en": cfg.skip_en, "zp_en": cfg.zp_en, "zp_pattern": cfg.zp_pattern, "zp_max": cfg.zp_max,
            "compressed": int(cfg.effective_mask.sum()), "bias": int(cfg.bias), "mult": int(cfg.mult),
            "shift": int(cfg.shift)}  # fmt: skip


# ---------------------------------------------------------------- the bench's model of each lane
class Shadow:
    """What one instance's registers hold, as the bytes of its address space (model.hw.image's layout):
    RW words keep the raw bytes written (their stored bits are decoded on use), MASK and AVG are
    undefined after reset until written in full."""

    def __init__(self):
        self.image = np.zeros(spec.INSTANCE_STRIDE, dtype=np.uint8)
        self._config: ConvConfig | None = None
        self.reset()

    def reset(self) -> None:
        self.image[:] = 0
        for reg in spec.REGISTERS:
            if reg.writable and reg.reset:
                self.image[reg.offset : reg.offset + 4] = np.frombuffer(words([reg.reset]), np.uint8)
        self.mask_valid = self.avg_valid = False
        self._changed()

    def _changed(self) -> None:
        self._config = None  # decoded again when next asked for

    def write(self, offset: int, data: bytes) -> None:
        span = np.frombuffer(data, dtype=np.uint8)
        keep = RW_BYTE[offset : offset + len(span)]
        self.image[offset : offset + len(span)][keep] = span[keep]
        for name in ("MASK", "AVG"):
            reg = spec.REG[name]
            if offset <= reg.offset and offset + len(span) >= reg.end:
                setattr(self, f"{name.lower()}_valid", True)
        self._changed()

    def word(self, offset: int) -> int:
        return int.from_bytes(self.image[offset : offset + 4].tobytes(), "little")

    def expected_read(self, offset: int) -> int | None:
        """What the word reads as documented, or None where it depends on traffic (STATUS, counters) or is
        undefined (MASK and AVG before they are written)."""
        reg = REG_AT[offset // 4]
        if reg is None:
            return 0
        if reg.name in ("ID", "GEOMETRY"):
            return reg.reset
        if reg.is_memory:
            return self.word(offset) if getattr(self, f"{reg.name.lower()}_valid") else None
        return common.read_back(reg, self.word(offset)) if reg.writable else None

    @property
    def config(self) -> ConvConfig:
        if self._config is None:
            self._config = image.config_from_image(self.image)
        return self._config

    @property
    def usable(self) -> bool:
        """Frames may run: with SKIP_EN set the MASK and AVG are written."""
        return not self.config.skip_en or (self.mask_valid and self.avg_valid)


@dataclass(eq=False)
class Disturbance:
    kind: str
    lanes: set[int]  # lanes still owing an exact frame after it
    detail: str
    end: int = -1  # cycle it completed (-1: not yet performed)


@dataclass(eq=False)
class InputItem:
    """Beats for one lane, tlast on the last: a frame, a partial frame or a frame with extra beats."""

    lane: int
    beats: list[int]
    kind: str  # "good", "early_tlast" or "late_tlast"
    ifmap: np.ndarray | None  # the 512 beats processed (None: the item produces no output)
    disturbance: Disturbance | None = None
    first_in: int = -1
    last_out: int = -1


@dataclass(eq=False)
class Write:
    """A configuration write to one lane: issued (bus lock taken) and completed (response taken)."""

    start: int
    end: int  # IN_PROGRESS until the response
    config: ConvConfig  # the settings once it is performed


@dataclass
class Lane:
    shadow: Shadow = field(default_factory=Shadow)
    writes: list[Write] = field(default_factory=list)
    base: ConvConfig | None = None  # the settings before the first write in `writes`
    frames_since_reset: int = 0
    error_expected: bool = False
    pending: list[Disturbance] = field(default_factory=list)
    frames_seen: int = 0  # output frames since the run started, for reproduction notes


# ---------------------------------------------------------------- AXI4-Lite with a lock and a watchdog
class Bus:
    """The one AXI4-Lite master, one operation at a time (a reset must never cut one short), every
    response required OKAY. The stream driver's watchdog reads `op` to catch an operation that hangs."""

    def __init__(self, dut, soak: "Soak"):
        self.axil = common.start_clock_and_bus(dut)
        self.lock = Lock()
        self.soak = soak
        self.op: tuple[int, int, str] | None = None  # (start cycle, words, what)
        self.reads = self.writes = 0
        self.walked: set[int] = set()  # top word addresses read by the address walk

    async def _run(self, what: str, n_words: int, operation):
        self.op = (self.soak.cycle, n_words, what)
        resp = await operation
        self.op = None
        if resp is None:
            raise AssertionError(f"{what}: flushed by a reset (the bench resets only with the bus idle)")
        if resp.resp != AxiResp.OKAY:
            self.soak.fail("bus", f"{what}: answered {resp.resp!r}, not OKAY")
        return resp

    async def write_locked(self, addr: int, data: bytes) -> None:
        self.writes += math.ceil(len(data) / 4)
        await self._run(f"write of {len(data)} bytes to 0x{addr:05x}", math.ceil(len(data) / 4), self.axil.write(addr, data))

    async def read_locked(self, addr: int, n_words: int = 1) -> list[int]:
        self.reads += n_words
        resp = await self._run(f"read of {n_words} words at 0x{addr:05x}", n_words, self.axil.read(addr, 4 * n_words))
        return [int.from_bytes(resp.data[4 * k : 4 * k + 4], "little") for k in range(n_words)]

    async def read(self, addr: int, n_words: int = 1) -> list[int]:
        async with self.lock:
            self.soak.check_epoch()
            return await self.read_locked(addr, n_words)


# ---------------------------------------------------------------- streams
class Streams:
    """All lanes' s_axis sources and m_axis sinks in one coroutine, once per clock edge (cocotbext-axi's
    stream models cannot bind to one slice of a vector port), with the watchdog.

    Each lane sends its queued items; a lane newly offers a beat unless its idle pattern says stall, and
    holds TVALID until the beat is taken; TREADY follows the backpressure pattern. Output beats are
    collected per lane into frames, which must have 512 beats with tlast on the last; the soak gets each
    item's first handshake, each finished input item and each output frame.
    """

    def __init__(self, dut, soak: "Soak", lanes: int):
        self.dut, self.soak, self.n = dut, soak, lanes
        self.queue: list[deque[InputItem]] = [deque() for _ in range(lanes)]
        self.pos = [0] * lanes  # next beat of queue[i][0]
        self.owed: list[deque[InputItem]] = [deque() for _ in range(lanes)]  # items whose output is due
        self.received: list[list[int]] = [[] for _ in range(lanes)]
        self.idle = [Event() for _ in range(lanes)]
        for e in self.idle:
            e.set()
        self.beats_in = [0] * lanes  # input handshakes since the run started
        self.last_progress = [0] * lanes
        self.idle_pattern: list[int] = [0]
        self.bp_pattern: list[int] = [0]
        self.stuck = 0  # lanes whose m_axis_tready is held low (a planted hang)
        self.waiting = 0  # lanes with queued beats
        self.in_reset = False
        self.cycle = 0
        cocotb.start_soon(self._run())

    def enqueue(self, item: InputItem) -> None:
        i = item.lane
        self.queue[i].append(item)
        self.waiting |= 1 << i
        if item.ifmap is not None:
            self.owed[i].append(item)
        if self.busy(i) and self.idle[i].is_set():
            self.idle[i].clear()
            self.last_progress[i] = self.cycle

    def busy(self, i: int) -> bool:
        return bool(self.queue[i] or self.owed[i])

    def unstarted(self, i: int) -> int:
        """Output-producing items of lane i whose first beat is still to be sent."""
        return sum(1 for item in self.queue[i] if item.ifmap is not None and item.first_in < 0)

    def in_flight_on(self, i: int) -> bool:
        return any(item.first_in >= 0 for item in self.owed[i])

    def in_flight(self) -> int:
        """Frames started (first beat taken) whose output is not complete, over all lanes."""
        return sum(1 for owed in self.owed for item in owed if item.first_in >= 0)

    def flush(self) -> None:
        """A reset: drop every queued beat, partial output and owed frame; drive nothing until released."""
        self.in_reset = True
        self.waiting = 0
        for i in range(self.n):
            self.queue[i].clear()
            self.owed[i].clear()
            self.received[i] = []
            self.pos[i] = 0
            self.idle[i].set()

    def state(self, i: int) -> str:
        """Lane i's state, for a hang message."""
        dut = self.dut
        bit = lambda sig: int(sig.value) >> i & 1  # noqa: E731
        current = f"beat {self.pos[i]} of a {len(self.queue[i][0].beats)}-beat {self.queue[i][0].kind} item" if self.queue[i] else "nothing"
        return (f"{len(self.queue[i])} input items queued (sending {current}; s_axis_tvalid={bit(dut.s_axis_tvalid)}, "
                f"s_axis_tready={bit(dut.s_axis_tready)}), {len(self.owed[i])} output frames owed "
                f"({len(self.received[i])} beats of the current one in; m_axis_tvalid={bit(dut.m_axis_tvalid)}, "
                f"m_axis_tready={bit(dut.m_axis_tready)}{', held low by the plant' if self.stuck >> i & 1 else ''})")  # fmt: skip

    def _watchdog(self) -> None:
        for i in range(self.n):
            silent = self.cycle - self.last_progress[i]
            if self.busy(i) and silent > WATCHDOG_CYCLES:
                raise Hang(f"lane {i} hangs: no handshake for {silent} cycles (since cycle {self.last_progress[i]}) "
                           f"with work outstanding: {self.state(i)}")  # fmt: skip
        op = self.soak.bus.op
        if op is not None and self.cycle - op[0] > BUS_TIMEOUT_CYCLES + 8 * op[1]:
            raise Hang(f"AXI4-Lite hangs: {op[2]} issued at cycle {op[0]} has no response after {self.cycle - op[0]} cycles")

    async def _run(self) -> None:
        try:
            await self._loop()
        except Exception as err:  # a hang or a broken frame: the soak records it and stops
            self.soak.fatal(err)

    async def _loop(self) -> None:
        dut, n = self.dut, self.n
        edge = RisingEdge(dut.clk)
        queue, pos, owed, received = self.queue, self.pos, self.owed, self.received
        all_lanes = (1 << n) - 1
        valid = last = ready = 0
        packed = 0  # s_axis_tdata
        driven = [None, None, None, None]  # tvalid, tlast, tdata, tready as on the ports
        while True:
            await edge
            self.cycle += 1
            cycle = self.cycle
            if cycle % WATCHDOG_PERIOD == 0:
                self._watchdog()
            if self.in_reset:
                valid = last = 0
                if driven[0] != 0:
                    dut.s_axis_tvalid.value = driven[0] = 0
                continue
            taken = valid & int(dut.s_axis_tready.value) if valid else 0
            out = ready & int(dut.m_axis_tvalid.value) if ready else 0
            if out:
                m_data, m_last = int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value)
            phase = cycle % len(self.idle_pattern)
            may_offer = ~self.idle_pattern[phase]
            active = taken | out | (self.waiting & ~valid & may_offer)
            while active:
                bit = active & -active
                active ^= bit
                i = bit.bit_length() - 1
                if taken & bit:
                    self.last_progress[i] = cycle
                    self.beats_in[i] += 1
                    item = queue[i][0]
                    if pos[i] == 0:
                        item.first_in = cycle
                    pos[i] += 1
                    if pos[i] == len(item.beats):
                        queue[i].popleft()
                        pos[i] = 0
                        if not queue[i]:
                            self.waiting &= ~bit
                        self.soak.input_done(item)
                    valid &= ~bit
                if out & bit:
                    self.last_progress[i] = cycle
                    if not owed[i]:
                        raise AssertionError(f"lane {i}: an output beat at cycle {cycle} with no frame owed")
                    beats = received[i]
                    beats.append(m_data >> (spec.BEAT_BITS * i) & BEAT_MASK)
                    tlast = m_last >> i & 1
                    if tlast != (len(beats) == spec.BEATS_PER_FRAME):
                        raise AssertionError(f"lane {i}: output tlast={tlast} on beat {len(beats) - 1} at cycle {cycle}")
                    if tlast:
                        received[i] = []
                        item = owed[i].popleft()
                        item.last_out = cycle
                        self.soak.output_frame(item, beats)
                if self.waiting & may_offer & bit and not valid & bit:  # valid holds until the beat is taken
                    item = queue[i][0]
                    valid |= bit
                    packed = packed & ~(BEAT_MASK << (spec.BEAT_BITS * i)) | item.beats[pos[i]] << (spec.BEAT_BITS * i)
                    last = last & ~bit | (bit if pos[i] == len(item.beats) - 1 else 0)
                if not self.busy(i) and not self.idle[i].is_set():
                    self.idle[i].set()
            ready = all_lanes & ~self.bp_pattern[phase] & ~self.stuck
            if valid != driven[0]:
                dut.s_axis_tvalid.value = driven[0] = valid
            if last != driven[1]:
                dut.s_axis_tlast.value = driven[1] = last
            if packed != driven[2]:
                dut.s_axis_tdata.value = driven[2] = packed
            if ready != driven[3]:
                dut.m_axis_tready.value = driven[3] = ready


# ---------------------------------------------------------------- the soak
class Soak:
    def __init__(self, dut):
        self.dut = dut
        self.seed = env_int("VELCRO_SEED", 1)
        self.target_frames = env_int("VELCRO_SOAK_FRAMES", 512)
        self.rate = env_float("VELCRO_SOAK_RATE", 0.06)
        self.plant = os.environ.get("VELCRO_SOAK_PLANT", "")
        if self.plant not in ("", "wrong_frame", "stuck_lane"):
            raise ValueError(f"VELCRO_SOAK_PLANT={self.plant!r}: choose wrong_frame or stuck_lane")
        stats_path = os.environ.get("VELCRO_SOAK_STATS")
        self.stats_path = Path(stats_path) if stats_path else None
        self.rng = np.random.default_rng(self.seed)
        self.n = len(dut.s_axis_tvalid)
        dut.s_axis_tvalid.value = 0
        dut.m_axis_tready.value = 0
        dut.rst.value = 0
        self.bus = Bus(dut, self)
        for model in (self.bus.axil.write_if, self.bus.axil.read_if):
            model.log.setLevel(logging.ERROR)  # they warn about nothing useful here
        self.lanes = [Lane() for _ in range(self.n)]
        self.streams = Streams(dut, self, self.n)
        if self.plant == "stuck_lane":
            self.streams.stuck = 1 << PLANTED_LANE
        expected_sweeps = max(1.0, self.target_frames * self.rate * DISTURBANCE_WEIGHTS["bus_sweep"])
        self.walk_words = env_int("VELCRO_SOAK_WALK_WORDS", math.ceil(TOTAL_WORDS / expected_sweeps))
        self.walk_cursor = 0
        self.generation = 0  # resets so far: counter reads of an older generation are dropped
        self.aborted = self.reset_planned = False
        self.queued_frames = 0  # output-producing items queued, less those a reset dropped
        self.idle_bits = np.zeros(STALL_PATTERN_CYCLES, dtype=np.int64)  # bit i: lane i may not offer a beat
        self.bp_bits = np.zeros(STALL_PATTERN_CYCLES, dtype=np.int64)  # bit i: lane i's m_axis_tready low
        self.stats_written = 0.0
        self.fatal_error: BaseException | None = None
        self.counter_queue: Queue = Queue()
        self.counter_busy = False
        self.live = 0  # tasks of the current epoch still running
        self.epoch_done = Event()
        self.started = time.monotonic()
        self.kinds_to_cover = [str(k) for k in self.rng.permutation(list(DISTURBANCE_WEIGHTS))]
        self.stats = {
            "seed": self.seed, "target_frames": self.target_frames, "rate": self.rate, "lanes": self.n,
            "plant": self.plant or None,
            "frames": 0, "frames_exact": 0, "frames_unspecified": 0, "frames_lost_to_reset": 0,
            "malformed_items": 0, "wrong_frames": 0, "hangs": 0, "failures": 0,
            "disturbances": Counter(), "write_busy_targets": Counter(), "disturbances_verified": 0,
            "counter_checks": 0, "counter_reads_skipped": 0, "predicted_outputs": 0, "computed_outputs": 0,
            "compressed_outputs": 0, "zp_frames": 0, "bus_reads": 0, "bus_writes": 0, "walk_coverage": 0.0,
            "epochs": 0, "segments": 0, "cycles": 0, "sim_wall_s": 0.0, "done": False, "failure_log": [],
        }  # fmt: skip

    @property
    def cycle(self) -> int:
        return self.streams.cycle

    # ------------------------------------------------ bookkeeping
    def fail(self, kind: str, message: str, **detail) -> None:
        """A check failed: count it, keep the first few in full, go on (a hang stops the run instead)."""
        self.stats["failures"] += 1
        if kind == "wrong_frame":
            self.stats["wrong_frames"] += 1
        if len(self.stats["failure_log"]) < MAX_RECORDED:
            self.stats["failure_log"].append({"kind": kind, "message": message, "cycle": self.cycle,
                                              "seed": self.seed, **detail})  # fmt: skip
        self.dut._log.error("%s (cycle %d, VELCRO_SEED=%d)", message, self.cycle, self.seed)
        if self.stats["failures"] >= MAX_FAILURES:
            self.fatal(AssertionError(f"{MAX_FAILURES} failures: stopping early"), record=False)

    def fatal(self, err: BaseException, record: bool = True) -> None:
        """End the run: a hang, a broken stream, or a bench error."""
        if self.fatal_error is not None:
            return
        self.fatal_error = err
        if isinstance(err, Hang):
            self.stats["hangs"] += 1
            self.fail("hang", str(err))
        elif record:
            self.fail("fatal", f"{type(err).__name__}: {err}")
        self.epoch_done.set()
        for i in range(self.n):
            self.streams.idle[i].set()

    def check_epoch(self) -> None:
        if self.aborted or self.fatal_error is not None:
            raise EpochAborted

    def spawn(self, coro) -> None:
        """Run `coro` as part of the current epoch: a reset ends it quietly, any other error ends the run."""
        self.live += 1
        self.epoch_done.clear()

        async def guarded():
            try:
                await coro
            except EpochAborted:
                pass
            except Exception as err:
                self.fatal(err)
            self.live -= 1
            if not self.live:
                self.epoch_done.set()

        cocotb.start_soon(guarded())

    def write_stats(self) -> None:
        self.stats_written = time.monotonic()
        self.stats.update(cycles=self.cycle, bus_reads=self.bus.reads, bus_writes=self.bus.writes,
                          walk_coverage=len(self.bus.walked) / TOTAL_WORDS, sim_wall_s=time.monotonic() - self.started)  # fmt: skip
        if self.stats_path is not None:
            tmp = self.stats_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.stats, indent=1))
            tmp.replace(self.stats_path)

    def disturbed(self, d: Disturbance) -> None:
        """`d` was performed: count it; each of its lanes owes an exact frame."""
        d.end = self.cycle
        self.stats["disturbances"][d.kind] += 1
        for i in d.lanes:
            self.lanes[i].pending.append(d)

    # ------------------------------------------------ callbacks from the stream driver
    def input_done(self, item: InputItem) -> None:
        if item.kind != "good":
            self.lanes[item.lane].error_expected = True
            self.stats["malformed_items"] += 1
        if item.disturbance is not None:
            self.disturbed(item.disturbance)

    def config_of(self, item: InputItem) -> ConvConfig | None:
        """The settings a frame ran with, or None when a write to its lane overlapped it (section 4)."""
        lane = self.lanes[item.lane]
        cfg = lane.base
        for w in lane.writes:
            if w.end < item.first_in:
                cfg = w.config
            elif w.start <= item.last_out:
                return None
        return cfg

    def output_frame(self, item: InputItem, beats: list[int]) -> None:
        i = item.lane
        lane = self.lanes[i]
        lane.frames_since_reset += 1
        lane.frames_seen += 1
        self.stats["frames"] += 1
        cfg = self.config_of(item)
        if cfg is None:
            self.stats["frames_unspecified"] += 1
            return
        result = golden.frame_result(item.ifmap, cfg)
        expected = result.ofmap
        if self.plant == "wrong_frame" and self.stats["frames_exact"] == 3 and not self.stats["wrong_frames"]:
            expected = expected.copy()
            expected[17, 33] ^= 1
        got = golden.beats_to_frame(beats)
        if not np.array_equal(got, expected):
            bad = got != expected
            y, x = np.argwhere(bad)[0]
            where = {"compressed": int((bad & result.compressed).sum()), "predicted": int((bad & result.predicted).sum()),
                     "computed": int((bad & result.computed).sum())}  # fmt: skip
            self.fail("wrong_frame", f"lane {i}, frame {lane.frames_seen} ({item.kind}, first beat at cycle "
                      f"{item.first_in}, last at {item.last_out}): {int(bad.sum())} outputs differ {where}; first at "
                      f"(y={y}, x={x}): got {got[y, x]}, expected {expected[y, x]}", lane=i, frame=lane.frames_seen,
                      settings=describe(cfg), writes=[(w.start, w.end) for w in lane.writes])  # fmt: skip
            return
        self.stats["frames_exact"] += 1
        self.stats["computed_outputs"] += result.computed_outputs
        self.stats["predicted_outputs"] += result.predicted_outputs
        self.stats["compressed_outputs"] += int(result.compressed.sum())
        self.stats["zp_frames"] += int(cfg.zp_en)
        still = []
        for d in lane.pending:
            if d.end < item.first_in:
                d.lanes.discard(i)
                self.stats["disturbances_verified"] += not d.lanes
            else:
                still.append(d)
        lane.pending = still
        self.counter_queue.put_nowait((self.generation, i, lane.frames_since_reset, item, result))

    # ------------------------------------------------ per-frame counters
    async def read_counters(self) -> None:
        """Right after a frame: its counters, when FRAMES before and after the reads shows they are its own."""
        while True:
            generation, i, number, item, result = await self.counter_queue.get()
            self.counter_busy = True
            lane = self.lanes[i]
            if generation != self.generation or lane.frames_since_reset != number or self.fatal_error is not None:
                self.stats["counter_reads_skipped"] += 1
            else:
                await self._check_counters(generation, i, number, item, result)
            self.counter_busy = False

    async def _check_counters(self, generation: int, i: int, number: int, item: InputItem,
                              result: golden.FrameResult) -> None:
        base = i * spec.INSTANCE_STRIDE
        async with self.bus.lock:
            if generation != self.generation:  # a reset came while the bus was busy
                self.stats["counter_reads_skipped"] += 1
                return
            frames, last_cycles, macs, computed = await self.bus.read_locked(base + spec.addr("FRAMES"), len(COUNTER_BLOCK))
            (predicted,) = await self.bus.read_locked(base + spec.addr("LAST_PREDICTED"))
            (frames_after,) = await self.bus.read_locked(base + spec.addr("FRAMES"))
        if not frames == frames_after == number:
            self.stats["counter_reads_skipped"] += 1
            return
        self.stats["counter_checks"] += 1
        got = {"LAST_COMPUTED": computed, "LAST_PREDICTED": predicted, "LAST_MACS": macs, "LAST_CYCLES": last_cycles}
        expect = {"LAST_COMPUTED": result.computed_outputs, "LAST_PREDICTED": result.predicted_outputs,
                  "LAST_MACS": result.macs, "LAST_CYCLES": item.last_out - item.first_in}  # fmt: skip
        if got != expect:
            self.fail("counters", f"lane {i}, frame {number} since reset: counters {got}, expected {expect} "
                      "(LAST_CYCLES: the handshake monitor's)", lane=i)  # fmt: skip

    async def counters_drained(self) -> None:
        while not self.counter_queue.empty() or self.counter_busy:
            await ClockCycles(self.dut.clk, 16)

    # ------------------------------------------------ configuration writes
    async def write(self, i: int, offset: int, data: bytes) -> None:
        """A write to lane i's registers, kept in its shadow and in its list of writes (from the moment it
        is issued: a frame that ends while it is under way ran with unspecified settings)."""
        lane = self.lanes[i]
        async with self.bus.lock:
            self.check_epoch()
            write = Write(self.cycle, IN_PROGRESS, lane.shadow.config)
            lane.writes.append(write)
            await self.bus.write_locked(i * spec.INSTANCE_STRIDE + offset, data)
            lane.shadow.write(offset, data)
            write.end, write.config = self.cycle, lane.shadow.config

    def random_control(self, lane: Lane) -> tuple[int, int]:
        """(CONTROL, ZP_CONFIG) words: SKIP_EN only where MASK and AVG are written; random PATTERN values
        include 2 and 3 (stored as 0) and random upper bits."""
        rng = self.rng
        skip = bool(rng.random() < 0.8) and lane.shadow.mask_valid and lane.shadow.avg_valid
        zp = bool(rng.random() < 0.5)
        control = junk_upper(rng, int(skip) | int(zp) << 1, 2)
        zp_max = int(rng.choice([0, int(rng.integers(0, 20)), int(rng.integers(0, 256))]))
        return control, junk_upper(rng, int(rng.integers(0, 4)) | zp_max << 8, 16)

    async def write_arithmetic(self, i: int) -> None:
        weights, bias, mult, shift = random_arithmetic(self.rng)
        zp_config = self.lanes[i].shadow.word(spec.addr("ZP_CONFIG"))
        values = [junk_upper(self.rng, int(w), 8) for w in np.asarray(weights).reshape(-1)]
        values += [bias, junk_upper(self.rng, mult, 16), junk_upper(self.rng, shift, 5), zp_config]
        await self.write(i, spec.addr(REGISTER_BLOCK[0]), words(values))

    async def write_control(self, i: int) -> None:
        control, zp_config = self.random_control(self.lanes[i])
        await self.write(i, spec.addr("ZP_CONFIG"), words([zp_config]))
        await self.write(i, spec.addr("CONTROL"), words([control]))

    async def write_mask(self, i: int, full: bool) -> None:
        mask_bytes = golden.mask_bytes(random_mask(self.rng))
        await self.write_span(i, "MASK", mask_bytes, full)

    async def write_avg(self, i: int, full: bool) -> None:
        avg = self.rng.integers(0, 256, size=spec.N_OUTPUTS, dtype=np.uint8).tobytes()
        await self.write_span(i, "AVG", avg, full)

    async def write_span(self, i: int, name: str, data: bytes, full: bool) -> None:
        """All of MASK or AVG, or a random stretch of it starting and ending anywhere (byte strobes)."""
        reg = spec.REG[name]
        if full or not getattr(self.lanes[i].shadow, f"{name.lower()}_valid"):
            await self.write(i, reg.offset, data)
            return
        start = int(self.rng.integers(0, len(data) - 1))
        end = int(self.rng.integers(start + 1, min(len(data), start + 256) + 1))
        await self.write(i, reg.offset + start, data[start:end])

    async def configure(self, i: int) -> None:
        """Round start, lane idle: new settings, all of them after a reset."""
        lane, rng = self.lanes[i], self.rng
        fresh = not lane.shadow.usable or lane.base is None
        lane.writes.clear()
        lane.base = lane.shadow.config
        if fresh:  # after a reset: everything but AVG; AVG only if SKIP_EN will use it
            await self.write_mask(i, full=True)
            if rng.random() < 0.5:
                await self.write_avg(i, full=True)
            await self.write_arithmetic(i)
            await self.write_control(i)
            return
        if rng.random() < 0.5:
            await self.write_arithmetic(i)
        if rng.random() < 0.4:
            await self.write_mask(i, full=rng.random() < 0.7)
        if rng.random() < 0.25:
            await self.write_avg(i, full=rng.random() < 0.3)
        if rng.random() < 0.3 or not lane.shadow.usable:
            await self.write_control(i)

    async def write_while_busy(self, i: int, d: Disturbance) -> None:
        """Wait until lane i is mid-frame, then write one kind of setting."""
        streams = self.streams
        queued = sum(len(item.beats) for item in streams.queue[i]) - streams.pos[i]
        target = streams.beats_in[i] + int(self.rng.integers(1, max(2, queued)))
        while streams.beats_in[i] < target and streams.busy(i):
            await ClockCycles(self.dut.clk, 8)
            self.check_epoch()
        mid_frame = streams.pos[i] > 0 or streams.in_flight_on(i)
        what = str(self.rng.choice(["arithmetic", "control", "mask", "avg", "strobes"]))
        if what == "arithmetic":
            await self.write_arithmetic(i)
        elif what == "control":
            await self.write_control(i)
        elif what == "mask":
            await self.write_mask(i, full=self.rng.random() < 0.5)
        elif what == "avg":
            await self.write_avg(i, full=self.rng.random() < 0.2)
        else:  # a few bytes of one RW register, through byte strobes
            reg = self.rng.choice([r for r in spec.REGISTERS if r.writable and not r.is_memory])
            offset = reg.addr(int(self.rng.integers(0, reg.count))) + int(self.rng.integers(0, 4))
            n_bytes = int(self.rng.integers(1, 4 - offset % 4 + 1))
            data = bytearray(self.rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
            if offset == spec.addr("CONTROL") and not self.lanes[i].shadow.avg_valid:
                data[0] &= ~spec.REG["CONTROL"].field("SKIP_EN").mask  # AVG is undefined: SKIP_EN stays off
            await self.write(i, offset, bytes(data))
        d.detail = what + ("" if mid_frame else " (lane between frames)")
        self.stats["write_busy_targets"][what] += 1
        self.disturbed(d)
        if not streams.unstarted(i):  # some frame must start after the write
            streams.enqueue(self.good_item(i))
        await streams.idle[i].wait()
        self.check_epoch()

    # ------------------------------------------------ segments and epochs
    def good_item(self, i: int) -> InputItem:
        x = random_frame(self.rng)
        return InputItem(i, golden.frame_to_beats(x), "good", x)

    def malformed_item(self, i: int, kind: str) -> InputItem:
        x = random_frame(self.rng)
        beats = golden.frame_to_beats(x)
        if kind == "early_tlast":
            n_beats = int(self.rng.integers(1, spec.BEATS_PER_FRAME))
            return InputItem(i, beats[:n_beats], kind, None, Disturbance(kind, {i}, f"{n_beats} beats"))
        extra = int(self.rng.integers(1, 600))
        beats += [int(b) for b in self.rng.integers(0, 2**64, extra, dtype=np.uint64)]
        return InputItem(i, beats, kind, x, Disturbance(kind, {i}, f"{extra} extra beats"))

    def draw_stalls(self, i: int) -> None:
        """New idle and backpressure patterns for lane i (rates and burst lengths at random)."""
        for bits in (self.idle_bits, self.bp_bits):
            rate, burst = float(self.rng.choice(STALL_RATES)), float(self.rng.choice(STALL_BURSTS))
            bits &= ~(1 << i)
            bits |= stall_pattern(self.rng, rate, burst, STALL_PATTERN_CYCLES).astype(np.int64) << i
        self.streams.idle_pattern, self.streams.bp_pattern = self.idle_bits.tolist(), self.bp_bits.tolist()

    @property
    def winding_down(self) -> bool:
        """Enough frames are queued for the target: no new disturbance, so every one is followed by exact frames."""
        return self.queued_frames >= self.target_frames - WIND_DOWN_FRAMES_PER_LANE * self.n

    async def lane_loop(self, i: int) -> None:
        """Segments on lane i until enough frames are queued, and at least one after a reset."""
        first = True
        while first or self.queued_frames < self.target_frames or self.lanes[i].pending:
            first = False
            await self.segment(i)

    async def segment(self, i: int) -> None:
        """Configure lane i, queue a few frames (one behind the one being sent) with the disturbances drawn
        on the way, wait until the last one is out, then check FRAMES and STATUS."""
        self.stats["segments"] += 1
        self.draw_stalls(i)
        await self.configure(i)
        streams = self.streams
        for _ in range(int(self.rng.integers(*SEGMENT_FRAMES))):
            while streams.unstarted(i):
                await ClockCycles(self.dut.clk, FEED_POLL_CYCLES)
                self.check_epoch()
            kind = None if self.winding_down or self.rng.random() >= self.rate else self.next_kind()
            if kind in ("early_tlast", "late_tlast"):  # a good frame follows it
                streams.enqueue(self.malformed_item(i, kind))
            elif kind == "write_busy":
                self.spawn(self.write_while_busy(i, Disturbance(kind, {i}, "")))
            elif kind == "bus_sweep":
                self.spawn(self.bus_sweep())
            elif kind == "reset" and not self.reset_planned:
                self.reset_planned = True
                self.spawn(self.reset_pulse(int(self.rng.integers(0, spec.BEATS_PER_FRAME))))
            streams.enqueue(self.good_item(i))
            self.queued_frames += 1
        await streams.idle[i].wait()
        self.check_epoch()
        await self.segment_end(i)

    def next_kind(self) -> str:
        """Every kind once first (so even a short run sees them all), then by DISTURBANCE_WEIGHTS."""
        if self.kinds_to_cover:
            return self.kinds_to_cover.pop()
        names = list(DISTURBANCE_WEIGHTS)
        p = np.array([DISTURBANCE_WEIGHTS[k] for k in names])
        return str(self.rng.choice(names, p=p / p.sum()))

    async def reset_pulse(self, delay: int) -> None:
        """rst for RESET_CYCLES after `delay` cycles, with the bus idle; then the ports and one lane's
        registers must read their reset values, and the epoch ends."""
        await ClockCycles(self.dut.clk, delay)
        async with self.bus.lock:
            self.check_epoch()
            d = Disturbance("reset", set(range(self.n)), f"{self.streams.in_flight()} frames in flight")
            lost = sum(len(owed) for owed in self.streams.owed)
            await RisingEdge(self.dut.clk)
            self.aborted = True
            self.generation += 1
            self.streams.flush()
            await common.reset(self.dut)
            self.streams.in_reset = False
            self.stats["frames_lost_to_reset"] += lost
            self.queued_frames -= lost
            self.disturbed(d)
            for lane in self.lanes:
                lane.shadow.reset()
                lane.base = None
                lane.writes.clear()
                lane.frames_since_reset = 0
                lane.error_expected = False
            ready, out_valid = int(self.dut.s_axis_tready.value), int(self.dut.m_axis_tvalid.value)
            if ready != (1 << self.n) - 1 or out_valid:
                self.fail("reset", f"after reset: s_axis_tready 0x{ready:04x} (all ones expected), m_axis_tvalid 0x{out_valid:04x} (0)")
            i = int(self.rng.integers(0, self.n))
            got = await self.bus.read_locked(i * spec.INSTANCE_STRIDE, len(NAMED_WORDS))
            for word in NAMED_WORDS:
                reg = REG_AT[word]
                if reg.reset is not None and got[word] != reg.reset:
                    self.fail("reset", f"lane {i} after reset: {reg.name} at 0x{4 * word:04x} reads 0x{got[word]:08x}, "
                              f"resets to 0x{reg.reset:08x}", lane=i)  # fmt: skip

    async def bus_sweep(self) -> None:
        """While the lanes stream: every named word and the unmapped gaps of one instance, then the next
        stretch of the address walk; writes go only where they must be ignored (unmapped words, read-only
        registers, STATUS without the FRAME_ERROR bit)."""
        i = int(self.rng.integers(0, self.n))
        base = i * spec.INSTANCE_STRIDE // 4
        probes = [base + w for w in NAMED_WORDS] + [base + a // 4 for a in common.unmapped_probes()]
        stretch = [(self.walk_cursor + k) % TOTAL_WORDS for k in range(self.walk_words)]
        self.walk_cursor = (self.walk_cursor + self.walk_words) % TOTAL_WORDS
        for word in probes + stretch:
            offset = 4 * (word % WORDS_PER_INSTANCE)
            reg = REG_AT[offset // 4]
            if reg is None or reg.access.startswith("RO"):
                value = int(self.rng.integers(0, 2**32))
                if reg is STATUS:
                    value &= ~FRAME_ERROR
                strobes = int(self.rng.integers(1, 16))
                data = bytes(b if strobes >> k & 1 else 0 for k, b in enumerate(words([value])))
                first, last = (strobes & -strobes).bit_length() - 1, strobes.bit_length()
                async with self.bus.lock:
                    self.check_epoch()
                    await self.bus.write_locked(4 * word + first, data[first:last])
        runs: list[list[int]] = []
        for word in sorted(set(probes + stretch)):
            if runs and runs[-1][-1] == word - 1 and len(runs[-1]) < SWEEP_CHUNK_WORDS and word % WORDS_PER_INSTANCE:
                runs[-1].append(word)
            else:
                runs.append([word])
        for run in runs:
            async with self.bus.lock:
                self.check_epoch()
                got = await self.bus.read_locked(4 * run[0], len(run))
                lane = run[0] // WORDS_PER_INSTANCE
                expected = [self.lanes[lane].shadow.expected_read(4 * (w % WORDS_PER_INSTANCE)) for w in run]
            self.bus.walked.update(run)
            for word, value, expect in zip(run, got, expected):
                if expect is not None and value != expect:
                    reg = REG_AT[word % WORDS_PER_INSTANCE]
                    self.fail("register", f"lane {lane}: 0x{4 * word:05x} ({reg.name if reg else 'unmapped'}) reads "
                              f"0x{value:08x}, expected 0x{expect:08x}", lane=lane)  # fmt: skip
        self.disturbed(Disturbance("bus_sweep", set(range(self.n)), f"instance {i}, {len(stretch)} walk words"))

    async def segment_end(self, i: int) -> None:
        """Lane i idle: FRAMES counts its output frames since reset, STATUS is FRAME_ERROR exactly when a
        malformed frame came, and only a 1 in bit 1 with wstrb[0] clears it."""
        lane = self.lanes[i]
        base = i * spec.INSTANCE_STRIDE
        (frames,) = await self.bus.read(base + spec.addr("FRAMES"))
        (status,) = await self.bus.read(base + spec.addr("STATUS"))
        if frames != lane.frames_since_reset:
            self.fail("counters", f"lane {i}: FRAMES {frames}, {lane.frames_since_reset} frames out since reset", lane=i)
        expect = FRAME_ERROR if lane.error_expected else 0
        if status != expect:
            self.fail("status", f"lane {i}: STATUS 0x{status:x} when idle, expected 0x{expect:x}", lane=i)
        if status & FRAME_ERROR:
            status_addr = base + spec.addr("STATUS")
            async with self.bus.lock:
                self.check_epoch()
                await self.bus.write_locked(status_addr + 1, bytes([FRAME_ERROR]))  # bit 1 of byte 1: keeps it
                await self.bus.write_locked(status_addr, words([0]))
                (kept,) = await self.bus.read_locked(status_addr)
                await self.bus.write_locked(status_addr, words([FRAME_ERROR]))
                (cleared,) = await self.bus.read_locked(status_addr)
            if (kept, cleared) != (FRAME_ERROR, 0):
                self.fail("status", f"lane {i}: FRAME_ERROR after writes that must keep it 0x{kept:x}, "
                          f"after the clearing write 0x{cleared:x}", lane=i)  # fmt: skip
        lane.error_expected = False
        if time.monotonic() - self.stats_written > STATS_PERIOD_S:
            self.write_stats()
            self.dut._log.info("%d frames (%d exact), %s, %d failures, cycle %d", self.stats["frames"],
                               self.stats["frames_exact"], dict(self.stats["disturbances"]), self.stats["failures"],
                               self.cycle)  # fmt: skip

    async def run_epoch(self) -> None:
        """Every lane's segments, until enough frames are queued or a reset cuts them short."""
        self.stats["epochs"] += 1
        self.aborted = self.reset_planned = False
        for i in self.rng.permutation(self.n):
            self.spawn(self.lane_loop(int(i)))
        await self.epoch_done.wait()


@cocotb.test()
async def test_soak(dut):
    """VELCRO_SOAK_FRAMES random frames with disturbances through every instance (see the module docstring)."""
    soak = Soak(dut)
    await common.reset(dut)
    cocotb.start_soon(soak.read_counters())
    try:
        while soak.fatal_error is None and (soak.aborted or soak.stats["epochs"] == 0):
            await soak.run_epoch()
        if soak.fatal_error is None:
            await soak.counters_drained()
    finally:
        soak.write_stats()
    if soak.fatal_error is not None:
        raise AssertionError(f"soak stopped: {soak.fatal_error} (VELCRO_SEED={soak.seed})")
    unverified = [(d.kind, d.detail, sorted(d.lanes)) for lane in soak.lanes for d in lane.pending]
    if unverified:
        soak.fail("bench", f"disturbances never followed by an exact frame: {unverified[:5]}")
    soak.stats["done"] = True
    soak.write_stats()
    s = soak.stats
    assert s["failures"] == 0, (
        f"{s['failures']} failures ({s['wrong_frames']} wrong frames) in {s['frames']} frames, VELCRO_SEED={soak.seed}; "
        f"first: {s['failure_log'][0]['message']}"
    )
