"""The hardware contract in one machine-readable place: geometry, register map, fixed latencies.

`rtl/` builds its register decode, its pipeline depths and the top's address decode from this
module; the benches and drivers take every address from it; the cycle model is written in terms of
its latencies; and the register table in `rtl/README.md` is generated from it (`python -m
model.hw.spec` prints it; a test keeps the two equal). Only the standard library is imported, so
generating Verilog pulls in nothing else.

Why a Python module rather than SystemRDL: the consumers are Amaranth (Python), cocotb benches
(Python) and a Python host, and the contract carries more than registers (geometry, instance
count, pipeline latencies). One importable module serves all of them with no compile step and no
generated file to keep fresh; the README table is the only rendered copy, and it is tested.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------- geometry
H = W = 64  # IFMAP/OFMAP height and width
K = 3  # filter size (3x3, stride 1, zero padding 1: "same")
PIXELS_PER_BEAT = 8  # uint8 pixels per 64-bit AXI4-Stream beat
BEAT_BITS = 8 * PIXELS_PER_BEAT
BEATS_PER_FRAME = H * W // PIXELS_PER_BEAT  # 512
N_OUTPUTS = H * W  # 4096
TAPS = K * K  # weights per filter
MACS_PER_OUTPUT = TAPS  # 9 multipliers, one computed output per cycle
INDEX_BITS = (N_OUTPUTS - 1).bit_length()  # output index = 64·y + x
GROUPS_PER_ROW = W // PIXELS_PER_BEAT  # 8: a group is 8 outputs of a row, one mask byte, one beat
N_GROUPS = N_OUTPUTS // PIXELS_PER_BEAT  # 512

# ---------------------------------------------------------------- instances and addressing
INSTANCES = 16  # conv2d instances in velcro_top (one per channel of the hardware layer)
AXIL_DATA_WIDTH = 32  # AXI4-Lite data bits (4 byte strobes)
CORE_ADDR_WIDTH = 13  # byte address bits of one instance's AXI4-Lite port
INSTANCE_SELECT_BITS = (INSTANCES - 1).bit_length()  # 4: top address bits [16:13]
TOP_ADDR_WIDTH = CORE_ADDR_WIDTH + INSTANCE_SELECT_BITS  # 17
INSTANCE_STRIDE = 1 << CORE_ADDR_WIDTH  # instance i's registers start at i * 0x2000

ID_VALUE = 0x56454C43  # "VELC"
GEOMETRY_VALUE = H | (W << 8) | (K << 16) | (PIXELS_PER_BEAT << 24)

# ---------------------------------------------------------------- fixed latencies (cycles)
# The micro-architecture's pipeline depths. The RTL components take them from here, their unit tests
# measure them, and the cycle model (model/hw/cycles.py) is written in terms of them.
MASK_SCAN_STARTUP = 4  # compute start pulse -> first issued output index (the next start may share
# the cycle of the last issue, so consecutive scans are MASK_SCAN_STARTUP - 1 idle cycles apart)
WINDOW_READ_LATENCY = 3  # window read issued -> bank data registered -> 3x3 window registered
MAC_LATENCY = 6  # window -> requantized pixel: products, partial sums, accumulator, partial products
# of acc * M, scaled sum, clamp (rtl/mac_requant.py)
COMPUTE_PIPELINE = WINDOW_READ_LATENCY + MAC_LATENCY  # issued index -> OFMAP buffer write
OUTPUT_LATENCY = 3  # drain read -> memory data registered -> merged into the output FIFO -> first m_axis beat

# AXI4-Lite timing of one instance (velcro_conv2d), in cycles after the handshake that completes a
# request; velcro_top adds BRIDGE_LATENCY to each request on its way to the instance and
# BRIDGE_RESPONSE_LATENCY to each response on its way back.
AXIL_WRITE_LATENCY = 1  # handshake of the later of AW and W -> BVALID
AXIL_WRITE_INTERVAL = 1  # back-to-back writes (AW and W together, BREADY high): one per cycle
AXIL_READ_LATENCY = 2  # AR handshake -> RVALID
BRIDGE_LATENCY = 1  # velcro_top: request registered once between the bus and the instance
BRIDGE_RESPONSE_LATENCY = 1  # velcro_top: B and R registered once between the instance and the bus
# Requests velcro_top takes beyond what the addressed instance holds itself (2 writes, 1 read) while
# the bus master holds BREADY (RREADY) low: responses in the bridge, one presented, one waiting.
BRIDGE_EXTRA_WRITES = 4  # 2 B responses + 1 + 1
BRIDGE_EXTRA_READS = 3  # 1 R response + 1 + 1


# ---------------------------------------------------------------- zero-value prediction
ZP_GRID2 = 0  # ZP_CONFIG.PATTERN: anchors where row and column are both even (1/4 of the positions)
ZP_CHECKER = 1  # anchors where row + column is even (1/2 of the positions)
# Fixed costs of a frame with prediction on (rtl/README.md, section 8; model.hw.cycles):
ZP_HOT_WAIT = COMPUTE_PIPELINE  # last anchor issued -> its hot flag written -> the dilate pass starts
ZP_MAP_ROWS_PER_CYCLE = 4  # rows the dilate pass handles per cycle (a word of the predicted-zero map)
ZP_MAP_WRITE_CYCLES = H // ZP_MAP_ROWS_PER_CYCLE  # 16: the map of one frame
ZP_DILATE_CYCLES = ZP_MAP_WRITE_CYCLES + 6  # dilate pass start -> phase B start (read, hot, write, flags,
# and the 2 cycles the scanner registers its rows in)
# Cycles a prediction frame's compute stage takes beyond max(c, 1) + 3 when both phases issue (one more
# when either issues nothing); the contract bounds it by ZP_OVERHEAD_LIMIT.
ZP_OVERHEAD = MASK_SCAN_STARTUP - 1 + ZP_HOT_WAIT + ZP_DILATE_CYCLES
ZP_OVERHEAD_LIMIT = 64
if ZP_OVERHEAD + 1 > ZP_OVERHEAD_LIMIT:
    raise AssertionError(f"prediction's overhead {ZP_OVERHEAD + 1} exceeds the contract's {ZP_OVERHEAD_LIMIT}")


# ---------------------------------------------------------------- register map
@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int = 1
    reset: int = 0
    w1c: bool = False  # writing 1 clears it (in a register with access "RO, W1C")
    values: tuple[int, ...] | None = None  # the values it can hold; writing any other stores `reset`

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit register, or an array of `count` consecutive words (W, MASK, AVG).

    `reset=None` marks a memory-backed region (MASK, AVG): its contents are undefined after reset
    and a driver writes all of it; such a region is aligned to its power-of-two size so the
    hardware decodes it from the upper address bits alone.
    """

    name: str
    offset: int  # byte address inside one instance
    access: str  # "RO", "RW" or "RO, W1C"
    width: int  # bits stored per word (upper bits are dropped on write and read as 0 / sign)
    doc: str
    reset: int | None = 0  # None: undefined after reset (a driver writes it)
    count: int = 1
    fields: tuple[Field, ...] = field(default_factory=tuple)
    sign_extend: bool = False  # reads sign-extend bit width-1

    @property
    def word(self) -> int:
        """Word index (byte address >> 2) of the first word."""
        return self.offset >> 2

    @property
    def end(self) -> int:
        """First byte address after the register (array)."""
        return self.offset + 4 * self.count

    @property
    def is_memory(self) -> bool:
        """A memory-backed region (MASK, AVG) rather than flip-flops."""
        return self.reset is None

    @property
    def writable(self) -> bool:
        return self.access == "RW"

    @property
    def clear_on_write(self) -> bool:
        """Read-only, but writing 1 to a field clears it (STATUS.FRAME_ERROR)."""
        return "W1C" in self.access

    def addr(self, index: int = 0) -> int:
        if not 0 <= index < self.count:
            raise IndexError(f"{self.name}[{index}]: the register has {self.count} word(s)")
        return self.offset + 4 * index

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r} (fields: {[f.name for f in self.fields]})")


REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x0000, "RO", 32, f"constant 0x{ID_VALUE:08X} (ASCII 'VELC')", reset=ID_VALUE),
    Register("GEOMETRY", 0x0004, "RO", 32,
             f"constant: H \\| W<<8 \\| K<<16 \\| PIXELS_PER_BEAT<<24 = {H}, {W}, {K}, {PIXELS_PER_BEAT}",
             reset=GEOMETRY_VALUE),
    Register("CONTROL", 0x0008, "RW", 2,
             "bit 0 SKIP_EN: compressed outputs emit their average and cost nothing; "
             "bit 1 ZP_EN: zero-value prediction (section 8)",
             reset=1, fields=(Field("SKIP_EN", 0, reset=1), Field("ZP_EN", 1))),
    Register("STATUS", 0x000C, "RO, W1C", 2,
             "bit 0 BUSY (a frame in flight); bit 1 FRAME_ERROR (sticky, write 1 to clear)",
             fields=(Field("BUSY", 0), Field("FRAME_ERROR", 1, w1c=True))),
    Register("FRAMES", 0x0010, "RO", 32, "frames completed since reset (wraps)"),
    Register("LAST_CYCLES", 0x0014, "RO", 32,
             "clock edges from the first IFMAP beat's handshake to the last OFMAP beat's, of the last frame"),
    Register("LAST_MACS", 0x0018, "RO", 32, "MAC operations of the last frame (9 per computed output)"),
    Register("LAST_COMPUTED", 0x001C, "RO", 32, "outputs computed (not compressed) in the last frame"),
    Register("W", 0x0020, "RW", 8, "weight w[ky][kx] at i = 3·ky + kx: int8 in bits [7:0], reads sign-extend",
             count=TAPS, sign_extend=True),
    Register("BIAS", 0x0044, "RW", 32, "bias b, int32"),
    Register("MULT", 0x0048, "RW", 16, "requantization multiplier M, unsigned, bits [15:0]"),
    Register("SHIFT", 0x004C, "RW", 5, "requantization shift S, bits [4:0]"),
    Register("ZP_CONFIG", 0x0050, "RW", 16,
             f"bits [1:0] PATTERN: {ZP_GRID2} = GRID2 (anchors: row and column even), {ZP_CHECKER} = CHECKER "
             "(row + column even), writing 2 or 3 stores 0; bits [15:8] ZP_MAX (uint8); other bits read 0",
             fields=(Field("PATTERN", 0, 2, values=(ZP_GRID2, ZP_CHECKER)), Field("ZP_MAX", 8, 8))),
    Register("LAST_PREDICTED", 0x0054, "RO", 32, "outputs predicted zero in the last frame"),
    Register("MASK", 0x0400, "RW", 32,
             "bit j is output 32i + j (output = 64·y + x); 1 = compressed",
             reset=None, count=N_OUTPUTS // 32),
    Register("AVG", 0x1000, "RW", 32, "byte k is the uint8 average emitted for output 4i + k",
             reset=None, count=N_OUTPUTS // 4),
)
REG: dict[str, Register] = {r.name: r for r in REGISTERS}


def addr(name: str, index: int = 0) -> int:
    """Byte address of register `name` (word `index` of an array) inside one instance."""
    try:
        return REG[name].addr(index)
    except KeyError:
        raise KeyError(f"no register {name!r}; registers: {', '.join(REG)}") from None


def top_addr(instance: int, name: str, index: int = 0) -> int:
    """Byte address of an instance's register through velcro_top's one AXI4-Lite port."""
    if not 0 <= instance < INSTANCES:
        raise IndexError(f"instance {instance}: velcro_top has instances 0..{INSTANCES - 1}")
    return instance * INSTANCE_STRIDE + addr(name, index)


def unmapped(offset: int) -> bool:
    """True for a byte address inside one instance that no register occupies (reads 0, writes ignored).

    Address bits [1:0] are ignored, as the hardware does.
    """
    if not 0 <= offset < 1 << CORE_ADDR_WIDTH:
        raise ValueError(f"offset 0x{offset:x} lies outside one instance's {CORE_ADDR_WIDTH}-bit address space")
    word = offset & ~3
    return not any(r.offset <= word < r.end for r in REGISTERS)


def _check_map(registers: tuple[Register, ...], addr_width: int) -> None:
    """Word aligned, inside the address space, no overlaps, resets and fields within the width."""
    spans = sorted((r.offset, r.end, r.name) for r in registers)
    for (_, end, name), (next_start, _, next_name) in zip(spans, spans[1:]):
        if end > next_start:
            raise AssertionError(f"registers {name} and {next_name} overlap")
    for r in registers:
        if r.offset % 4 or r.end > 1 << addr_width:
            raise AssertionError(f"register {r.name} is unaligned or outside the {addr_width}-bit space")
        if not 1 <= r.width <= AXIL_DATA_WIDTH:
            raise AssertionError(f"register {r.name}: width {r.width} outside 1..{AXIL_DATA_WIDTH}")
        if r.reset is not None and r.reset >> r.width:
            raise AssertionError(f"register {r.name}: reset 0x{r.reset:x} does not fit {r.width} bits")
        for f in r.fields:
            if f.lsb + f.width > r.width or f.reset >> f.width:
                raise AssertionError(f"register {r.name}: field {f.name} does not fit")
            if f.lsb // 8 != (f.lsb + f.width - 1) // 8:
                raise AssertionError(f"register {r.name}: field {f.name} straddles a byte (strobes are per byte)")
            if f.values is not None and (f.reset not in f.values or any(v >> f.width for v in f.values)):
                raise AssertionError(f"register {r.name}: field {f.name} has values that do not fit or omit its reset")
            if f.w1c and not r.clear_on_write:
                raise AssertionError(f"register {r.name}: W1C field {f.name} in a register without W1C access")
        if r.clear_on_write and not any(f.w1c for f in r.fields):
            raise AssertionError(f"register {r.name}: W1C access but no W1C field")
        if r.fields and r.reset is not None and r.reset != sum(f.reset << f.lsb for f in r.fields):
            raise AssertionError(f"register {r.name}: reset disagrees with its fields' resets")
        if r.is_memory:
            size = 4 * r.count
            if size & (size - 1) or r.offset % size:
                raise AssertionError(f"memory region {r.name} must be a power of two in size and aligned to it")


_check_map(REGISTERS, CORE_ADDR_WIDTH)


# ---------------------------------------------------------------- Alveo kernel (velcro_krnl)
# One compute unit = one velcro_conv2d instance fed from device memory (rtl/README.md, section 9).
# XRT passes only kernel arguments, so the configuration travels as an image of the instance's own
# register space in device memory: the kernel loads it into the instance through the instance's
# AXI4-Lite port and writes the counters back into it.
KERNEL_NAME = "velcro_krnl"
KERNEL_CONTROL_ADDR_WIDTH = 12  # s_axi_control byte address bits
GMEM_ADDR_WIDTH = 64  # m_axi_gmem
GMEM_DATA_WIDTH = 64  # = BEAT_BITS: one memory beat is one stream beat
GMEM_ID_WIDTH = 1  # AXI IDs, constant 0 (every transfer in order); present because AXI models expect them
GMEM_MAX_BURST_BEATS = 256  # AXI4 INCR
GMEM_BURST_BOUNDARY = 4096  # no burst crosses a 4 KB boundary
BUFFER_ALIGN = GMEM_DATA_WIDTH // 8  # cfg, ifmap and ofmap must be multiples of 8 bytes (no narrow bursts)
IMAGE_BYTES = 1 << CORE_ADDR_WIDTH  # 8192: the instance's whole register space
FRAME_BYTES = H * W  # 4096 bytes per IFMAP and OFMAP, raster order
# Registers the kernel copies from the image into its instance on every start, in this order, and the
# counters it writes back into the image before raising ap_done. The instance is reset at every start,
# so the counters describe that start alone (FRAMES = n_frames; all 0 when n_frames = 0).
IMAGE_LOADED = ("CONTROL", "ZP_CONFIG", "W", "BIAS", "MULT", "SHIFT", "MASK", "AVG")
IMAGE_WRITTEN_BACK = ("FRAMES", "LAST_CYCLES", "LAST_MACS", "LAST_COMPUTED", "LAST_PREDICTED")
IMAGE_LOADED_WORDS = sum(REG[name].count for name in IMAGE_LOADED)  # 1,166 instance writes, one per cycle
# Fixed costs of one start with a memory whose read data and write responses come L cycles after
# the request and no pauses (rtl/README.md, section 9, "Cycle costs"), from the ap_start write's
# handshake: to the first IFMAP beat KERNEL_LOAD_CYCLES + 2L; from the last OFMAP beat to ap_done
# KERNEL_SAVE_CYCLES + 2L (model.hw.cycles.kernel_run_cycles adds the frames in between).
KERNEL_LOAD_CYCLES = IMAGE_LOADED_WORDS + 15
KERNEL_SAVE_CYCLES = 29


@dataclass(frozen=True)
class KernelArg:
    """A kernel argument as XRT sees it: its register offset, size in bytes, and whether it is a
    device-memory pointer (on m_axi_gmem) or a scalar."""

    name: str
    offset: int
    size: int
    pointer: bool
    c_type: str


KERNEL_ARGS: tuple[KernelArg, ...] = (
    KernelArg("cfg", 0x10, 8, True, "void*"),
    KernelArg("ifmap", 0x1C, 8, True, "void*"),
    KernelArg("ofmap", 0x28, 8, True, "void*"),
    KernelArg("n_frames", 0x34, 4, False, "unsigned int"),
)
KERNEL_REGISTERS: tuple[Register, ...] = (
    Register("AP_CTRL", 0x00, "RW", 8,
             "bit 0 ap_start (host sets; cleared when the kernel starts), bit 1 ap_done and bit 3 ap_ready "
             "(set when a start completes, cleared by a read of AP_CTRL), bit 2 ap_idle; other bits read 0",
             reset=0x4, fields=(Field("AP_START", 0), Field("AP_DONE", 1), Field("AP_IDLE", 2, reset=1),
                                Field("AP_READY", 3))),
    Register("GIE", 0x04, "RW", 1, "global interrupt enable"),
    Register("IER", 0x08, "RW", 1, "bit 0: interrupt on ap_done"),
    Register("ISR", 0x0C, "RW", 1, "bit 0: ap_done interrupt pending, set when a start completes while IER "
             "bit 0 is 1 (writing 1 toggles it)"),
    *(Register(a.name.upper(), a.offset, "RW", 32,
               f"argument `{a.name}`: " + ("device address, low word then high word; a multiple of "
                                          f"{BUFFER_ALIGN}" if a.pointer else "frames per start"),
               count=a.size // 4)
      for a in KERNEL_ARGS),
    Register("ERROR", 0x40, "RO", 2,
             f"errors of the last start (cleared by the next): bit 0 MISALIGNED, an address not a multiple of "
             f"{BUFFER_ALIGN}, so the start moved no data; bit 1 BUS_ERROR, a memory response other than OKAY",
             fields=(Field("MISALIGNED", 0), Field("BUS_ERROR", 1))),
)  # fmt: skip
KREG: dict[str, Register] = {r.name: r for r in KERNEL_REGISTERS}
_check_map(KERNEL_REGISTERS, KERNEL_CONTROL_ADDR_WIDTH)


def kernel_addr(name: str, index: int = 0) -> int:
    """Byte address of a kernel control register (word `index` of a 64-bit argument)."""
    try:
        return KREG[name].addr(index)
    except KeyError:
        raise KeyError(f"no kernel register {name!r}; registers: {', '.join(KREG)}") from None


def register_table(registers: tuple[Register, ...] = REGISTERS) -> str:
    """A register map (the instance's, or the kernel's control registers) as the Markdown table
    rtl/README.md carries."""
    lines = ["| address | name | access | bits | reset | meaning |", "|---|---|---|---|---|---|"]
    for r in registers:
        if r.count > 1:
            span = f"0x{r.offset:04X} + 4i, i < {r.count}"
            name = f"{r.name}[i]"
        else:
            span, name = f"0x{r.offset:04X}", r.name
        reset = "undefined" if r.reset is None else f"0x{r.reset:08X}" if r.reset > 9 else str(r.reset)
        bits = f"[{r.width - 1}:0]" if r.width > 1 else "[0]"
        lines.append(f"| {span} | {name} | {r.access} | {bits} | {reset} | {r.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(register_table(KERNEL_REGISTERS if sys.argv[1:] == ["--kernel"] else REGISTERS))
