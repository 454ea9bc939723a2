"""cocotb bench of the AXI4-Lite port's corners (rtl/README.md, section 4), on velcro_conv2d and velcro_top.

AxiLiteMaster presents AW and W together and takes every response at once, so these tests drive the
five channels on their own (`common.AxiLiteChannels`): W before AW and AW before W with gaps, BREADY
and RREADY held low, a read and a write in flight at once, random valid/ready timing on every channel,
byte strobes (wstrb = 0 included) and writes to read-only registers. On velcro_top the same checks run
on one instance through the bridge, and `test_bridge_order` sends requests to two instances.

A monitor counts the handshakes of every channel and fails the test when B or R breaks the AXI rule
(once VALID is up it stays up, with the same payload, until the handshake). VELCRO_SEED seeds the
random tests.
"""
from __future__ import annotations

import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from model.hw import spec
from sim.benches import common
from sim.benches.common import env_int, read_back, read_back_strobed

# The tests of this bench for either module, and with test_bridge_order for velcro_top (tests/sim runs them).
ANY_DUT_TESTS = ("test_channel_orderings", "test_random_channel_timing", "test_responses_held_back",
                 "test_read_and_write_at_once", "test_byte_strobes")  # fmt: skip
TOP_TESTS = ANY_DUT_TESTS + ("test_bridge_order",)
TOP_INSTANCE = 5  # the instance the single-instance checks address on velcro_top
OTHER_INSTANCE = 12  # a second one, for the ordering across instances
SETTLE = 40  # cycles to wait for everything that can move to have moved
RANDOM_WRITES = 150
CHANNELS = ("aw", "w", "b", "ar", "r")
# (valid, ready, payload) of the response channels, for the rule that VALID holds with its payload
HELD = {"b": ("bvalid", "bready", ("bresp",)), "r": ("rvalid", "rready", ("rdata", "rresp"))}


class AxilTB:
    """The channels of the `s_axil` port, a handshake monitor, and register addresses of one instance
    (instance TOP_INSTANCE on velcro_top)."""

    def __init__(self, dut):
        self.dut = dut
        common.start_clock(dut)
        dut.s_axis_tvalid.value = 0
        dut.m_axis_tready.value = 0
        self.top = len(dut.s_axis_tvalid) > 1
        self.ch = common.AxiLiteChannels(dut)
        self.handshakes = {name: 0 for name in CHANNELS}
        self.cycle = 0
        cocotb.start_soon(self._monitor())

    def addr(self, reg: str | int, index: int = 0, instance: int | None = None) -> int:
        """Byte address of a register (or of a byte offset) of `instance` (default: the one under test)."""
        offset = spec.addr(reg, index) if isinstance(reg, str) else reg
        if not self.top:
            return offset
        return (TOP_INSTANCE if instance is None else instance) * spec.INSTANCE_STRIDE + offset

    @property
    def name(self) -> str:
        return f"velcro_top instance {TOP_INSTANCE}" if self.top else "velcro_conv2d"

    async def _monitor(self) -> None:
        dut = self.dut
        port = {s: getattr(dut, f"s_axil_{s}") for name in CHANNELS for s in (f"{name}valid", f"{name}ready")}
        payload = {s: getattr(dut, f"s_axil_{s}") for _, _, names in HELD.values() for s in names}
        held: dict[str, tuple | None] = {"b": None, "r": None}
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if int(dut.rst.value):
                held = {"b": None, "r": None}
                continue
            for name in CHANNELS:
                if int(port[f"{name}valid"].value) and int(port[f"{name}ready"].value):
                    self.handshakes[name] += 1
            for name, (valid, ready, names) in HELD.items():
                up = int(port[valid].value)
                now = tuple(int(payload[s].value) for s in names) if up else None
                if held[name] is not None:
                    assert now == held[name], (
                        f"cycle {self.cycle}: {name.upper()} changed before its handshake: {now} after {held[name]}"
                    )
                held[name] = now if up and not int(port[ready].value) else None

    async def reset(self) -> None:
        await common.reset(self.dut)

    async def expect_reads(self, reads: list[tuple[int, int]], what: str) -> None:
        """Take the next R responses; (address, value) in the order the reads were sent."""
        for addr, value in reads:
            got = await self.ch.r_data(f"{what}: read of 0x{addr:x}")
            assert got == value, f"{self.name}, {what}: read of 0x{addr:x} returned 0x{got:08x}, expected 0x{value:08x}"


