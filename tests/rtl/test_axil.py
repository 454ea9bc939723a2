# amaranth: UnusedElaboratable=no
"""AXI4-Lite front end and velcro_top's bridge in the Amaranth simulator: latencies and throughput equal
the contract's (model.hw.spec), random skew and backpressure never deadlock, holes answer OKAY and
read 0, and responses come back in request order.

The first line silences Amaranth's unused-elaboratable warning for the bridges the validation test
builds: their constructor raises before they could ever be used."""
from __future__ import annotations

import random

import pytest
from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from model.hw import spec
from rtl.axil import AxiLiteBridge, AxiLiteRegisterBus
from rtl.interfaces import AxiLiteSignature

ADDR_WIDTH = 6  # 16 words per target
WORDS = 1 << (ADDR_WIDTH - 2)


class RegisterTarget(wiring.Component):
    """16 read/write words behind an AxiLiteRegisterBus, as a register file sits behind it in the core."""

    def __init__(self):
        super().__init__({"axil": In(AxiLiteSignature(ADDR_WIDTH))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bus = bus = AxiLiteRegisterBus(ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.axil), bus.axil)
        words = [Signal(32, name=f"word{j}") for j in range(WORDS)]
        for j, word in enumerate(words):
            with m.If(bus.wr_stb & (bus.wr_addr[2:] == j)):
                for k in range(4):
                    with m.If(bus.wr_strb[k]):
                        m.d.sync += word[8 * k : 8 * k + 8].eq(bus.wr_data[8 * k : 8 * k + 8])
            with m.If(bus.rd_addr[2:] == j):
                m.d.sync += bus.rd_data.eq(word)  # presented the cycle after the strobe
        return m


class Bridged(wiring.Component):
    """An AxiLiteBridge with `targets` RegisterTargets; selections >= targets are holes."""

    def __init__(self, targets: int, select_bits: int = 2):
        self.n = targets
        self.bridge = AxiLiteBridge(targets, ADDR_WIDTH, select_bits)
        super().__init__({"bus": In(AxiLiteSignature(ADDR_WIDTH + select_bits))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        wiring.connect(m, wiring.flipped(self.bus), self.bridge.bus)
        for i in range(self.n):
            m.submodules[f"t{i}"] = target = RegisterTarget()
            wiring.connect(m, self.bridge.targets[i], target.axil)
        return m


def simulate(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


class Manager:
    """A cycle-by-cycle AXI4-Lite manager with random valid gaps, AW/W skew and response backpressure."""

    def __init__(self, ctx, bus, rng: random.Random, *, p_valid=1.0, p_ready=1.0, max_cycles=20_000):
        self.ctx, self.bus, self.rng = ctx, bus, rng
        self.p_valid, self.p_ready, self.max_cycles = p_valid, p_ready, max_cycles
        self.cycle = 0
        self.handshakes: dict[str, list[int]] = {c: [] for c in ("aw", "w", "b", "ar", "r")}

    def _chance(self, p: float) -> bool:
        return p >= 1 or self.rng.random() < p

    async def run(self, writes: list[tuple[int, int, int]], reads: list[int]) -> list[int]:
        """Issue `writes` (addr, data, strb) and `reads` concurrently; returns the read data in order."""
        ctx, bus = self.ctx, self.bus
        aw_q, w_q, ar_q = list(writes), list(writes), list(reads)
        aw = w = ar = None
        b_count, data = 0, []
        while b_count < len(writes) or len(data) < len(reads):
            if aw is None and aw_q and self._chance(self.p_valid):
                aw = aw_q.pop(0)
            if w is None and w_q and self._chance(self.p_valid):
                w = w_q.pop(0)
            if ar is None and ar_q and self._chance(self.p_valid):
                ar = ar_q.pop(0)
            bready, rready = self._chance(self.p_ready), self._chance(self.p_ready)
            ctx.set(bus.awvalid, aw is not None)
            ctx.set(bus.awaddr, aw[0] if aw else 0)
            ctx.set(bus.wvalid, w is not None)
            ctx.set(bus.wdata, w[1] if w else 0)
            ctx.set(bus.wstrb, w[2] if w else 0)
            ctx.set(bus.arvalid, ar is not None)
            ctx.set(bus.araddr, ar if ar is not None else 0)
            ctx.set(bus.bready, bready)
            ctx.set(bus.rready, rready)
            aw_hs = aw is not None and ctx.get(bus.awready)
            w_hs = w is not None and ctx.get(bus.wready)
            ar_hs = ar is not None and ctx.get(bus.arready)
            b_hs = bready and ctx.get(bus.bvalid)
            r_hs = rready and ctx.get(bus.rvalid)
            if b_hs:
                assert ctx.get(bus.bresp) == 0
            if r_hs:
                assert ctx.get(bus.rresp) == 0
                data.append(ctx.get(bus.rdata))
            await ctx.tick()
            for channel, fired in (("aw", aw_hs), ("w", w_hs), ("ar", ar_hs), ("b", b_hs), ("r", r_hs)):
                if fired:
                    self.handshakes[channel].append(self.cycle)
            aw, w, ar = None if aw_hs else aw, None if w_hs else w, None if ar_hs else ar
            b_count += b_hs
            self.cycle += 1
            assert self.cycle < self.max_cycles, "the bus hangs"
        for name in ("awvalid", "wvalid", "arvalid"):
            ctx.set(getattr(bus, name), 0)
        return data


def test_register_bus_latency_and_interval_equal_spec():
    dut = RegisterTarget()
    n = 32

    async def bench(ctx):
        mgr = Manager(ctx, dut.axil, random.Random(0))
        await mgr.run([(4 * (k % WORDS), k, 0xF) for k in range(n)], [])
        aw, b = mgr.handshakes["aw"], mgr.handshakes["b"]
        assert b[0] - aw[0] == spec.AXIL_WRITE_LATENCY == AxiLiteRegisterBus.WRITE_LATENCY
        assert {y - x for x, y in zip(aw, aw[1:])} == {spec.AXIL_WRITE_INTERVAL}, "back-to-back writes"
        mgr = Manager(ctx, dut.axil, random.Random(0))
        assert await mgr.run([], [4 * k for k in range(WORDS)]) == [n - WORDS + k for k in range(WORDS)]
        assert mgr.handshakes["r"][0] - mgr.handshakes["ar"][0] == spec.AXIL_READ_LATENCY

    simulate(dut, bench)


def test_bridge_latency_and_interval_equal_spec():
    dut = Bridged(2)
    n = 40
    assert AxiLiteBridge.LATENCY == spec.BRIDGE_LATENCY
    assert AxiLiteBridge.RESPONSE_LATENCY == spec.BRIDGE_RESPONSE_LATENCY
    extra = spec.BRIDGE_LATENCY + spec.BRIDGE_RESPONSE_LATENCY  # request and response each registered once

    async def bench(ctx):
        mgr = Manager(ctx, dut.bus, random.Random(0))
        base = 1 << ADDR_WIDTH  # target 1
        await mgr.run([(base + 4 * (k % WORDS), k, 0xF) for k in range(n)], [])
        aw, b = mgr.handshakes["aw"], mgr.handshakes["b"]
        assert b[0] - aw[0] == extra + spec.AXIL_WRITE_LATENCY
        assert {y - x for x, y in zip(aw, aw[1:])} == {spec.AXIL_WRITE_INTERVAL}, "writes pass at one per cycle"
        assert {y - x for x, y in zip(b, b[1:])} == {spec.AXIL_WRITE_INTERVAL}, "so do their B responses"
        mgr = Manager(ctx, dut.bus, random.Random(0))
        await mgr.run([], [base])
        assert mgr.handshakes["r"][0] - mgr.handshakes["ar"][0] == extra + spec.AXIL_READ_LATENCY

    simulate(dut, bench)


def test_bridge_outputs_come_from_registers():
    """Within a cycle, no input of the bridge reaches an output, except the partner's VALID in AWREADY
    and WREADY (AW and W are accepted together): inputs are redrawn at random with the state kept, and
    every output must stay as it was. Between redraws the clock ticks, so the state wanders."""
    dut = AxiLiteBridge(3, ADDR_WIDTH, 2)
    ports = [(dut.bus, name, member) for name, member in dut.bus.signature.members.items()]
    ports += [(t, name, member) for t in dut.targets for name, member in t.signature.members.items()]
    inputs = [(iface, name) for iface, name, member in ports if member.flow == In]  # flows as the bridge sees them
    outputs = [(iface, name) for iface, name, member in ports if member.flow == Out]
    partner = {"awready": "wvalid", "wready": "awvalid"}
    rng = random.Random(5)

    async def bench(ctx):
        for _ in range(400):
            seen = None
            for _ in range(3):
                for iface, name in inputs:
                    signal = getattr(iface, name)
                    ctx.set(signal, rng.getrandbits(len(signal)) if rng.random() < 0.5 else 0)
                if ctx.get(dut.bus.awvalid) and ctx.get(dut.bus.wvalid):
                    ctx.set(dut.bus.wvalid, 0)  # one VALID without its partner: its READY must be low
                now = {}
                for iface, name in outputs:
                    value = ctx.get(getattr(iface, name))
                    if iface is dut.bus and name in partner:
                        assert not value or ctx.get(getattr(dut.bus, partner[name])), f"{name} without {partner[name]}"
                    else:
                        now[(id(iface), name)] = value
                assert seen is None or now == seen, "an output follows an input within the cycle"
                seen = now
            await ctx.tick()

    simulate(dut, bench)


def test_bridge_takes_what_it_holds_with_responses_held_back():
    """BREADY (RREADY) held low: the bridge takes spec.BRIDGE_EXTRA_WRITES (_READS) more requests than the
    target holds, then stops; once released, every response comes once, in order, and the last write wins."""
    dut = Bridged(2)
    base = 1 << ADDR_WIDTH  # target 1, word 0

    async def offer(ctx, valid, ready, data=None):
        """Keep a request offered for 30 cycles (new data after each acceptance); returns how many were taken."""
        taken = 0
        ctx.set(valid, 1)
        for _ in range(30):
            if data is not None:
                ctx.set(data, taken)
            taken += ctx.get(ready)
            await ctx.tick()
        ctx.set(valid, 0)
        return taken

    async def drain(ctx, valid, ready, data):
        ctx.set(ready, 1)
        got = []
        for _ in range(30):
            if ctx.get(valid):
                got.append(ctx.get(data))
            await ctx.tick()
        ctx.set(ready, 0)
        return got

    async def bench(ctx):
        bus = dut.bus
        ctx.set(bus.awaddr, base)
        ctx.set(bus.wstrb, 0xF)
        ctx.set(bus.wvalid, 1)  # AW and W together: count on AWREADY
        writes = await offer(ctx, bus.awvalid, bus.awready, bus.wdata)
        ctx.set(bus.wvalid, 0)
        assert writes == 2 + spec.BRIDGE_EXTRA_WRITES, "writes taken with BREADY low"
        assert await drain(ctx, bus.bvalid, bus.bready, bus.bresp) == [0] * writes, "one OKAY per write"
        ctx.set(bus.araddr, base)
        reads = await offer(ctx, bus.arvalid, bus.arready)
        assert reads == 1 + spec.BRIDGE_EXTRA_READS, "reads taken with RREADY low"
        assert await drain(ctx, bus.rvalid, bus.rready, bus.rdata) == [writes - 1] * reads, "the last write wins"

    simulate(dut, bench)


@pytest.mark.parametrize("p_valid, p_ready", [(1.0, 1.0), (0.6, 0.5), (0.9, 0.2)])
def test_bridge_random_traffic_holes_and_order(p_valid, p_ready):
    """Writes and reads to random targets and holes, AW/W skew, B/R backpressure, both directions at
    once: nothing hangs, every write lands where it should, reads return in order, holes read 0."""
    targets, select_bits = 3, 2  # selection 3 is a hole
    dut = Bridged(targets, select_bits)
    rng = random.Random(int(p_valid * 10 + p_ready * 100))
    addrs = [(sel << ADDR_WIDTH) | (4 * word) for sel in range(1 << select_bits) for word in range(WORDS)]

    async def bench(ctx):
        mgr = Manager(ctx, dut.bus, rng, p_valid=p_valid, p_ready=p_ready)
        model = {a: 0 for a in addrs}
        writes = []
        for _ in range(300):
            a, value, strb = rng.choice(addrs), rng.getrandbits(32), rng.choice([0xF, 0xF, 0x1, 0x6, 0x8])
            writes.append((a, value, strb))
            if a >> ADDR_WIDTH < targets:
                lanes = sum(0xFF << 8 * k for k in range(4) if strb >> k & 1)
                model[a] = model[a] & ~lanes | value & lanes
        # concurrent phase: reads of the hole only (their value does not depend on write order)
        hole_reads = [rng.choice([a for a in addrs if a >> ADDR_WIDTH >= targets]) for _ in range(40)]
        assert await mgr.run(writes, hole_reads) == [0] * len(hole_reads)
        # then read everything back in a random order that hops between targets and the hole
        order = rng.sample(addrs, len(addrs)) * 2
        assert await mgr.run([], order) == [model[a] for a in order]

    simulate(dut, bench)


@pytest.mark.parametrize("targets, error", [(0, ValueError), (5, ValueError), (True, ValueError)])
def test_bridge_validates_targets(targets, error):
    with pytest.raises(error, match="targets"):
        AxiLiteBridge(targets, ADDR_WIDTH, 2)
