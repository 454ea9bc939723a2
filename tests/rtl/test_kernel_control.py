"""The kernel's control slave in the Amaranth simulator: the ap_ctrl_hs handshake (ap_start set by a
write and cleared when the kernel takes it, ap_done/ap_ready set on completion and cleared by a read),
GIE/IER/ISR and the interrupt, the arguments with byte strobes, ERROR, and unmapped addresses; and
the register table of rtl/README.md, section 9, is the one the spec generates."""
from __future__ import annotations

import re
from pathlib import Path

from model.hw import spec
from rtl.kernel_control import KernelControl
from tests.rtl.amaranth_sim import simulate

A = spec.kernel_addr
AP = {f.name: f.mask for f in spec.KREG["AP_CTRL"].fields}


class Host:
    """One AXI4-Lite request at a time on the control port, AW and W together."""

    def __init__(self, ctx, dut):
        self.ctx, self.bus = ctx, dut.bus

    async def write(self, addr: int, data: int, strb: int = 0xF) -> None:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wdata, data)
        ctx.set(bus.wstrb, strb)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        ctx.set(bus.bready, 1)
        await ctx.tick().until(bus.awready & bus.wready)
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        await ctx.tick().until(bus.bvalid)
        assert ctx.get(bus.bresp) == 0

    async def read(self, addr: int) -> int:
        ctx, bus = self.ctx, self.bus
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arvalid, 1)
        ctx.set(bus.rready, 1)
        await ctx.tick().until(bus.arready)
        ctx.set(bus.arvalid, 0)
        await ctx.tick().until(bus.rvalid)
        assert ctx.get(bus.rresp) == 0
        return ctx.get(bus.rdata)


def run(bench):
    dut = KernelControl()

    async def wrapped(ctx):
        ctx.set(dut.idle, 1)
        await bench(ctx, dut, Host(ctx, dut))

    simulate(dut, wrapped)


async def pulse(ctx, signal):
    ctx.set(signal, 1)
    await ctx.tick()
    ctx.set(signal, 0)


def test_reset_values_and_unmapped_addresses():
    async def bench(ctx, dut, host):
        for reg in spec.KERNEL_REGISTERS:
            if reg.name != "ERROR":
                for i in range(reg.count):
                    assert await host.read(reg.addr(i)) == reg.reset, reg.name
        for addr in (0x44, 0x48, 0x100, 0xFFC, 0x3C):
            await host.write(addr, 0xFFFFFFFF)
            assert await host.read(addr) == 0, hex(addr)
        assert [await host.read(r.addr()) for r in spec.KERNEL_REGISTERS if r.name != "ERROR"] == [
            r.reset for r in spec.KERNEL_REGISTERS if r.name != "ERROR"]  # fmt: skip
        assert not ctx.get(dut.start) and not ctx.get(dut.interrupt)

    run(bench)


def test_ap_start_is_taken_by_the_kernel():
    async def bench(ctx, dut, host):
        await host.write(A("AP_CTRL"), 0x1, strb=0b0010)  # no strobe on bit 0's byte: nothing
        assert not ctx.get(dut.start)
        await host.write(A("AP_CTRL"), 0xFE)  # writing 0 to ap_start does nothing
        assert not ctx.get(dut.start)
        await host.write(A("AP_CTRL"), 0x1)
        assert ctx.get(dut.start)
        assert await host.read(A("AP_CTRL")) == AP["AP_START"] | AP["AP_IDLE"]
        ctx.set(dut.idle, 0)
        await pulse(ctx, dut.started)
        assert not ctx.get(dut.start)
        assert await host.read(A("AP_CTRL")) == 0  # running
        await host.write(A("AP_CTRL"), 0x0)
        assert not ctx.get(dut.start)

    run(bench)


