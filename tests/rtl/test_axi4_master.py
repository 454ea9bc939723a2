"""The kernel's AXI4 burst reader and writer in the Amaranth simulator, against a memory model with
latency and random pauses: bursts are legal (at most 256 beats, never across 4 KB, WLAST, W never
before its AW), data arrives complete and in order, addresses run ahead to hide the latency, and a
response other than OKAY is reported."""
from __future__ import annotations

import random

import pytest

from model.hw import spec
from rtl.axi4_master import MAX_OUTSTANDING, BurstReader, BurstWriter
from tests.rtl.amaranth_sim import simulate
from tests.rtl.axi4_memory import BEAT_BYTES, Axi4Memory

BOUNDARY = spec.GMEM_BURST_BOUNDARY


def transfers(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """(addr, beats): 8-byte aligned, often just below a 4 KB boundary, some longer than a frame."""
    result = []
    for _ in range(count):
        base = rng.randrange(1 << 40, 1 << 44) & ~(BOUNDARY - 1)
        addr = base + rng.choice([0, 8, BOUNDARY - 8, BOUNDARY - 2048, rng.randrange(0, BOUNDARY, 8)])
        result.append((addr, rng.choice([1, 2, 255, 256, 257, 513, rng.randrange(1, 1200)])))
    return result


def run_reader(cmds, *, latency=1, pause=0.0, ready=1.0, fail=frozenset(), seed=0):
    """Read every (addr, beats) in turn; returns (memory model, words received, error pulses)."""
    rng = random.Random(seed)
    dut = BurstReader()
    mem = Axi4Memory(read_bus=dut.bus, rng=rng, latency=latency, pause=pause, fail=fail)
    for addr, beats in cmds:
        mem.load(addr, rng.randbytes(beats * BEAT_BYTES))
    words, errors = [], [0]

    async def bench(ctx):
        pending = list(cmds)
        expected = sum(beats for _, beats in cmds)
        for _ in range(100 * expected + 1000):
            ctx.set(dut.cmd.valid, bool(pending))
            if pending:
                ctx.set(dut.cmd.payload.addr, pending[0][0])
                ctx.set(dut.cmd.payload.beats, pending[0][1])
            ctx.set(dut.data.ready, ready >= 1 or rng.random() < ready)
            mem.step(ctx)  # drives the memory's side of this cycle
            if pending and ctx.get(dut.cmd.ready):
                pending.pop(0)
            if ctx.get(dut.data.valid) and ctx.get(dut.data.ready):
                words.append(ctx.get(dut.data.payload))
            errors[0] += ctx.get(dut.error)
            await ctx.tick()
            if not pending and len(words) == expected and ctx.get(dut.idle):
                return
        raise AssertionError(f"reader hangs: {len(words)} of {expected} words")

    simulate(dut, bench)
    return mem, words, errors[0]


def run_writer(cmds, *, latency=1, pause=0.0, valid=1.0, fail=frozenset(), seed=0):
    """Write every (addr, beats, strobes) in turn; returns (memory model, words sent, error pulses)."""
    rng = random.Random(seed)
    dut = BurstWriter()
    mem = Axi4Memory(write_bus=dut.bus, rng=rng, latency=latency, pause=pause, fail=fail)
    words = [rng.getrandbits(64) for _ in range(sum(beats for _, beats, _ in cmds))]
    errors = [0]

    async def bench(ctx):
        pending, sent = list(cmds), 0
        for _ in range(100 * len(words) + 1000):
            ctx.set(dut.cmd.valid, bool(pending))
            if pending:
                addr, beats, strb = pending[0]
                ctx.set(dut.cmd.payload.addr, addr)
                ctx.set(dut.cmd.payload.beats, beats)
                ctx.set(dut.cmd.payload.strb, strb)
            offer = sent < len(words) and (valid >= 1 or rng.random() < valid)
            ctx.set(dut.data.valid, offer)
            ctx.set(dut.data.payload, words[sent] if sent < len(words) else 0)
            mem.step(ctx)  # drives the memory's side of this cycle
            if pending and ctx.get(dut.cmd.ready):
                pending.pop(0)
            if offer and ctx.get(dut.data.ready):
                sent += 1
            errors[0] += ctx.get(dut.error)
            await ctx.tick()
            if not pending and sent == len(words) and ctx.get(dut.idle):
                assert mem.quiet, "writer idle with a write still in flight"
                return
        raise AssertionError(f"writer hangs: {sent} of {len(words)} words taken")

    simulate(dut, bench)
    return mem, words, errors[0]


def check_bursts(bursts, cmds):
    """The bursts are the commands' ranges, cut in order, with nothing missing or extra."""
    expected = [(addr + BEAT_BYTES * k) for addr, beats, *_ in cmds for k in range(beats)]
    issued = [addr + BEAT_BYTES * k for _, addr, beats in bursts for k in range(beats)]
    assert issued == expected
    for (_, addr, beats), (_, next_addr, _) in zip(bursts, bursts[1:]):
        end = addr + beats * BEAT_BYTES
        if end == next_addr and end % BOUNDARY:  # a cut inside one command: only at 256 beats
            assert beats == spec.GMEM_MAX_BURST_BEATS, f"burst at 0x{addr:x} cut short at {beats} beats"


@pytest.mark.parametrize("latency, pause, ready", [(1, 0.0, 1.0), (24, 0.3, 0.7), (60, 0.0, 0.5)])
def test_reader_moves_everything_in_legal_bursts(latency, pause, ready):
    cmds = transfers(random.Random(latency), 8)
    mem, words, errors = run_reader(cmds, latency=latency, pause=pause, ready=ready, seed=latency)
    check_bursts(mem.reads, cmds)
    expected = [int.from_bytes(mem.dump(addr + BEAT_BYTES * k, BEAT_BYTES), "little")
                for addr, beats in cmds for k in range(beats)]  # fmt: skip
    assert words == expected
    assert errors == 0
    assert mem.max_outstanding["read"] <= MAX_OUTSTANDING


@pytest.mark.parametrize("latency, pause, valid", [(1, 0.0, 1.0), (24, 0.3, 0.7), (60, 0.0, 0.5)])
def test_writer_moves_everything_in_legal_bursts(latency, pause, valid):
    rng = random.Random(latency)
    cmds = [(addr, beats, rng.choice([0xFF, 0xF0, 0x0F, 0x81])) for addr, beats in transfers(rng, 8)]
    mem, words, errors = run_writer(cmds, latency=latency, pause=pause, valid=valid, seed=latency)
    check_bursts(mem.writes, cmds)
    strobes = [strb for _, beats, strb in cmds for _ in range(beats)]
    assert [(data, strb) for _, data, strb in mem.w_beats] == list(zip(words, strobes))
    assert errors == 0
    assert mem.max_outstanding["write"] <= MAX_OUTSTANDING


@pytest.mark.parametrize("latency", [1, 40, 100])
def test_addresses_run_ahead_so_latency_costs_once(latency):
    """With a memory of fixed latency and no pauses, a transfer of several bursts flows one beat per
    cycle after its first: addresses are issued ahead, so only the first burst pays the latency."""
    beats = 2 * spec.BEATS_PER_FRAME
    addr = (1 << 33) + BOUNDARY - 8 * 16  # a 16-beat burst first, then across the boundary
    mem, _, _ = run_reader([(addr, beats)], latency=latency)
    first, last = mem.r_beats[0], mem.r_beats[-1]
    assert last - first == beats - 1, "R stalled between bursts"
    assert first - mem.reads[0][0] == latency
    mem, _, _ = run_writer([(addr, beats, 0xFF)], latency=latency)
    cycles = [cycle for cycle, _, _ in mem.w_beats]
    assert cycles[-1] - cycles[0] == beats - 1, "W stalled between bursts: B latency not hidden"


def test_error_responses_are_reported():
    addr = 1 << 32
    _, _, errors = run_reader([(addr, 300)], fail={addr + 256 * BEAT_BYTES})
    assert errors == 300 - 256  # every beat of the failing burst
    _, _, errors = run_writer([(addr, 300, 0xFF)], fail={addr})
    assert errors == 1  # one B response