def rw_words() -> list[tuple[spec.Register, int]]:
    """Every read/write flip-flop register, and the first and last word of the arrays and memories."""
    return [(r, i) for r in spec.REGISTERS if r.writable for i in sorted({0, r.count - 1})]


@cocotb.test()
async def test_channel_orderings(dut):
    """AW and W together, AW first and W first with gaps of 1 and 5 cycles, and three AWs queued before
    their Ws (and the reverse): each write lands where its own AW points, B is OKAY and only after both
    halves. velcro_conv2d takes the early half alone (its holding register); velcro_top takes AW and W in
    the same cycle, so the early half waits for its partner."""
    tb = AxilTB(dut)
    await tb.reset()
    ch = tb.ch
    rng = random.Random(env_int("VELCRO_SEED", 21))
    bias = tb.addr("BIAS")
    for first, gap in ((None, 0), ("aw", 1), ("aw", 5), ("w", 1), ("w", 5)):
        label = f"{tb.name}, {'AW and W together' if first is None else f'{first.upper()} first, {gap} cycles ahead'}"
        value = rng.getrandbits(32)
        before = dict(tb.handshakes)
        if first is None:
            ch.send_aw(bias)
            ch.send_w(value)
        else:
            ch.send_aw(bias) if first == "aw" else ch.send_w(value)
            valid = getattr(dut, f"s_axil_{first}valid")
            while not int(valid.value):
                await RisingEdge(dut.clk)
            await ClockCycles(dut.clk, gap)
            taken = tb.handshakes[first] - before[first]
            alone = 0 if tb.top else 1  # the top waits for both halves; an instance holds one
            assert taken == alone, f"{label}: {taken} {first.upper()} handshakes before the other half, expected {alone}"
            assert tb.handshakes["b"] == before["b"] and not int(dut.s_axil_bvalid.value), f"{label}: B before W"
            ch.send_w(value) if first == "aw" else ch.send_aw(bias)
        await ch.b_resp(label)
        got = await ch.read(bias)
        assert got == value, f"{label}: BIAS reads 0x{got:08x} after writing 0x{value:08x}"

    # Several AWs before their Ws and several Ws before their AWs: the k-th W belongs to the k-th AW.
    targets = [("BIAS", 0), ("MULT", 0), ("W", 2), ("SHIFT", 0)]
    for first in ("aw", "w"):
        values = [rng.getrandbits(32) for _ in targets]
        for (name, index), value in zip(targets, values):
            ch.send_aw(tb.addr(name, index)) if first == "aw" else ch.send_w(value)
        await ClockCycles(dut.clk, 3)
        for (name, index), value in zip(targets, values):
            ch.send_w(value) if first == "aw" else ch.send_aw(tb.addr(name, index))
        for name, index in targets:
            await ch.b_resp(f"{tb.name}, {first.upper()}s first: write to {name}[{index}]")
        for (name, index), value in zip(targets, values):
            got, expect = await ch.read(tb.addr(name, index)), read_back(spec.REG[name], value)
            assert got == expect, (
                f"{tb.name}, {first.upper()}s queued first: {name}[{index}] reads 0x{got:08x}, expected 0x{expect:08x}"
            )