def test_ap_done_and_ap_ready_clear_on_read():
    async def bench(ctx, dut, host):
        await pulse(ctx, dut.done)
        done = AP["AP_DONE"] | AP["AP_READY"] | AP["AP_IDLE"]
        assert await host.read(A("AP_CTRL")) == done
        assert await host.read(A("AP_CTRL")) == AP["AP_IDLE"]
        assert await host.read(A("GIE")) == 0  # reading another register clears nothing
        # A completion in the very cycle of the AR handshake is not lost: the read returns the old
        # value, the next read the new one.
        bus = dut.bus
        ctx.set(bus.araddr, A("AP_CTRL"))
        ctx.set(bus.arvalid, 1)
        ctx.set(bus.rready, 1)
        ctx.set(dut.done, 1)
        assert ctx.get(bus.arready)
        await ctx.tick()
        ctx.set(dut.done, 0)
        ctx.set(bus.arvalid, 0)
        await ctx.tick().until(bus.rvalid)
        assert ctx.get(bus.rdata) == AP["AP_IDLE"]
        await ctx.tick()
        assert await host.read(A("AP_CTRL")) == done

    run(bench)


def test_interrupt_status_and_enables():
    async def bench(ctx, dut, host):
        await pulse(ctx, dut.done)  # IER = 0: no interrupt status
        assert await host.read(A("ISR")) == 0
        await host.write(A("IER"), 1)
        await pulse(ctx, dut.done)
        assert await host.read(A("ISR")) == 1
        assert not ctx.get(dut.interrupt)  # GIE = 0
        await host.write(A("GIE"), 1)
        assert ctx.get(dut.interrupt)
        await host.write(A("IER"), 0)
        assert not ctx.get(dut.interrupt)
        await host.write(A("IER"), 1)
        await host.write(A("ISR"), 1)  # toggles: cleared
        assert await host.read(A("ISR")) == 0 and not ctx.get(dut.interrupt)
        await host.write(A("ISR"), 1)  # toggles: set, as Vitis HLS's ISR does
        assert await host.read(A("ISR")) == 1 and ctx.get(dut.interrupt)
        await host.write(A("ISR"), 0xFFFFFFFE)  # bit 0 clear: no toggle
        assert await host.read(A("ISR")) == 1
        await host.write(A("ISR"), 1)
        assert await host.read(A("GIE")) == 1 and await host.read(A("IER")) == 1

    run(bench)


def test_arguments_and_error():
    async def bench(ctx, dut, host):
        values = {"CFG": 0x0123456789ABCDE8, "IFMAP": 0xFEDCBA9876543210, "OFMAP": 0x0000_0001_0000_1000,
                  "N_FRAMES": 0x87654321}  # fmt: skip
        for name, value in values.items():
            for i in range(spec.KREG[name].count):
                await host.write(A(name, i), value >> (32 * i) & 0xFFFFFFFF)
        for name, value in values.items():
            assert getattr(ctx.get(dut.args), name.lower()) == value
            words = [await host.read(A(name, i)) for i in range(spec.KREG[name].count)]
            assert sum(w << (32 * i) for i, w in enumerate(words)) == value
        await host.write(A("N_FRAMES"), 0xAA_00_00_00, strb=0b1000)  # byte strobes
        assert await host.read(A("N_FRAMES")) == 0xAA654321
        ctx.set(dut.error, 0b10)
        assert await host.read(A("ERROR")) == 0b10
        await host.write(A("ERROR"), 0)  # read-only
        assert await host.read(A("ERROR")) == 0b10

    run(bench)


def test_readme_kernel_register_table_is_generated_from_spec():
    text = (Path(__file__).resolve().parents[2] / "rtl" / "README.md").read_text()
    found = re.search(r"<!-- kernel-register-table:begin[^>]*-->\n(.*?)\n<!-- kernel-register-table:end -->", text, re.S)
    assert found, "rtl/README.md lost its kernel-register-table markers"
    assert found.group(1) == spec.register_table(spec.KERNEL_REGISTERS), (
        "rtl/README.md's kernel register table differs from model/hw/spec.py: paste the output of "
        "`python -m model.hw.spec --kernel` between the kernel-register-table markers"
    )
