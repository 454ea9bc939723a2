"""The kernel's image mover in the Amaranth simulator, with its burst reader and writer, a memory
model and a model of the instance's AXI4-Lite port: the load writes exactly the IMAGE_LOADED words in
the contract's order at one per cycle, the save writes the counters into the image without touching
any other byte, and the load order leaves the instance's average refresh over before frames start."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import golden, image, spec
from rtl.axi4_master import Axi4Signature, BurstReader, BurstWriter
from rtl.interfaces import AxiLiteSignature
from rtl.kernel_image import ImageMover, load_segments, writeback_beats
from rtl.zero_predict import AvgHotFlags
from tests.rtl.amaranth_sim import simulate
from tests.rtl.axi4_memory import Axi4Memory

LOADED_WORDS = sum(spec.REG[name].count for name in spec.IMAGE_LOADED)


class ImagePath(wiring.Component):
    """An ImageMover with the kernel's memory engines, as the kernel wires them."""

    def __init__(self):
        super().__init__({
            "base": In(spec.GMEM_ADDR_WIDTH), "load": In(1), "save": In(1), "busy": Out(1), "write_idle": Out(1),
            "core": Out(AxiLiteSignature(spec.CORE_ADDR_WIDTH)),
            "rd": Out(Axi4Signature("read")), "wr": Out(Axi4Signature("write")),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        m.submodules.image = mover = ImageMover()
        m.submodules.reader = reader = BurstReader()
        m.submodules.writer = writer = BurstWriter()
        wiring.connect(m, mover.read_cmd, reader.cmd)
        wiring.connect(m, reader.data, mover.read_data)
        wiring.connect(m, mover.write_cmd, writer.cmd)
        wiring.connect(m, mover.write_data, writer.data)
        wiring.connect(m, wiring.flipped(self.core), mover.core)
        wiring.connect(m, wiring.flipped(self.rd), reader.bus)
        wiring.connect(m, wiring.flipped(self.wr), writer.bus)
        m.d.comb += [mover.base.eq(self.base), mover.load.eq(self.load), mover.save.eq(self.save),
                     self.busy.eq(mover.busy), self.write_idle.eq(writer.idle)]  # fmt: skip
        return m


class InstancePort:
    """The instance's AXI4-Lite port: AW and W taken independently (each ready with probability
    `ready`), B one cycle after both, R two cycles after AR; reads answer from `registers`."""

    def __init__(self, bus, rng: random.Random, registers: dict[int, int], ready: float = 1.0):
        self.bus, self.rng, self.registers, self.ready = bus, rng, registers, ready
        self.writes: list[tuple[int, int, int, int]] = []  # (cycle, addr, data, strb) when both halves are in
        self.cycle = 0
        self._aw: list[int] = []
        self._w: list[tuple[int, int]] = []
        self._b: list[int] = []  # cycles B may be raised
        self._r: list[tuple[int, int]] = []  # (cycle, data)

    def step(self, ctx) -> None:
        bus, now = self.bus, self.cycle
        ctx.set(bus.awready, self.ready >= 1 or self.rng.random() < self.ready)
        ctx.set(bus.wready, self.ready >= 1 or self.rng.random() < self.ready)
        ctx.set(bus.bvalid, bool(self._b) and self._b[0] <= now)
        ctx.set(bus.arready, not self._r)
        ctx.set(bus.rvalid, bool(self._r) and self._r[0][0] <= now)
        ctx.set(bus.rdata, self._r[0][1] if self._r else 0)
        if ctx.get(bus.awvalid) and ctx.get(bus.awready):
            self._aw.append(ctx.get(bus.awaddr))
        if ctx.get(bus.wvalid) and ctx.get(bus.wready):
            self._w.append((ctx.get(bus.wdata), ctx.get(bus.wstrb)))
        while self._aw and self._w:
            self.writes.append((now, self._aw.pop(0), *self._w.pop(0)))
            self._b.append(now + 1)
        if ctx.get(bus.bvalid) and ctx.get(bus.bready):
            self._b.pop(0)
        if ctx.get(bus.arvalid) and ctx.get(bus.arready):
            self._r.append((now + 2, self.registers[ctx.get(bus.araddr)]))
        if ctx.get(bus.rvalid) and ctx.get(bus.rready):
            self._r.pop(0)
        self.cycle += 1


def run_path(base: int, img: np.ndarray, op: str, *, latency=1, pause=0.0, ready=1.0, counters=None, seed=0):
    """Run one load or save of the image at `base`; returns (memory, instance port, cycles taken)."""
    rng = random.Random(seed)
    dut = ImagePath()
    mem = Axi4Memory(dut.rd, dut.wr, rng=rng, latency=latency, pause=pause)
    mem.load(base, img.tobytes())
    port = InstancePort(dut.core, rng, counters or {}, ready)
    taken = [0]

    async def bench(ctx):
        ctx.set(dut.base, base)
        ctx.set(getattr(dut, op), 1)
        await ctx.tick()
        ctx.set(getattr(dut, op), 0)
        for cycle in range(1, 20_000):
            port.step(ctx)
            mem.step(ctx)
            await ctx.tick()
            if not ctx.get(dut.busy) and ctx.get(dut.write_idle):
                taken[0] = cycle
                return
        raise AssertionError(f"{op} hangs")

    simulate(dut, bench)
    return mem, port, taken[0]


def random_image(rng: np.random.Generator) -> np.ndarray:
    cfg = golden.random_config(rng, 0.5)
    cfg = golden.ConvConfig(cfg.weights, cfg.bias, cfg.mult, cfg.shift, cfg.mask, cfg.avg, zp_en=True,
                            zp_pattern=golden.ZP_CHECKER, zp_max=17)  # fmt: skip
    return image.config_image(cfg)


def expected_load(img: np.ndarray) -> list[tuple[int, int]]:
    """(address, word) of every write the load makes, in the contract's order."""
    words = img.view("<u4")
    return [(spec.addr(name, i), int(words[spec.addr(name, i) // 4]))
            for name in spec.IMAGE_LOADED for i in range(spec.REG[name].count)]  # fmt: skip


@pytest.mark.parametrize("base_offset, latency, pause, ready", [
    (0, 1, 0.0, 1.0), (4096 - 8 * 37, 30, 0.0, 1.0), (8, 30, 0.3, 0.6),
])  # fmt: skip
def test_load_writes_the_image_into_the_instance_in_order(base_offset, latency, pause, ready):
    img = random_image(np.random.default_rng(latency))
    mem, port, cycles = run_path((7 << 32) + base_offset, img, "load", latency=latency, pause=pause, ready=ready)
    assert [(addr, data) for _, addr, data, _ in port.writes] == expected_load(img)
    assert {strb for *_, strb in port.writes} == {0xF}
    assert mem.writes == []
    assert len(mem.reads) >= len(load_segments())
    if pause == 0 and ready == 1:
        # One write per cycle once the data is there: the segments' reads are issued back to back,
        # so the latency is paid once.
        assert cycles <= LOADED_WORDS + latency + 12, f"load took {cycles} cycles"
        print(f"load of {LOADED_WORDS} words, memory latency {latency}: {cycles} cycles")


def test_save_writes_only_the_counters():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, spec.IMAGE_BYTES, dtype=np.uint8)  # every byte set: any stray write shows
    values = {name: int(rng.integers(0, 2**32)) for name in spec.IMAGE_WRITTEN_BACK}
    counters = {spec.addr(name): value for name, value in values.items()}
    base = (3 << 32) + 4096 - 0x18  # the first counter beat sits just below a 4 KB boundary
    mem, port, cycles = run_path(base, img, "save", latency=20, counters=counters)
    after = np.frombuffer(mem.dump(base, spec.IMAGE_BYTES), dtype=np.uint8)
    assert image.written_back(after) == values
    expected = img.copy()
    for name, value in values.items():
        expected[spec.addr(name) : spec.addr(name) + 4] = np.frombuffer(value.to_bytes(4, "little"), np.uint8)
    assert np.array_equal(after, expected), "the save wrote bytes other than the counters"
    assert [(addr - base, beats) for _, addr, beats in mem.writes] == [(o, 1) for o, _, _ in writeback_beats()]
    assert [strb for *_, strb in mem.w_beats] == [s for _, s, _ in writeback_beats()]
    assert port.writes == []
    print(f"save with memory latency 20: {cycles} cycles")


def test_load_order_hides_the_average_refresh():
    """A ZP_CONFIG write makes the instance reread its averages for REFRESH_CYCLES cycles, holding
    prediction frames meanwhile. The load writes at most one word per cycle, so as long as that
    many words follow ZP_CONFIG, the refresh is over before the first frame can start."""
    names = list(spec.IMAGE_LOADED)
    after = sum(spec.REG[name].count for name in names[names.index("ZP_CONFIG") + 1 :])
    assert after >= AvgHotFlags.REFRESH_CYCLES
