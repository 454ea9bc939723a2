"""AXI4 memory master of the Alveo kernel: a burst reader and a burst writer (rtl/README.md, section 9).

Both take commands "move `beats` 64-bit words at byte address `addr`" and cut them into INCR bursts
of full-width beats (AxSIZE = 3) that hold at most `spec.GMEM_MAX_BURST_BEATS` beats and never cross
a `spec.GMEM_BURST_BOUNDARY` (4 KB) boundary, which AXI4 forbids. Addresses must be multiples of 8:
the kernel refuses other buffers before it moves any data, so no narrow or unaligned burst exists.

Memory latency is hidden by issuing addresses ahead: up to `MAX_OUTSTANDING` bursts per direction are
in flight. Data is not buffered here: R beats go straight to the reader's consumer (RREADY is the
consumer's ready, so a full consumer stalls R), and W beats come straight from the writer's
producer. The kernel relies on that: its stream beats are its memory beats, cycle for cycle.

A burst with a response other than OKAY still completes (its data passes as it is); `error` pulses
so the kernel can report it.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from model.hw import spec

BEAT_BYTES = spec.GMEM_DATA_WIDTH // 8
SIZE = (BEAT_BYTES - 1).bit_length()  # AxSIZE: full-width beats
INCR = 1  # AxBURST
MAX_OUTSTANDING = 4  # bursts in flight per direction: 1,024 beats of addresses ahead
BEATS_WIDTH = 32 + (spec.BEATS_PER_FRAME - 1).bit_length()  # n_frames (32 bits) x 512 beats
LEN_WIDTH = (spec.GMEM_MAX_BURST_BEATS - 1).bit_length()  # AxLEN
BOUNDARY_BITS = (spec.GMEM_BURST_BOUNDARY - 1).bit_length()


def _read_members(addr_width: int, data_width: int, id_width: int) -> dict:
    return {
        "arid": Out(id_width), "araddr": Out(addr_width), "arlen": Out(LEN_WIDTH), "arsize": Out(3),
        "arburst": Out(2), "arvalid": Out(1), "arready": In(1),
        "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
    }  # fmt: skip


def _write_members(addr_width: int, data_width: int, id_width: int) -> dict:
    return {
        "awid": Out(id_width), "awaddr": Out(addr_width), "awlen": Out(LEN_WIDTH), "awsize": Out(3),
        "awburst": Out(2), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1),
        "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }  # fmt: skip


class Axi4Signature(wiring.Signature):
    """AXI4 seen from the manager, with the signals the kernel contract names plus 1-bit IDs (a
    constant 0: every transfer is in order). `part` is "read", "write" or "both" (the port)."""

    def __init__(self, part: str = "both", *, addr_width: int = spec.GMEM_ADDR_WIDTH,
                 data_width: int = spec.GMEM_DATA_WIDTH, id_width: int = spec.GMEM_ID_WIDTH):  # fmt: skip
        if part not in ("read", "write", "both"):
            raise ValueError(f"part must be 'read', 'write' or 'both', got {part!r}")
        members = {}
        if part in ("write", "both"):
            members |= _write_members(addr_width, data_width, id_width)
        if part in ("read", "both"):
            members |= _read_members(addr_width, data_width, id_width)
        super().__init__(members)


def command_layout(strobes: bool = False) -> data.StructLayout:
    """A transfer: `beats` words from byte address `addr`; a write also has the byte strobes of
    every beat."""
    fields = {"addr": spec.GMEM_ADDR_WIDTH, "beats": BEATS_WIDTH}
    if strobes:
        fields["strb"] = BEAT_BYTES
    return data.StructLayout(fields)


class _BurstIssuer:
    """The address side both directions share: cuts the current command into bursts.

    `length` is the next burst's beat count, `valid` whether one may be issued now; `issue()` is
    called in the cycle its address handshake happens. `active` is `remaining != 0` kept as a
    flip-flop, so that AxVALID and the idle flags need no zero test of the 41-bit count.
    """

    def __init__(self, m: Module, cmd, outstanding: Signal):
        self.addr = Signal(spec.GMEM_ADDR_WIDTH)
        self.remaining = Signal(BEATS_WIDTH)
        self.active = Signal()
        self.m = m
        offset = self.addr[:BOUNDARY_BITS]
        to_boundary = Signal(BOUNDARY_BITS + 1 - SIZE)  # beats left before the next 4 KB boundary
        m.d.comb += to_boundary.eq((spec.GMEM_BURST_BOUNDARY - offset) >> SIZE)
        limit = Mux(to_boundary < spec.GMEM_MAX_BURST_BEATS, to_boundary, spec.GMEM_MAX_BURST_BEATS)
        self.last = self.remaining <= limit  # the next burst ends the command
        self.length = Signal(LEN_WIDTH + 1)
        m.d.comb += self.length.eq(Mux(self.last, self.remaining, limit))
        # AxVALID stays up until the handshake: `remaining` only changes then, `outstanding` only falls.
        self.valid = self.active & (outstanding != MAX_OUTSTANDING)
        m.d.comb += cmd.ready.eq(~self.active)
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [self.addr.eq(cmd.payload.addr), self.remaining.eq(cmd.payload.beats),
                         self.active.eq(cmd.payload.beats != 0)]  # fmt: skip

    def issue(self) -> None:
        self.m.d.sync += [
            self.addr.eq(self.addr + (self.length << SIZE)),
            self.remaining.eq(self.remaining - self.length),
            self.active.eq(~self.last),
        ]


class BurstReader(wiring.Component):
    """Reads commanded transfers over the read half of an AXI4 port (module docstring).

    `data` carries the R beats in order; RREADY is `data.ready`. `idle`: no transfer under way and
    no burst outstanding. `error` pulses on an R beat whose RRESP is not OKAY.
    """

    def __init__(self):
        super().__init__({
            "cmd": In(stream.Signature(command_layout())),
            "data": Out(stream.Signature(spec.GMEM_DATA_WIDTH)),
            "bus": Out(Axi4Signature("read")),
            "idle": Out(1),
            "error": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        outstanding = Signal(range(MAX_OUTSTANDING + 1))  # bursts whose last beat was not taken yet
        issuer = _BurstIssuer(m, self.cmd, outstanding)
        ar_take = bus.arvalid & bus.arready
        r_take = bus.rvalid & bus.rready
        m.d.comb += [
            bus.arid.eq(0), bus.araddr.eq(issuer.addr), bus.arlen.eq(issuer.length - 1),
            bus.arsize.eq(SIZE), bus.arburst.eq(INCR), bus.arvalid.eq(issuer.valid),
            self.data.valid.eq(bus.rvalid), self.data.payload.eq(bus.rdata), bus.rready.eq(self.data.ready),
            self.error.eq(r_take & (bus.rresp != 0)),
            self.idle.eq(~issuer.active & (outstanding == 0)),
        ]  # fmt: skip
        with m.If(ar_take):
            issuer.issue()
        m.d.sync += outstanding.eq(outstanding + ar_take - (r_take & bus.rlast))
        return m


class BurstWriter(wiring.Component):
    """Writes commanded transfers over the write half of an AXI4 port (module docstring).

    `data` supplies the W beats in order; a beat is taken (`data.ready`) only once the address of
    its burst has been issued, so W never runs ahead of AW. Each command's `strb` is the byte
    strobe of all its beats. `idle`: no transfer under way, every B response received. `error`
    pulses on a B response that is not OKAY.
    """

    def __init__(self):
        super().__init__({
            "cmd": In(stream.Signature(command_layout(strobes=True))),
            "data": In(stream.Signature(spec.GMEM_DATA_WIDTH)),
            "bus": Out(Axi4Signature("write")),
            "idle": Out(1),
            "error": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        outstanding = Signal(range(MAX_OUTSTANDING + 1))  # bursts issued whose B was not received
        issuer = _BurstIssuer(m, self.cmd, outstanding)
        strb = Signal(BEAT_BYTES)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += strb.eq(self.cmd.payload.strb)
        # Bursts whose address went out and whose data did not: (length, strobes). It never holds
        # more than `outstanding` entries, so it is never full when an address may be issued.
        m.submodules.bursts = bursts = SyncFIFO(width=LEN_WIDTH + 1 + BEAT_BYTES, depth=MAX_OUTSTANDING)
        aw_take = bus.awvalid & bus.awready
        m.d.comb += [
            bus.awid.eq(0), bus.awaddr.eq(issuer.addr), bus.awlen.eq(issuer.length - 1),
            bus.awsize.eq(SIZE), bus.awburst.eq(INCR), bus.awvalid.eq(issuer.valid),
            bursts.w_en.eq(aw_take), bursts.w_data.eq(Cat(issuer.length, strb)),
        ]  # fmt: skip
        with m.If(aw_take):
            issuer.issue()

        beat = Signal(LEN_WIDTH)  # beat of the head burst
        head_length = bursts.r_data[: LEN_WIDTH + 1]
        w_take = bus.wvalid & bus.wready
        m.d.comb += [
            bus.wvalid.eq(self.data.valid & bursts.r_rdy),
            self.data.ready.eq(bus.wready & bursts.r_rdy),
            bus.wdata.eq(self.data.payload),
            bus.wstrb.eq(bursts.r_data[LEN_WIDTH + 1 :]),
            bus.wlast.eq(beat == head_length - 1),
            bursts.r_en.eq(w_take & bus.wlast),
        ]
        with m.If(w_take):
            m.d.sync += beat.eq(Mux(bus.wlast, Const(0), beat + 1))

        b_take = bus.bvalid & bus.bready
        m.d.comb += [
            bus.bready.eq(1),
            self.error.eq(b_take & (bus.bresp != 0)),
            self.idle.eq(~issuer.active & (outstanding == 0)),
        ]
        m.d.sync += outstanding.eq(outstanding + aw_take - b_take)
        return m
