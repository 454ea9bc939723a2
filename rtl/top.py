"""`velcro_top`: up to 16 independent `velcro_conv2d` instances behind one AXI4-Lite port.

Streams: instance i owns slice i of every concatenated stream vector (DESIGN §4), nothing is shared.

Configuration: address bits [16:13] select instance i (registers at i·0x2000), bits [12:0] go to
it. The fan-out is a store-and-forward bridge, one transaction per direction at a time: it takes
AW and W (either order or together) into holding registers, forwards the write to the selected
instance's own AXI4-Lite port and returns that instance's B response; a read takes AR, forwards it
and returns the instance's R. Registering both sides keeps the 16-way decode off every
combinational path between the bus and the instances, costs 2 extra cycles per transaction, and
cannot deadlock: the bridge never waits on anything but the one instance it addressed. Addresses of
instances that do not exist (instances < 16) answer OKAY at once and read 0.
"""
import operator
from functools import reduce
from types import SimpleNamespace

from amaranth import Cat, ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from rtl.axil import axil_slave_members, hold_write_request
from rtl.conv2d import ADDR_WIDTH, stream_members

MAX_INSTANCES = 16
TOP_ADDR_WIDTH = ADDR_WIDTH + 4  # bits [16:13] select the instance
# The ports of one `velcro_conv2d` (name -> In/Out member), as VelcroConv2d declares them.
CORE_PORTS = {**stream_members("s_axis", "sink"), **stream_members("m_axis", "source"),
              **axil_slave_members(ADDR_WIDTH)}  # fmt: skip


class VelcroTop(wiring.Component):
    """`instances` conv2d instances; ports of DESIGN §4 (module `velcro_top`)."""

    def __init__(self, instances: int = MAX_INSTANCES):
        if not isinstance(instances, int) or isinstance(instances, bool):
            raise TypeError(f"instances must be an int, got {type(instances).__name__}")
        if not 1 <= instances <= MAX_INSTANCES:
            raise ValueError(f"instances must lie in 1..{MAX_INSTANCES} (4 address bits), got {instances}")
        self.instances = instances
        super().__init__(
            {
                **stream_members("s_axis", "sink", instances),
                **stream_members("m_axis", "source", instances),
                **axil_slave_members(TOP_ADDR_WIDTH),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cores = []
        for i in range(self.instances):
            # One port signal per core port; the core itself is the `velcro_conv2d` module, which
            # rtl.tools.generate puts once into the same file (16 inlined copies would be 16x the Verilog).
            core = SimpleNamespace(**{name: Signal(member.shape, name=f"conv{i}_{name}")
                                      for name, member in CORE_PORTS.items()})  # fmt: skip
            cores.append(core)
            m.submodules[f"conv{i}"] = Instance(
                "velcro_conv2d",
                i_clk=ClockSignal(),
                i_rst=ResetSignal(),
                **{("i_" if member.flow == In else "o_") + name: getattr(core, name)
                   for name, member in CORE_PORTS.items()},
            )  # fmt: skip
            for prefix, inward in (("s_axis", True), ("m_axis", False)):
                for suffix, width in (("tdata", 64), ("tvalid", 1), ("tready", 1), ("tlast", 1)):
                    outer = getattr(self, f"{prefix}_{suffix}").word_select(i, width)
                    inner = getattr(core, f"{prefix}_{suffix}")
                    # tready flows against its stream
                    m.d.comb += inner.eq(outer) if inward != (suffix == "tready") else outer.eq(inner)

        # ------------------------------------------------------------ write bridge
        held = hold_write_request(m, self, TOP_ADDR_WIDTH)
        aw_full, w_full, aw_addr, w_data, w_strb = held.aw_full, held.w_full, held.addr, held.data, held.strb
        aw_sent, w_sent = Signal(name="aw_sent"), Signal(name="w_sent")  # already handed to the instance
        writing = aw_full & w_full & ~self.s_axil_bvalid

        # ------------------------------------------------------------ read bridge
        ar_full, ar_sent = Signal(name="ar_full"), Signal(name="ar_sent")
        ar_addr = Signal(TOP_ADDR_WIDTH)
        m.d.comb += self.s_axil_arready.eq(~ar_full)
        with m.If(self.s_axil_arvalid & ~ar_full):
            m.d.sync += [ar_full.eq(1), ar_addr.eq(self.s_axil_araddr)]
        with m.If(self.s_axil_rvalid & self.s_axil_rready):
            m.d.sync += self.s_axil_rvalid.eq(0)
        reading = ar_full & ~self.s_axil_rvalid

        # Every instance sees the held address, data and strobes; only the selected one sees valid.
        # Its responses are AND-OR selected (the decode is one-hot), which leaves 0 for a hole.
        w_hit = [aw_addr[ADDR_WIDTH:] == i for i in range(self.instances)]
        r_hit = [ar_addr[ADDR_WIDTH:] == i for i in range(self.instances)]
        for core, w_sel, r_sel in zip(cores, w_hit, r_hit):
            m.d.comb += [
                core.s_axil_awaddr.eq(aw_addr[:ADDR_WIDTH]),
                core.s_axil_awvalid.eq(writing & ~aw_sent & w_sel),
                core.s_axil_wdata.eq(w_data),
                core.s_axil_wstrb.eq(w_strb),
                core.s_axil_wvalid.eq(writing & ~w_sent & w_sel),
                core.s_axil_bready.eq(writing & w_sel),
                core.s_axil_araddr.eq(ar_addr[:ADDR_WIDTH]),
                core.s_axil_arvalid.eq(reading & ~ar_sent & r_sel),
                core.s_axil_rready.eq(reading & r_sel),
            ]
        w_hole, r_hole = ~Cat(*w_hit).any(), ~Cat(*r_hit).any()

        with m.If(_or(c.s_axil_awvalid & c.s_axil_awready for c in cores)):
            m.d.sync += aw_sent.eq(1)
        with m.If(_or(c.s_axil_wvalid & c.s_axil_wready for c in cores)):
            m.d.sync += w_sent.eq(1)
        with m.If(_or(c.s_axil_bvalid & c.s_axil_bready for c in cores) | (writing & w_hole)):
            m.d.sync += [
                aw_full.eq(0), w_full.eq(0), aw_sent.eq(0), w_sent.eq(0), self.s_axil_bvalid.eq(1),
                self.s_axil_bresp.eq(_or(c.s_axil_bresp & sel.replicate(2) for c, sel in zip(cores, w_hit))),
            ]
        with m.If(_or(c.s_axil_arvalid & c.s_axil_arready for c in cores)):
            m.d.sync += ar_sent.eq(1)
        with m.If(_or(c.s_axil_rvalid & c.s_axil_rready for c in cores) | (reading & r_hole)):
            m.d.sync += [
                ar_full.eq(0), ar_sent.eq(0), self.s_axil_rvalid.eq(1),
                self.s_axil_rdata.eq(_or(c.s_axil_rdata & sel.replicate(32) for c, sel in zip(cores, r_hit))),
                self.s_axil_rresp.eq(_or(c.s_axil_rresp & sel.replicate(2) for c, sel in zip(cores, r_hit))),
            ]
        return m


def _or(values):
    """OR of a sequence of Amaranth values."""
    return reduce(operator.or_, values)
