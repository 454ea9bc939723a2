"""`velcro_top`: up to `spec.INSTANCES` independent `velcro_conv2d` instances behind one AXI4-Lite port.

Streams: instance i owns slice i of every concatenated stream vector; nothing is shared.

Configuration: the address bits above an instance's own (`spec.CORE_ADDR_WIDTH`) select instance i,
whose registers sit at i·`spec.INSTANCE_STRIDE`. The fan-out is `rtl.axil.AxiLiteBridge`: a
register stage on the way to the instances (AW with W, and AR) and one on the way back (B and R),
so no combinational path runs between the instances' ports and the top's; back-to-back writes
still reach the instances at one per cycle, and each transaction costs `spec.BRIDGE_LATENCY` +
`spec.BRIDGE_RESPONSE_LATENCY` extra cycles. Selections without an instance answer OKAY and read 0.

The instances are the `velcro_conv2d` module itself, instantiated by name: rtl.tools.generate puts
that module once into the same file (16 inlined copies would be 16x the Verilog), so the top
contains the verified core verbatim.
"""
from amaranth import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import wiring

from model.hw import spec
from rtl.axil import AxiLiteBridge
from rtl.conv2d import core_interfaces
from rtl.interfaces import FlatPortsComponent, connect_lane, instance_ports

MAX_INSTANCES = 1 << spec.INSTANCE_SELECT_BITS  # what the instance-select address bits can reach


class VelcroTop(FlatPortsComponent):
    """`instances` conv2d instances (module `velcro_top`); ports in rtl/README.md."""

    def __init__(self, instances: int = spec.INSTANCES):
        if not isinstance(instances, int) or isinstance(instances, bool):
            raise TypeError(f"instances must be an int, got {type(instances).__name__}")
        if not 1 <= instances <= MAX_INSTANCES:
            raise ValueError(f"instances must lie in 1..{MAX_INSTANCES} ({spec.INSTANCE_SELECT_BITS} address bits), "
                             f"got {instances}")  # fmt: skip
        self.instances = instances
        super().__init__(core_interfaces(lanes=instances, addr_width=spec.TOP_ADDR_WIDTH))

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = AxiLiteBridge(self.instances, spec.CORE_ADDR_WIDTH, spec.INSTANCE_SELECT_BITS)
        wiring.connect(m, wiring.flipped(self.s_axil), bridge.bus)
        for i in range(self.instances):
            # The instance's ports, as interfaces seen from the instance (its s_axil is a subordinate).
            ports = {name: sig.create(path=(f"conv{i}", name)) for name, sig in core_interfaces().items()}
            m.submodules[f"conv{i}"] = Instance(
                "velcro_conv2d",
                i_clk=ClockSignal(),
                i_rst=ResetSignal(),
                **{k: v for name, iface in ports.items() for k, v in instance_ports(name, iface).items()},
            )
            wiring.connect(m, bridge.targets[i], ports["s_axil"])
            connect_lane(m, self.s_axis, i, ports["s_axis"])
            connect_lane(m, self.m_axis, i, ports["m_axis"])
        return m
