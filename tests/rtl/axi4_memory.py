"""A cycle-level AXI4 memory for the Amaranth simulator, for the fast tests of the kernel's memory side.

It checks every rule the kernel's master must keep (INCR bursts of full 64-bit beats, at most 256
beats, never across a 4 KB boundary, WLAST on the burst's last beat, W never ahead of its AW) and
models what the kernel must cope with: a fixed latency from an address handshake to the first data
beat (reads) and from the last data beat to the response (writes), bursts served in order with any
number outstanding, and random pauses on every channel (VALIDs held once raised, as AXI requires).
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from model.hw import spec

BEAT_BYTES = spec.GMEM_DATA_WIDTH // 8
SLVERR = 2


@dataclass
class Burst:
    addr: int
    beats: int
    due: int  # first cycle its data (read) or response (write) may appear
    beat: int = 0
    error: bool = False


class Axi4Memory:
    """Call `step(ctx)` once per cycle, before `ctx.tick()`; `mem` maps byte addresses to values.

    `read_bus` / `write_bus` are the master's two halves (None: not modelled). `latency` (at least 1)
    is the number of cycles from an AR handshake to the burst's first R beat, and from a burst's last
    W beat to its B response; `pause` is the chance that a channel idles in a cycle; `fail` is a set
    of burst addresses answered SLVERR.
    """

    def __init__(self, read_bus=None, write_bus=None, *, rng: random.Random | None = None,
                 latency: int = 1, pause: float = 0.0, fail: set[int] = frozenset()):  # fmt: skip
        if latency < 1:
            raise ValueError(f"latency must be at least one cycle, got {latency}")
        self.read_bus, self.write_bus = read_bus, write_bus
        self.rng, self.latency, self.pause, self.fail = rng or random.Random(0), latency, pause, fail
        self.mem: dict[int, int] = {}
        self.cycle = 0
        self.reads: list[tuple[int, int, int]] = []  # (cycle, addr, beats) of every AR handshake
        self.writes: list[tuple[int, int, int]] = []  # and of every AW handshake
        self.r_beats: list[int] = []  # cycle of every R handshake
        self.w_beats: list[tuple[int, int, int]] = []  # (cycle, data, strobes) of every W handshake
        self.max_outstanding = {"read": 0, "write": 0}
        self._reads: deque[Burst] = deque()  # AR taken, last R beat not yet
        self._writes: deque[Burst] = deque()  # AW taken, last W beat not yet
        self._responses: deque[Burst] = deque()  # last W beat taken, B not yet
        self._r_held = self._b_held = False  # a VALID is up and must stay up until its handshake

    def _idle(self) -> bool:
        return self.pause > 0 and self.rng.random() < self.pause

    def load(self, addr: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            self.mem[addr + i] = byte

    def dump(self, addr: int, length: int) -> bytes:
        return bytes(self.mem.get(addr + i, 0) for i in range(length))

    def _burst(self, ctx, prefix: str, bus) -> Burst:
        get = lambda name: ctx.get(getattr(bus, prefix + name))  # noqa: E731
        addr, beats = get("addr"), get("len") + 1
        assert get("size") == (BEAT_BYTES - 1).bit_length(), f"{prefix.upper()}SIZE {get('size')}: narrow burst"
        assert get("burst") == 1, f"{prefix.upper()}BURST {get('burst')}, not INCR"
        assert addr % BEAT_BYTES == 0, f"unaligned burst at 0x{addr:x}"
        assert beats <= spec.GMEM_MAX_BURST_BEATS, f"{beats}-beat burst at 0x{addr:x}"
        boundary = spec.GMEM_BURST_BOUNDARY
        assert addr // boundary == (addr + beats * BEAT_BYTES - 1) // boundary, (
            f"burst of {beats} beats at 0x{addr:x} crosses a 4 KB boundary")
        return Burst(addr, beats, self.cycle + self.latency, error=addr in self.fail)

    def step(self, ctx) -> None:
        if self.read_bus is not None:
            self._step_read(ctx, self.read_bus)
        if self.write_bus is not None:
            self._step_write(ctx, self.write_bus)
        self.cycle += 1

    def _step_read(self, ctx, bus) -> None:
        ctx.set(bus.arready, not self._idle())
        head = self._reads[0] if self._reads and self._reads[0].due <= self.cycle else None
        rvalid = head is not None and (self._r_held or not self._idle())
        ctx.set(bus.rvalid, rvalid)
        if head is not None:
            addr = head.addr + BEAT_BYTES * head.beat
            ctx.set(bus.rdata, int.from_bytes(self.dump(addr, BEAT_BYTES), "little"))
            ctx.set(bus.rlast, head.beat == head.beats - 1)
            ctx.set(bus.rresp, SLVERR if head.error else 0)
        if ctx.get(bus.arvalid) and ctx.get(bus.arready):
            burst = self._burst(ctx, "ar", bus)
            self.reads.append((self.cycle, burst.addr, burst.beats))
            self._reads.append(burst)
        self._r_held = rvalid and not ctx.get(bus.rready)
        if rvalid and ctx.get(bus.rready):
            self.r_beats.append(self.cycle)
            head.beat += 1
            if head.beat == head.beats:
                self._reads.remove(head)
        self.max_outstanding["read"] = max(self.max_outstanding["read"], len(self._reads))

    def _step_write(self, ctx, bus) -> None:
        ctx.set(bus.awready, not self._idle())
        wready = not self._idle()
        ctx.set(bus.wready, wready)
        head = self._responses[0] if self._responses and self._responses[0].due <= self.cycle else None
        bvalid = head is not None and (self._b_held or not self._idle())
        ctx.set(bus.bvalid, bvalid)
        ctx.set(bus.bresp, SLVERR if head is not None and head.error else 0)
        if ctx.get(bus.awvalid) and ctx.get(bus.awready):
            burst = self._burst(ctx, "aw", bus)
            self.writes.append((self.cycle, burst.addr, burst.beats))
            self._writes.append(burst)
        if ctx.get(bus.wvalid):
            assert self._writes, f"cycle {self.cycle}: WVALID without an outstanding write address"
            if wready:
                burst = self._writes[0]
                data, strobes, last = ctx.get(bus.wdata), ctx.get(bus.wstrb), ctx.get(bus.wlast)
                assert last == (burst.beat == burst.beats - 1), (
                    f"WLAST {last} on beat {burst.beat} of a {burst.beats}-beat burst at 0x{burst.addr:x}")
                addr = burst.addr + BEAT_BYTES * burst.beat
                for k in range(BEAT_BYTES):
                    if strobes >> k & 1:
                        self.mem[addr + k] = data >> (8 * k) & 0xFF
                self.w_beats.append((self.cycle, data, strobes))
                burst.beat += 1
                if last:
                    self._writes.popleft()
                    burst.due = self.cycle + self.latency
                    self._responses.append(burst)
        self._b_held = bvalid and not ctx.get(bus.bready)
        if bvalid and ctx.get(bus.bready):
            self._responses.popleft()
        self.max_outstanding["write"] = max(self.max_outstanding["write"],
                                            len(self._writes) + len(self._responses))  # fmt: skip

    @property
    def quiet(self) -> bool:
        """No burst in flight in either direction."""
        return not (self._reads or self._writes or self._responses)