@cocotb.test()
async def test_random_channel_timing(dut):
    """Writes of random data with random byte strobes (wstrb = 0 included) to every read/write register,
    interleaved with reads of registers they do not touch, under random valid and ready timing on all
    five channels (VELCRO_SEED): every response OKAY, every read right, and every register ends at the
    value of its writes applied in order."""
    seed = env_int("VELCRO_SEED", 23)
    rng = random.Random(seed)
    tb = AxilTB(dut)
    await tb.reset()
    ch = tb.ch
    ch.random_timing(rng)
    written = rw_words()
    # Read while the writes go on: the constants, and W[8] (left out of the writes) at a known value.
    fixed_w = rng.getrandbits(8)
    await ch.write(tb.addr("W", 8), fixed_w)
    written = [(r, i) for r, i in written if (r.name, i) != ("W", 8)]
    fixed = [(tb.addr("ID"), spec.ID_VALUE), (tb.addr("GEOMETRY"), spec.GEOMETRY_VALUE),
             (tb.addr("W", 8), read_back(spec.REG["W"], fixed_w))]  # fmt: skip
    state = {}
    for reg, i in written:
        state[(reg.name, i)] = await ch.read(tb.addr(reg.name, i))
    writes, reads = [], []
    for _ in range(RANDOM_WRITES):
        reg, i = rng.choice(written)
        data, strb = rng.getrandbits(32), rng.choice([0, rng.randrange(16), 0xF])
        writes.append((reg, i, data, strb))
        ch.send_aw(tb.addr(reg.name, i))
        ch.send_w(data, strb)
        if rng.random() < 0.5:
            reads.append(rng.choice(fixed))
            ch.send_ar(reads[-1][0])
    label = f"random channel timing (VELCRO_SEED={seed})"
    for n, (reg, i, data, strb) in enumerate(writes):
        await ch.b_resp(f"{label}: write {n} to {reg.name}[{i}]")
        state[(reg.name, i)] = read_back_strobed(reg, state[(reg.name, i)], data, strb)
    await tb.expect_reads(reads, label)
    ch.random_timing(None)
    for (name, i), value in state.items():
        got = await ch.read(tb.addr(name, i))
        assert got == value, f"{tb.name}, {label}: {name}[{i}] reads 0x{got:08x}, expected 0x{value:08x}"


@cocotb.test()
async def test_responses_held_back(dut):
    """BREADY held low: B stays valid and unchanged, the port takes only the writes it can hold (an
    instance: the one performed and one parked, which is performed only once B is free; the top:
    spec.BRIDGE_EXTRA_WRITES more, two of them performed since the bridge holds their B), reads still
    complete, and after release every B is OKAY, in order, and the last write wins. RREADY held low:
    R stays valid and unchanged, reads are taken one at a time (the top: spec.BRIDGE_EXTRA_READS more),
    writes still complete, and the R responses come in request order."""
    tb = AxilTB(dut)
    await tb.reset()
    ch = tb.ch
    rng = random.Random(env_int("VELCRO_SEED", 25))
    extra_writes, extra_reads = (spec.BRIDGE_EXTRA_WRITES, spec.BRIDGE_EXTRA_READS) if tb.top else (0, 0)
    performed = 3 if tb.top else 1  # the top's bridge takes two B responses off the instance

    bias = tb.addr("BIAS")
    values = [rng.getrandbits(32) for _ in range(2 + extra_writes + 1)]  # one more than the port takes
    ch.pause_b(True)
    before = tb.handshakes["aw"]
    for value in values:
        ch.send_aw(bias)
        ch.send_w(value)
    await ClockCycles(dut.clk, SETTLE)
    taken = tb.handshakes["aw"] - before
    assert taken == 2 + extra_writes, f"{tb.name}: {taken} writes taken with BREADY low, expected {2 + extra_writes}"
    assert int(dut.s_axil_bvalid.value), f"{tb.name}: BVALID with BREADY low"
    got = await ch.read(bias)
    assert got == values[performed - 1], (
        f"{tb.name}: BIAS reads 0x{got:08x} with B held; {performed} write(s) performed"
    )
    ch.pause_b(False)
    for n in range(len(values)):
        await ch.b_resp(f"{tb.name}, write {n} after BREADY was held low")
    assert await ch.read(bias) == values[-1], f"{tb.name}: the last write wins"

    ch.pause_r(True)
    known = [(tb.addr("ID"), spec.ID_VALUE), (tb.addr("GEOMETRY"), spec.GEOMETRY_VALUE), (bias, values[-1]),
             (tb.addr("CONTROL"), spec.REG["CONTROL"].reset), (tb.addr("FRAMES"), 0)]  # fmt: skip
    reads = known[: 1 + extra_reads + 1]
    before = tb.handshakes["ar"]
    for addr, _ in reads:
        ch.send_ar(addr)
    await ClockCycles(dut.clk, SETTLE)
    taken = tb.handshakes["ar"] - before
    assert taken == 1 + extra_reads, f"{tb.name}: {taken} reads taken with RREADY low, expected {1 + extra_reads}"
    assert int(dut.s_axil_rvalid.value), f"{tb.name}: RVALID with RREADY low"
    mult = rng.getrandbits(16)
    await ch.write(tb.addr("MULT"), mult)  # the write channels do not wait for R
    ch.pause_r(False)
    await tb.expect_reads(reads, "after RREADY was held low")
    assert await ch.read(tb.addr("MULT")) == mult


