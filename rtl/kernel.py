"""`velcro_krnl`: one `velcro_conv2d` instance as a Vitis RTL kernel fed from device memory.

XRT hands a kernel only arguments, so the instance's configuration comes from an image of its
register space in memory (rtl/README.md, section 9). One start (`ap_ctrl_hs`):

    IDLE   wait for ap_start; take the arguments; an address that is not a multiple of
           `spec.BUFFER_ALIGN` sets ERROR.MISALIGNED and goes straight to DONE (no data moves)
    RESET  reset the instance (one cycle), so every start begins from the same state
    LOAD   `ImageMover` copies the image's `spec.IMAGE_LOADED` registers into the instance
    RUN    IFMAPs stream from `ifmap` into s_axis (tlast on every 512th beat) and OFMAPs from
           m_axis to `ofmap`, n_frames x 512 beats each way, until every write has its response
           (skipped when n_frames = 0)
    SAVE   `ImageMover` writes the instance's `spec.IMAGE_WRITTEN_BACK` counters into the image
           and every write has its response
    DONE   ap_done, ap_ready and the ISR (`KernelControl`); back to IDLE

The memory beats are the stream beats: R goes straight to s_axis (RREADY = TREADY, so the instance's
two IFMAP slots are the only input buffer) and m_axis straight to W, with bursts issued ahead by
`BurstReader` / `BurstWriter`. The instance therefore sees the memory's handshakes cycle for cycle,
and its counters (LAST_CYCLES) measure what the memory bus shows.

The instance is the `velcro_conv2d` module itself, instantiated by name; rtl.tools.generate puts
one copy of it into the same Verilog file, as for `velcro_top`.
"""
from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from rtl.axi4_master import Axi4Signature, BurstReader, BurstWriter, command_layout
from rtl.conv2d import core_interfaces
from rtl.interfaces import AxiLiteSignature, FlatInterface, flat_ports, instance_ports
from rtl.kernel_control import KernelControl, args_layout
from rtl.kernel_image import ImageMover

BEAT_BITS = (spec.BEATS_PER_FRAME - 1).bit_length()
ALIGN_BITS = (spec.BUFFER_ALIGN - 1).bit_length()
ERROR = spec.KREG["ERROR"]


