"""Drive a whole VelcroConv2d in the Amaranth simulator: AXI4-Lite writes and reads, frames in and out.

Used by the fast-tier tests of the full core (no cocotb, no Verilog): the bus is driven one request
at a time, the streams with the input always valid and the output always ready, and every output
beat is recorded with its cycle.
"""
from __future__ import annotations

import numpy as np

from model.hw import golden, spec
from model.hw.image import control_word, zp_config_word


class CoreDriver:
    """Testbench coroutines for one `VelcroConv2d` (`dut`), used inside `add_testbench`."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0

    async def tick(self, ctx, n: int = 1):
        for _ in range(n):
            await ctx.tick()
            self.cycle += 1

    async def write(self, ctx, address: int, value: int, strobe: int = 0xF):
        d = self.dut
        ctx.set(d.s_axil_awaddr, address)
        ctx.set(d.s_axil_wdata, value & 0xFFFFFFFF)
        ctx.set(d.s_axil_wstrb, strobe)
        ctx.set(d.s_axil_awvalid, 1)
        ctx.set(d.s_axil_wvalid, 1)
        ctx.set(d.s_axil_bready, 1)
        await self.tick(ctx)  # AW and W are taken together (the holding registers are empty)
        ctx.set(d.s_axil_awvalid, 0)
        ctx.set(d.s_axil_wvalid, 0)
        while not ctx.get(d.s_axil_bvalid):
            await self.tick(ctx)
        await self.tick(ctx)  # B handshake

    async def read(self, ctx, address: int) -> int:
        d = self.dut
        ctx.set(d.s_axil_araddr, address)
        ctx.set(d.s_axil_arvalid, 1)
        ctx.set(d.s_axil_rready, 1)
        await self.tick(ctx)
        ctx.set(d.s_axil_arvalid, 0)
        while not ctx.get(d.s_axil_rvalid):
            await self.tick(ctx)
        value = ctx.get(d.s_axil_rdata)
        await self.tick(ctx)
        return value

    async def configure(self, ctx, cfg: golden.ConvConfig, *, memories: bool = True):
        await self.write(ctx, spec.addr("CONTROL"), control_word(cfg))
        for i, w in enumerate(np.asarray(cfg.weights).reshape(-1)):
            await self.write(ctx, spec.addr("W", i), int(w) & 0xFF)
        await self.write(ctx, spec.addr("BIAS"), int(cfg.bias) & 0xFFFFFFFF)
        await self.write(ctx, spec.addr("MULT"), int(cfg.mult))
        await self.write(ctx, spec.addr("SHIFT"), int(cfg.shift))
        await self.write(ctx, spec.addr("ZP_CONFIG"), zp_config_word(cfg))
        if memories:
            for i, word in enumerate(golden.mask_words(cfg.mask)):
                await self.write(ctx, spec.addr("MASK", i), word)
            for i, word in enumerate(golden.avg_words(cfg.avg)):
                await self.write(ctx, spec.addr("AVG", i), word)

    async def run_frames(self, ctx, frames: list[np.ndarray], timeout: int = 20000):
        """Send frames back to back (input always valid, output always ready); return
        (output frames, cycle of each frame's first input handshake, cycle of each last output handshake)."""
        d = self.dut
        beats = [b for f in frames for b in golden.frame_to_beats(f)]
        ctx.set(d.m_axis_tready, 1)
        sent, outputs, firsts, lasts = 0, [], [], []
        current = []
        start = self.cycle
        while len(outputs) < len(frames):
            if self.cycle - start > timeout * len(frames):
                raise TimeoutError(f"{len(outputs)} of {len(frames)} frames came out")
            if sent < len(beats):
                ctx.set(d.s_axis_tdata, beats[sent])
                ctx.set(d.s_axis_tvalid, 1)
                ctx.set(d.s_axis_tlast, sent % spec.BEATS_PER_FRAME == spec.BEATS_PER_FRAME - 1)
            else:
                ctx.set(d.s_axis_tvalid, 0)
            took_in = sent < len(beats) and ctx.get(d.s_axis_tready)
            took_out = ctx.get(d.m_axis_tvalid)
            if took_in:
                if sent % spec.BEATS_PER_FRAME == 0:
                    firsts.append(self.cycle)
                sent += 1
            if took_out:
                current.append(ctx.get(d.m_axis_tdata))
                if ctx.get(d.m_axis_tlast):
                    outputs.append(golden.beats_to_frame(current))
                    lasts.append(self.cycle)
                    current = []
            await self.tick(ctx)
        ctx.set(d.s_axis_tvalid, 0)
        return outputs, firsts, lasts

    async def counters(self, ctx) -> dict[str, int]:
        names = ("FRAMES", "LAST_CYCLES", "LAST_MACS", "LAST_COMPUTED", "LAST_PREDICTED")
        return {name: await self.read(ctx, spec.addr(name)) for name in names}