@cocotb.test()
async def test_read_and_write_at_once(dut):
    """A write and a read sent in the same cycle, both responses held back until both are valid at once;
    then released R first and, the second time, B first: both OKAY, the read returns its register, the
    write lands."""
    tb = AxilTB(dut)
    await tb.reset()
    ch = tb.ch
    rng = random.Random(env_int("VELCRO_SEED", 27))
    known = rng.getrandbits(32)
    await ch.write(tb.addr("BIAS"), known)
    for released_first in ("r", "b"):
        label = f"{tb.name}, read and write at once, {released_first.upper()} released first"
        value = rng.getrandbits(16)
        ch.pause_b(True)
        ch.pause_r(True)
        ch.send_aw(tb.addr("MULT"))
        ch.send_w(value)
        ch.send_ar(tb.addr("BIAS"))
        await ClockCycles(dut.clk, SETTLE)
        assert int(dut.s_axil_bvalid.value) and int(dut.s_axil_rvalid.value), f"{label}: B and R both pending"
        if released_first == "r":
            ch.pause_r(False)
            await tb.expect_reads([(tb.addr("BIAS"), known)], label)
            assert int(dut.s_axil_bvalid.value), f"{label}: B still waits"
            ch.pause_b(False)
            await ch.b_resp(label)
        else:
            ch.pause_b(False)
            await ch.b_resp(label)
            assert int(dut.s_axil_rvalid.value), f"{label}: R still waits"
            ch.pause_r(False)
            await tb.expect_reads([(tb.addr("BIAS"), known)], label)
        got = await ch.read(tb.addr("MULT"))
        assert got == value, f"{label}: MULT reads 0x{got:x}, expected 0x{value:x}"


