"""Bus signatures (AXI4-Lite, AXI4-Stream) and the flat-port view the top-level modules use.

Inside the design, buses are `amaranth.lib.wiring` interfaces and are wired with `wiring.connect`.
At the two Verilog top levels the ports must keep the flat Xilinx names of the hardware contract
(`s_axil_awaddr`, `s_axis_tdata`, ...), so that Vivado infers the interfaces and every external bench
keeps working. A nested signature member would come out as `s_axil__awaddr` (Amaranth joins the
path with a double underscore), so the top-level components declare their ports flat instead:
`flat_ports` turns {"s_axil": <signature>} into members `s_axil_<name>`, and `FlatInterface` gives
those signals back as one interface object whose `signature` is the bus signature. That object is
what `wiring.connect` / `wiring.flipped` see, so the wiring is checked exactly as for a nested
member, and the Verilog port names stay what they were. (The alternative, renaming ports in the
Yosys script of rtl/tools/generate.py, would make the Amaranth and Verilog names differ and hide
the port list from Python.)
"""
from __future__ import annotations

from amaranth import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec


class AxiLiteSignature(wiring.Signature):
    """AXI4-Lite seen from the manager (master): `Out` members are driven by the manager.

    A subordinate (slave) port is `In(AxiLiteSignature(...))`, or `AxiLiteSignature(...).flip()`.
    AWPROT/ARPROT are not carried: the hardware contract's ports do not have them.
    """

    def __init__(self, addr_width: int, data_width: int = spec.AXIL_DATA_WIDTH):
        if not isinstance(addr_width, int) or not 2 < addr_width <= 64:
            raise ValueError(f"addr_width must be an integer in 3..64, got {addr_width!r}")
        if data_width not in (32, 64):
            raise ValueError(f"AXI4-Lite data width is 32 or 64, got {data_width!r}")
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__(
            {
                "awaddr": Out(addr_width), "awvalid": Out(1), "awready": In(1),
                "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1), "wready": In(1),
                "bresp": In(2), "bvalid": In(1), "bready": Out(1),
                "araddr": Out(addr_width), "arvalid": Out(1), "arready": In(1),
                "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
            }
        )  # fmt: skip

    def __eq__(self, other):
        return type(other) is AxiLiteSignature and (self.addr_width, self.data_width) == (
            other.addr_width, other.data_width)  # fmt: skip

    def __hash__(self):
        return hash((AxiLiteSignature, self.addr_width, self.data_width))

    def __repr__(self):
        return f"AxiLiteSignature({self.addr_width}, {self.data_width})"


class AxiStreamSignature(wiring.Signature):
    """AXI4-Stream (tdata, tvalid, tready, tlast) seen from the source.

    `lanes` independent streams side by side: lane i owns slice i of every member (the top's
    concatenated per-instance vectors). One lane is an ordinary stream.
    """

    def __init__(self, data_width: int = spec.BEAT_BITS, lanes: int = 1):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, got {lanes!r}")
        self.data_width, self.lanes = data_width, lanes
        super().__init__(
            {"tdata": Out(data_width * lanes), "tvalid": Out(lanes), "tready": In(lanes), "tlast": Out(lanes)}
        )

    def __eq__(self, other):
        return type(other) is AxiStreamSignature and (self.data_width, self.lanes) == (other.data_width, other.lanes)

    def __hash__(self):
        return hash((AxiStreamSignature, self.data_width, self.lanes))

    def __repr__(self):
        return f"AxiStreamSignature({self.data_width}, lanes={self.lanes})"

    def lane_width(self, name: str) -> int:
        """Width of one lane's slice of member `name`."""
        return Shape.cast(self.members[name].shape).width // self.lanes


def flat_ports(interfaces: dict[str, wiring.Signature]) -> dict[str, wiring.Member]:
    """Component members `<prefix>_<name>` for each interface, with the interface's flows."""
    return {f"{prefix}_{name}": member for prefix, sig in interfaces.items() for name, member in sig.members.items()}


class FlatInterface:
    """The flat ports `<prefix>_<name>` of `owner`, seen as one interface object with `signature`."""

    def __init__(self, owner, prefix: str, signature: wiring.Signature):
        self.signature = signature
        for name in signature.members:
            setattr(self, name, getattr(owner, f"{prefix}_{name}"))

    def __repr__(self):
        return f"<FlatInterface {self.signature!r}>"


class FlatPortsComponent(wiring.Component):
    """A component whose ports are whole interfaces, flattened to `<prefix>_<name>` Verilog ports.

    `self.<prefix>` is the interface view of each group (see the module docstring).
    """

    def __init__(self, interfaces: dict[str, wiring.Signature]):
        super().__init__(flat_ports(interfaces))
        for prefix, sig in interfaces.items():
            setattr(self, prefix, FlatInterface(self, prefix, sig))


def instance_ports(prefix: str, interface) -> dict:
    """`Instance` keyword arguments (`i_<prefix>_<name>` / `o_...`) for an interface seen from the instance."""
    return {("i_" if member.flow == In else "o_") + f"{prefix}_{name}": getattr(interface, name)
            for name, member in interface.signature.members.items()}  # fmt: skip


def connect_lane(m, lanes, index: int, lane) -> None:
    """Wire `lane` (a one-lane stream interface) to slice `index` of `lanes` (same orientation)."""
    sig = lanes.signature
    for name, member in sig.members.items():
        outer = getattr(lanes, name).word_select(index, sig.lane_width(name))
        inner = getattr(lane, name)
        m.d.comb += inner.eq(outer) if member.flow == In else outer.eq(inner)