class VelcroKrnl(wiring.Component):
    """The Vitis RTL kernel (module `velcro_krnl`); ports and behaviour in rtl/README.md, section 9."""

    def __init__(self):
        control = AxiLiteSignature(spec.KERNEL_CONTROL_ADDR_WIDTH).flip()
        super().__init__({
            "ap_clk": In(1),
            "ap_rst_n": In(1),  # synchronous, active low
            **flat_ports({"s_axi_control": control, "m_axi_gmem": Axi4Signature()}),
            "interrupt": Out(1),
        })  # fmt: skip
        # The flat ports seen as interfaces: the control slave, and the two halves of the memory port.
        self.s_axi_control = FlatInterface(self, "s_axi_control", control)
        self.gmem_read = FlatInterface(self, "m_axi_gmem", Axi4Signature("read"))
        self.gmem_write = FlatInterface(self, "m_axi_gmem", Axi4Signature("write"))

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        m.d.comb += [sync.clk.eq(self.ap_clk), sync.rst.eq(~self.ap_rst_n)]

        m.submodules.control = control = KernelControl()
        m.submodules.reader = reader = BurstReader()
        m.submodules.writer = writer = BurstWriter()
        m.submodules.image = image = ImageMover()
        wiring.connect(m, wiring.flipped(self.s_axi_control), control.bus)
        wiring.connect(m, wiring.flipped(self.gmem_read), reader.bus)
        wiring.connect(m, wiring.flipped(self.gmem_write), writer.bus)
        m.d.comb += self.interrupt.eq(control.interrupt)

        # The instance, seen through interfaces as velcro_top sees its instances.
        conv = {name: sig.create(path=("conv", name)) for name, sig in core_interfaces().items()}
        conv_rst = Signal()
        m.d.comb += conv_rst.eq(ResetSignal())
        m.submodules.conv = Instance(
            "velcro_conv2d",
            i_clk=ClockSignal(),
            i_rst=conv_rst,
            **{k: v for name, iface in conv.items() for k, v in instance_ports(name, iface).items()},
        )
        wiring.connect(m, image.core, conv["s_axil"])
        s_axis, m_axis = conv["s_axis"], conv["m_axis"]

        args = Signal(args_layout())  # latched at the start: the host may rewrite them meanwhile
        error = Signal(ERROR.width)
        m.d.comb += [control.error.eq(error), image.base.eq(args.cfg)]
        with m.If(reader.error | writer.error):
            m.d.sync += error[ERROR.field("BUS_ERROR").lsb].eq(1)
        misaligned = Cat(control.args.cfg[:ALIGN_BITS], control.args.ifmap[:ALIGN_BITS],
                         control.args.ofmap[:ALIGN_BITS]).any()  # fmt: skip

        # ------------------------------------------------------------ frames (state RUN)
        # The memory engines are shared with ImageMover: valids and readies are ORed, since only
        # the side that owns the current state raises them.
        run = Signal()
        frame_beats = Cat(Const(0, BEAT_BITS), args.n_frames)  # n_frames x 512, each way
        frames_read, frames_write = Signal(command_layout()), Signal(command_layout(strobes=True))
        m.d.comb += [
            frames_read.addr.eq(args.ifmap), frames_read.beats.eq(frame_beats),
            frames_write.addr.eq(args.ofmap), frames_write.beats.eq(frame_beats), frames_write.strb.eq(0xFF),
        ]  # fmt: skip
        read_cmd_sent, write_cmd_sent = Signal(), Signal()
        in_beat = Signal(BEAT_BITS)  # IFMAP beat within its frame, for tlast
        m.d.comb += [
            reader.cmd.valid.eq(image.read_cmd.valid | (run & ~read_cmd_sent)),
            reader.cmd.payload.eq(Mux(run, frames_read, image.read_cmd.payload)),
            image.read_cmd.ready.eq(reader.cmd.ready),
            image.read_data.valid.eq(reader.data.valid),
            image.read_data.payload.eq(reader.data.payload),
            s_axis.tdata.eq(reader.data.payload),
            s_axis.tvalid.eq(run & reader.data.valid),
            s_axis.tlast.eq(in_beat == spec.BEATS_PER_FRAME - 1),
            reader.data.ready.eq(image.read_data.ready | (run & s_axis.tready)),
            writer.cmd.valid.eq(image.write_cmd.valid | (run & ~write_cmd_sent)),
            writer.cmd.payload.eq(Mux(run, frames_write, image.write_cmd.payload)),
            image.write_cmd.ready.eq(writer.cmd.ready),
            writer.data.valid.eq(image.write_data.valid | (run & m_axis.tvalid)),
            writer.data.payload.eq(Mux(run, m_axis.tdata, image.write_data.payload)),
            image.write_data.ready.eq(writer.data.ready),
            m_axis.tready.eq(run & writer.data.ready),
        ]  # fmt: skip
        with m.If(run & reader.cmd.ready):
            m.d.sync += read_cmd_sent.eq(1)
        with m.If(run & writer.cmd.ready):
            m.d.sync += write_cmd_sent.eq(1)
        with m.If(s_axis.tvalid & s_axis.tready):
            m.d.sync += in_beat.eq(in_beat + 1)

        # ------------------------------------------------------------ one start
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += control.idle.eq(1)
                with m.If(control.start):
                    m.d.comb += control.started.eq(1)
                    m.d.sync += [args.eq(control.args), error.eq(0)]
                    with m.If(misaligned):
                        m.d.sync += error[ERROR.field("MISALIGNED").lsb].eq(1)
                        m.next = "DONE"
                    with m.Else():
                        m.next = "RESET"
            with m.State("RESET"):
                # The instance leaves reset after this cycle; the load's first write comes later (memory).
                m.d.comb += [conv_rst.eq(1), image.load.eq(1)]
                m.d.sync += [in_beat.eq(0), read_cmd_sent.eq(0), write_cmd_sent.eq(0)]
                m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(~image.busy):
                    with m.If(args.n_frames == 0):
                        m.d.comb += image.save.eq(1)
                        m.next = "SAVE"
                    with m.Else():
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += run.eq(1)
                with m.If(read_cmd_sent & write_cmd_sent & reader.idle & writer.idle):
                    m.d.comb += image.save.eq(1)
                    m.next = "SAVE"
            with m.State("SAVE"):
                with m.If(~image.busy & writer.idle):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += control.done.eq(1)
                m.next = "IDLE"
        return m
