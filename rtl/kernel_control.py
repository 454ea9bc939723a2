"""The Alveo kernel's `s_axi_control` slave: Vitis `ap_ctrl_hs` registers, the arguments and ERROR.

The register map is `spec.KERNEL_REGISTERS` (rtl/README.md, section 9); every register in it must
have an implementation here, or elaboration fails. Behaviour, as Vitis HLS's control slaves do it
where the contract is silent:

* AP_CTRL.ap_start is set by writing 1 to bit 0 (writing 0 does nothing) and cleared when the kernel
  takes the start (`started`); a 1 written in that very cycle is kept, as the next start.
* ap_done and ap_ready are set when the kernel finishes (`done`) and cleared by a read of AP_CTRL,
  which still returns them set; if `done` and the read meet in one cycle, they stay set.
* ap_idle is the kernel's `idle`, live.
* ISR bit 0 is set when the kernel finishes while IER bit 0 is 1; writing 1 to it toggles it (a set
  in the same cycle wins). `interrupt` = GIE & (ISR & IER).
* Byte strobes are honoured; bits a register does not hold read 0; addresses no register occupies
  read 0 and ignore writes; every response is OKAY (`AxiLiteRegisterBus`).
"""
from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from rtl.axil import AxiLiteRegisterBus
from rtl.interfaces import AxiLiteSignature

KREG = spec.KREG
ARGS = {a.name.upper(): a for a in spec.KERNEL_ARGS}


def args_layout() -> data.StructLayout:
    """The kernel arguments as one value: `cfg`, `ifmap`, `ofmap` (64-bit addresses), `n_frames`."""
    return data.StructLayout({a.name: 8 * a.size for a in spec.KERNEL_ARGS})


class KernelControl(wiring.Component):
    """AXI4-Lite control registers of `velcro_krnl` (module docstring)."""

    def __init__(self):
        super().__init__({
            "bus": In(AxiLiteSignature(spec.KERNEL_CONTROL_ADDR_WIDTH)),
            "start": Out(1),  # AP_CTRL.ap_start
            "started": In(1),  # the kernel takes the start
            "done": In(1),  # the kernel finished a start
            "idle": In(1),  # the kernel is idle (AP_CTRL.ap_idle)
            "error": In(KREG["ERROR"].width),  # what ERROR reads
            "args": Out(args_layout()),
            "interrupt": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        m.submodules.axil = bus = AxiLiteRegisterBus(spec.KERNEL_CONTROL_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.bus), bus.axil)

        def write_to(name: str, index: int = 0):
            return bus.wr_stb & (bus.wr_addr[2:] == KREG[name].word + index)

        ctrl = KREG["AP_CTRL"]
        start_bit = ctrl.field("AP_START").lsb
        done, ready = Signal(), Signal()
        gie, ier, isr = Signal(), Signal(), Signal()
        read_ap_ctrl = bus.rd_stb & (bus.rd_addr[2:] == ctrl.word)

        with m.If(write_to("AP_CTRL") & bus.wr_strb[start_bit // 8] & bus.wr_data[start_bit]):
            m.d.sync += self.start.eq(1)
        with m.Elif(self.started):
            m.d.sync += self.start.eq(0)
        for flag in (done, ready):
            with m.If(self.done):
                m.d.sync += flag.eq(1)
            with m.Elif(read_ap_ctrl):
                m.d.sync += flag.eq(0)
        with m.If(self.done & ier):
            m.d.sync += isr.eq(1)
        with m.Elif(write_to("ISR") & bus.wr_strb[0] & bus.wr_data[0]):
            m.d.sync += isr.eq(~isr)
        m.d.comb += self.interrupt.eq(gie & isr & ier)

        # Read/write words: GIE, IER and the arguments, byte by byte.
        words = {"GIE": [gie], "IER": [ier]}
        for name, arg in ARGS.items():
            words[name] = [Signal(32, name=f"{name.lower()}{i}") for i in range(KREG[name].count)]
            m.d.comb += getattr(self.args, arg.name).eq(Cat(*words[name]))
        for name, signals in words.items():
            for i, word in enumerate(signals):
                for k in range((len(word) + 7) // 8):
                    with m.If(write_to(name, i) & bus.wr_strb[k]):
                        m.d.sync += word[8 * k : 8 * k + 8].eq(bus.wr_data[8 * k : 8 * k + 8])

        fields = {"AP_START": self.start, "AP_DONE": done, "AP_IDLE": self.idle, "AP_READY": ready}
        ap_ctrl = Signal(ctrl.width)
        m.d.comb += [ap_ctrl[f.lsb].eq(fields[f.name]) for f in ctrl.fields]
        values = {"AP_CTRL": [ap_ctrl], "ISR": [isr], "ERROR": [self.error], **words}
        missing = {r.name for r in spec.KERNEL_REGISTERS} - set(values)
        if missing or {f.name for f in ctrl.fields} != set(fields):
            raise ValueError(f"kernel control registers without an implementation: {sorted(missing)}")

        # The word is latched with the read strobe: AxiLiteRegisterBus takes it one cycle later.
        with m.If(bus.rd_stb):
            m.d.sync += bus.rd_data.eq(0)
            with m.Switch(bus.rd_addr[2:]):
                for reg in spec.KERNEL_REGISTERS:
                    for i in range(reg.count):
                        with m.Case(reg.word + i):
                            m.d.sync += bus.rd_data.eq(values[reg.name][i])
        return m
