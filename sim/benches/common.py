"""What both cocotb benches share: clock, reset, the AXI4-Lite master and register-level access.

Every address and constant comes from `model.hw.spec` (the hardware contract, tabulated in
rtl/README.md); the benches only drive ports and check results.
"""
from __future__ import annotations

import logging
import os

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from model.hw import cycles, golden, spec
from model.hw.golden import ConvConfig

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


def start_clock_and_bus(dut) -> AxiLiteMaster:
    """Start the clock and return a quiet AXI4-Lite master on the `s_axil` port."""
    Clock(dut.clk, CLOCK_PS, unit="ps").start()
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
        return await self.axil.read_dword(self.addr(reg, index))

    async def write(self, reg: str | int, value: int, index: int = 0) -> None:
        await self.axil.write_dword(self.addr(reg, index), int(value) & 0xFFFFFFFF)

    async def write_bytes(self, reg: str | int, data: bytes, index: int = 0) -> None:
        """Bytes from the register's address on: partial words use byte strobes, long runs pipeline."""
        await self.axil.write(self.addr(reg, index), data)

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
        if zp_supported():
            await self.write("ZP_CONFIG", zp_config_word(cfg))
        elif cfg.zp_en:
            raise AssertionError("zero-value prediction requested, but the register map has no ZP_CONFIG")


def zp_supported() -> bool:
    """The contract has the zero-value prediction registers (CONTROL.ZP_EN and ZP_CONFIG)."""
    return "ZP_CONFIG" in spec.REG


def control_word(cfg: ConvConfig) -> int:
    control = spec.REG["CONTROL"]
    word = int(cfg.skip_en) << control.field("SKIP_EN").lsb
    if cfg.zp_en:
        word |= 1 << control.field("ZP_EN").lsb
    return word


def zp_config_word(cfg: ConvConfig) -> int:
    reg = spec.REG["ZP_CONFIG"]
    return (int(cfg.zp_pattern) << reg.field("PATTERN").lsb) | (int(cfg.zp_max) << reg.field("ZP_MAX").lsb)


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
