"""What both cocotb benches share: clock, reset, the AXI4-Lite master and register-level access.

Every address and constant comes from `model.hw.spec` (the hardware contract, tabulated in
rtl/README.md); the benches only drive ports and check results.
"""
from __future__ import annotations

import itertools
import logging
import os
import random

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp
from cocotbext.axi.axil_channels import (AxiLiteARSource, AxiLiteAWSource, AxiLiteBSink, AxiLiteRSink,
                                         AxiLiteWSource)

from model.hw import cycles, golden, spec
from model.hw.golden import ConvConfig
from model.hw.image import control_word, zp_config_word  # the register words, as the kernel's image holds them

CLOCK_PS = int(os.environ.get("VELCRO_CLOCK_PS", 4000))  # SAIF runs use the U280 clock's period
# A frame that takes far longer than the slowest one (no compression) has hung: fail, never wait.
FRAME_TIMEOUT_CYCLES = 4 * cycles.frame_latency(spec.N_OUTPUTS)
RESET_CYCLES = 5
# A ZP_CONFIG write makes the instance reread its averages, which holds the compute stage of a frame
# completing its input within the next 512 cycles; benches that time frames wait this long after one.
ZP_CONFIG_SETTLE_CYCLES = 2 * spec.BEATS_PER_FRAME


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def start_clock(dut) -> None:
    Clock(dut.clk, CLOCK_PS, unit="ps").start()


def start_clock_and_bus(dut) -> AxiLiteMaster:
    """Start the clock and return a quiet AXI4-Lite master on the `s_axil` port."""
    start_clock(dut)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    for model in (axil.write_if, axil.read_if):
        model.log.setLevel(logging.WARNING)  # one line per transfer would drown the results
    return axil


async def reset(dut) -> None:
    """Synchronous reset for RESET_CYCLES cycles, then two idle cycles."""
    dut.rst.value = 1
    await ClockCycles(dut.clk, RESET_CYCLES)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


class Registers:
    """The register map of one instance, `base` bytes into the AXI4-Lite address space.

    A register is named as in `model.hw.spec.REGISTERS` (with a word index for the arrays W, MASK
    and AVG) or given as a byte offset inside the instance (for unmapped addresses).
    """

    def __init__(self, axil: AxiLiteMaster, base: int = 0):
        self.axil, self.base = axil, base

    def addr(self, reg: str | int, index: int = 0) -> int:
        return self.base + (spec.addr(reg, index) if isinstance(reg, str) else reg)

    async def read(self, reg: str | int, index: int = 0) -> int:
        """The word's value; its RRESP must be OKAY (every address answers OKAY)."""
        addr = self.addr(reg, index)
        resp = await self.axil.read(addr, 4)
        assert resp is not None, f"read of 0x{addr:x} flushed by a reset"
        assert resp.resp == AxiResp.OKAY, f"read of 0x{addr:x} answered {resp.resp!r}, not OKAY"
        return int.from_bytes(resp.data, "little")

    async def write(self, reg: str | int, value: int, index: int = 0) -> None:
        await self.write_bytes(reg, (int(value) & 0xFFFFFFFF).to_bytes(4, "little"), index)

    async def write_bytes(self, reg: str | int, data: bytes, index: int = 0) -> None:
        """Bytes from the register's address on: partial words use byte strobes, long runs pipeline.
        Every BRESP must be OKAY."""
        await write_checked(self.axil, self.addr(reg, index), data)

    async def configure(self, cfg: ConvConfig, *, averages: bool = True) -> None:
        """Write CONTROL, ZP_CONFIG, W, BIAS, MULT, SHIFT, MASK and (unless told otherwise: they reset
        to 0) AVG."""
        await self.write_control(cfg)
        for i, w in enumerate(np.asarray(cfg.weights).reshape(-1)):
            await self.write("W", int(w), i)
        for name, value in (("BIAS", cfg.bias), ("MULT", cfg.mult), ("SHIFT", cfg.shift)):
            await self.write(name, int(value))
        await self.write_mask(cfg.mask)
        if averages:
            await self.write_bytes("AVG", np.asarray(cfg.avg, dtype=np.uint8).tobytes())

    async def write_mask(self, mask: np.ndarray) -> None:
        await self.write_bytes("MASK", golden.mask_bytes(mask))

    async def write_control(self, cfg: ConvConfig) -> None:
        """CONTROL (SKIP_EN, ZP_EN) and ZP_CONFIG (PATTERN, ZP_MAX) from the configuration."""
        await self.write("CONTROL", control_word(cfg))
        await self.write("ZP_CONFIG", zp_config_word(cfg))


async def write_checked(axil: AxiLiteMaster, addr: int, data: bytes) -> None:
    """`axil.write`, failing unless every BRESP of it is OKAY."""
    resp = await axil.write(addr, data)
    assert resp is not None, f"write to 0x{addr:x} flushed by a reset"
    assert resp.resp == AxiResp.OKAY, f"write to 0x{addr:x} answered {resp.resp!r}, not OKAY"