@cocotb.test()
async def test_byte_strobes(dut):
    """Every wstrb from 0 to 15 on every read/write register (CONTROL, W, BIAS, MULT, SHIFT, ZP_CONFIG,
    MASK, AVG): exactly the strobed bytes change; wstrb = 0 changes nothing. Writes of all ones and all
    zeros to the read-only registers change nothing (STATUS: no error is pending, so W1C clears nothing)."""
    tb = AxilTB(dut)
    await tb.reset()
    ch = tb.ch
    rng = random.Random(env_int("VELCRO_SEED", 29))
    for reg, i in rw_words():
        addr = tb.addr(reg.name, i)
        await ch.write(addr, rng.getrandbits(32))
        old = await ch.read(addr)
        for strb in range(16):
            data = rng.getrandbits(32)
            await ch.write(addr, data, strb)
            got, expect = await ch.read(addr), read_back_strobed(reg, old, data, strb)
            assert got == expect, (
                f"{tb.name}: {reg.name}[{i}] 0x{old:08x} <- 0x{data:08x} with wstrb 0b{strb:04b} reads 0x{got:08x}, "
                f"expected 0x{expect:08x}"
            )
            old = got
    for reg in (r for r in spec.REGISTERS if r.access.startswith("RO")):
        for value, strb in ((0xFFFFFFFF, 0xF), (0, 0xF), (0xFFFFFFFF, 0)):
            await ch.write(tb.addr(reg.name), value, strb)
            got = await ch.read(tb.addr(reg.name))
            assert got == reg.reset, (
                f"{tb.name}: read-only {reg.name} <- 0x{value:08x} (wstrb 0b{strb:04b}) reads 0x{got:08x}"
            )


@cocotb.test()
async def test_bridge_order(dut):
    """velcro_top only: requests to two instances with the responses held back. B and R responses come
    back in request order across instances (AXI4-Lite has no IDs): the bridge hands a write to the
    second instance once the first instance's B has reached the bridge, and holds both B responses
    until the master takes them; a read and a write to different instances are in flight at once."""
    tb = AxilTB(dut)
    assert tb.top, "test_bridge_order needs velcro_top"
    await tb.reset()
    ch = tb.ch
    rng = random.Random(env_int("VELCRO_SEED", 31))
    first, second = TOP_INSTANCE, OTHER_INSTANCE
    a, b = rng.getrandbits(32), rng.getrandbits(32)
    await ch.write(tb.addr("BIAS", instance=first), a)
    await ch.write(tb.addr("BIAS", instance=second), b)

    # R in request order: first, second, first again.
    ch.pause_r(True)
    reads = [(tb.addr("BIAS", instance=i), v) for i, v in ((first, a), (second, b), (first, a))]
    for addr, _ in reads:
        ch.send_ar(addr)
    await ClockCycles(dut.clk, SETTLE)
    ch.pause_r(False)
    await tb.expect_reads(reads, "reads across instances with RREADY held low")

    # B in request order; the second instance's write goes once the first instance's B is in the bridge.
    ch.pause_b(True)
    b_before = tb.handshakes["b"]
    new_a, new_b = rng.getrandbits(32), rng.getrandbits(32)
    for addr, value in ((tb.addr("BIAS", instance=first), new_a), (tb.addr("BIAS", instance=second), new_b)):
        ch.send_aw(addr)
        ch.send_w(value)
    await ClockCycles(dut.clk, SETTLE)
    assert await ch.read(tb.addr("BIAS", instance=first)) == new_a
    assert await ch.read(tb.addr("BIAS", instance=second)) == new_b, (
        "the second instance's write did not go although the first instance's B was in the bridge"
    )
    assert tb.handshakes["b"] == b_before, "a B response taken while BREADY was low"
    ch.pause_b(False)
    for n in range(2):
        await ch.b_resp(f"write {n} across instances with BREADY held low")

    # A read of one instance and a write to another, both pending at once.
    ch.pause_b(True)
    ch.pause_r(True)
    ch.send_aw(tb.addr("MULT", instance=second))
    ch.send_w(0xBEEF)
    ch.send_ar(tb.addr("BIAS", instance=first))
    await ClockCycles(dut.clk, SETTLE)
    assert int(dut.s_axil_bvalid.value) and int(dut.s_axil_rvalid.value), "B and R pending at once across instances"
    ch.pause_b(False)
    ch.pause_r(False)
    await ch.b_resp("write to one instance beside a read of another")
    await tb.expect_reads([(tb.addr("BIAS", instance=first), new_a)], "read of one instance beside a write to another")
    assert await ch.read(tb.addr("MULT", instance=second)) == 0xBEEF