def read_back(reg: spec.Register, value: int) -> int:
    """What a register reads after a full-word write of `value`: `width` bits kept, maybe sign-extended;
    in a register with fields only the field bits, and a field with a list of values it can hold
    (ZP_CONFIG.PATTERN) stores its reset value when written anything else."""
    kept = value & ((1 << reg.width) - 1)
    if reg.fields:
        kept &= sum(f.mask for f in reg.fields)
    if reg.sign_extend and kept >> (reg.width - 1):
        kept |= 0xFFFFFFFF & ~((1 << reg.width) - 1)
    for f in reg.fields:
        if getattr(f, "values", None) is not None and (kept & f.mask) >> f.lsb not in f.values:
            kept = kept & ~f.mask | (f.reset << f.lsb)
    return kept


def read_back_strobed(reg: spec.Register, old: int, data: int, strb: int) -> int:
    """What a read/write register reads after a write of `data` with byte strobes `strb`, given what it
    read before: the strobed bytes are written, the others keep their value (rtl/README.md, section 4)."""
    bits = sum(0xFF << (8 * k) for k in range(4) if strb >> k & 1)
    return read_back(reg, old & ~bits | data & bits)


class AxiLiteChannels:
    """The five channels of the `s_axil` port, each driven on its own (cocotbext-axi channel models).

    For what AxiLiteMaster never does: W before AW, gaps between them, BREADY or RREADY held low, a
    read and a write in flight at once, wstrb = 0. Use it instead of an AxiLiteMaster, never beside
    one (both would drive BREADY and RREADY). `pause_b` / `pause_r` hold BREADY / RREADY low.
    """

    TIMEOUT_CYCLES = 200  # far longer than any response takes: a wait beyond it has hung

    def __init__(self, dut):
        logging.getLogger(f"cocotb.{dut._name}.s_axil").setLevel(logging.WARNING)  # one line per transfer
        bus = AxiLiteBus.from_prefix(dut, "s_axil")
        self.aw = AxiLiteAWSource(bus.write.aw, dut.clk, dut.rst)
        self.w = AxiLiteWSource(bus.write.w, dut.clk, dut.rst)
        self.b = AxiLiteBSink(bus.write.b, dut.clk, dut.rst)
        self.ar = AxiLiteARSource(bus.read.ar, dut.clk, dut.rst)
        self.r = AxiLiteRSink(bus.read.r, dut.clk, dut.rst)

    def send_aw(self, addr: int) -> None:
        self.aw.send_nowait(self.aw._transaction_obj(awaddr=addr))

    def send_w(self, data: int, strb: int = 0xF) -> None:
        self.w.send_nowait(self.w._transaction_obj(wdata=data & 0xFFFFFFFF, wstrb=strb))

    def send_ar(self, addr: int) -> None:
        self.ar.send_nowait(self.ar._transaction_obj(araddr=addr))

    def random_timing(self, rng: random.Random | None, idle: float = 0.4) -> None:
        """Random gaps on every channel (VALID and READY each low about `idle` of the cycles), from `rng`;
        None: no gaps."""
        for n, model in enumerate((self.aw, self.w, self.b, self.ar, self.r)):
            pattern = None if rng is None else itertools.cycle([rng.random() < idle for _ in range(101 + 2 * n)])
            model.set_pause_generator(pattern)
            model.pause = False  # removing a generator leaves its last value

    def pause_b(self, hold: bool) -> None:
        self.b.pause = hold

    def pause_r(self, hold: bool) -> None:
        self.r.pause = hold

    async def _within(self, awaitable, what: str):
        try:
            return await with_timeout(awaitable, self.TIMEOUT_CYCLES * CLOCK_PS, "ps")
        except TimeoutError:
            raise AssertionError(f"{what}: nothing after {self.TIMEOUT_CYCLES} cycles, the bus hangs") from None

    async def b_resp(self, what: str = "write") -> None:
        """Take the next B response; it must be OKAY."""
        b = await self._within(self.b.recv(), f"{what}: no B response")
        assert int(b.bresp) == AxiResp.OKAY, f"{what}: BRESP {int(b.bresp)}, not OKAY"

    async def r_data(self, what: str = "read") -> int:
        """Take the next R response; it must be OKAY. Returns RDATA."""
        r = await self._within(self.r.recv(), f"{what}: no R response")
        assert int(r.rresp) == AxiResp.OKAY, f"{what}: RRESP {int(r.rresp)}, not OKAY"
        return int(r.rdata)

    async def write(self, addr: int, data: int, strb: int = 0xF) -> None:
        """One write, AW and W together, and its OKAY response."""
        self.send_aw(addr)
        self.send_w(data, strb)
        await self.b_resp(f"write 0x{data & 0xFFFFFFFF:08x} (wstrb 0b{strb:04b}) to 0x{addr:x}")

    async def read(self, addr: int) -> int:
        self.send_ar(addr)
        return await self.r_data(f"read of 0x{addr:x}")


def unmapped_probes() -> list[int]:
    """First, middle and last word of every gap in one instance's register map (`spec.unmapped`)."""
    free = [a for a in range(0, 1 << spec.CORE_ADDR_WIDTH, 4) if spec.unmapped(a)]
    gaps: list[list[int]] = []
    for a in free:
        if gaps and gaps[-1][-1] == a - 4:
            gaps[-1].append(a)
        else:
            gaps.append([a])
    return sorted({a for gap in gaps for a in (gap[0], gap[len(gap) // 2], gap[-1])})


def random_ifmap(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(spec.H, spec.W), dtype=np.uint8)
