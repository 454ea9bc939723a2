"""`velcro_conv2d`: one 64x64, 3x3, ReLU conv2d instance with VELCRO compression skip.

Three stages run concurrently on consecutive frames (two IFMAP slots, three OFMAP slots):

    load    (512 beats)  s_axis -> IFMAP buffer slot
    compute (c cycles)   mask scanner -> window read -> MAC/requant -> OFMAP buffer slot
    drain   (512 beats)  OFMAP buffer slot, mask and averages -> output FIFO -> m_axis

Only computed outputs enter the compute stage, one per cycle; compressed outputs take their value
from the AVG memory while the frame drains, so they cost neither cycles nor MACs. The cycle model
of this micro-architecture is `model.hw.cycles`; the arithmetic is `model.hw.golden`. Register map,
ports and frame rules: DESIGN §4 and the README's hardware section.
"""
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from model.hw.golden import BEATS_PER_FRAME, H, K, MACS_PER_OUTPUT, PIXELS_PER_BEAT, W
from rtl.axil import AxiLiteRegisterBus, axil_slave_members
from rtl.ifmap_buffer import IfmapWindowBuffer
from rtl.mac_requant import TAPS, MacRequant
from rtl.mask_scan import GROUPS, MaskScanner

ADDR_WIDTH = 13
ID_VALUE = 0x56454C43  # "VELC"
GEOMETRY_VALUE = H | (W << 8) | (K << 16) | (PIXELS_PER_BEAT << 24)

# Word indices (byte address >> 2) of the registers of DESIGN §4.
REG_ID, REG_GEOMETRY, REG_CONTROL, REG_STATUS = 0, 1, 2, 3
REG_FRAMES, REG_LAST_CYCLES, REG_LAST_MACS, REG_LAST_COMPUTED = 4, 5, 6, 7
REG_W0, REG_BIAS, REG_MULT, REG_SHIFT = 8, 17, 18, 19
MASK_BASE, MASK_WORDS = 0x400, 128
AVG_BASE, AVG_WORDS = 0x1000, 1024

OUTPUT_FIFO_DEPTH = 4
# An OFMAP slot is held from compute start to the end of its drain (about c + 520 cycles). With three
# slots that occupancy never limits the frame interval below max(512, c + 3); with two it would
# for c just above 500.
OBUF_SLOTS = 3
FRAME_QUEUE_DEPTH = 8  # frames accepted but not yet emitted: at most 2 + 3 + 1


def stream_members(prefix: str, direction, count: int = 1) -> dict:
    """AXI4-Stream ports (tdata/tvalid/tready/tlast), `count` instances concatenated."""
    forward, backward = (In, Out) if direction == "sink" else (Out, In)
    return {
        f"{prefix}_tdata": forward(64 * count),
        f"{prefix}_tvalid": forward(count),
        f"{prefix}_tready": backward(count),
        f"{prefix}_tlast": forward(count),
    }


class VelcroConv2d(wiring.Component):
    """One conv2d instance; ports and registers of DESIGN §4 (module `velcro_conv2d`)."""

    def __init__(self):
        super().__init__(
            {
                **stream_members("s_axis", "sink"),
                **stream_members("m_axis", "source"),
                **axil_slave_members(ADDR_WIDTH),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.axil = bus = AxiLiteRegisterBus(ADDR_WIDTH)
        for name, member in axil_slave_members(ADDR_WIDTH).items():
            port, inner = getattr(self, name), getattr(bus, name)
            m.d.comb += inner.eq(port) if member.flow == wiring.In else port.eq(inner)

        cycle = Signal(32)
        m.d.sync += cycle.eq(cycle + 1)

        # ------------------------------------------------------------ configuration registers
        skip_en = Signal(init=1)
        weights = [Signal(signed(8), name=f"w{i}") for i in range(TAPS)]
        bias = Signal(signed(32))
        mult = Signal(unsigned(16))
        shift = Signal(unsigned(5))
        frame_error = Signal()
        frames = Signal(32)
        last_cycles = Signal(32)
        last_macs = Signal(32)
        last_computed = Signal(32)
        busy = Signal()
        nonempty = Signal(GROUPS, init=(1 << GROUPS) - 1)  # per mask byte: has a computed output

        m.submodules.mask_mem = mask_mem = Memory(shape=unsigned(32), depth=MASK_WORDS, init=[])
        mask_wr = mask_mem.write_port(granularity=8)
        mask_rd_bus, mask_rd_scan, mask_rd_drain = (mask_mem.read_port() for _ in range(3))
        avg_wr, avg_rd_bus, avg_rd_drain = [], [], []
        for half in range(2):  # even and odd AVG words, so the drain reads 8 averages per cycle
            mem = Memory(shape=unsigned(32), depth=AVG_WORDS // 2, init=[])
            m.submodules[f"avg_mem{half}"] = mem
            avg_wr.append(mem.write_port(granularity=8))
            avg_rd_bus.append(mem.read_port())
            avg_rd_drain.append(mem.read_port())

        # Writes.
        wr_word = bus.wr_addr[2:ADDR_WIDTH]
        strobe = bus.wr_strb

        def write_bytes(reg, width: int):
            """Honour wstrb per byte for a register of `width` bits."""
            for k in range((width + 7) // 8):
                lo, hi = 8 * k, min(8 * k + 8, width)
                with m.If(strobe[k]):
                    m.d.sync += reg[lo:hi].eq(bus.wr_data[lo:hi])

        with m.If(bus.wr_stb):
            with m.Switch(wr_word):
                with m.Case(REG_CONTROL):
                    write_bytes(skip_en, 1)
                with m.Case(REG_STATUS):
                    with m.If(strobe[0] & bus.wr_data[1]):
                        m.d.sync += frame_error.eq(0)
                for i in range(TAPS):
                    with m.Case(REG_W0 + i):
                        write_bytes(weights[i], 8)
                with m.Case(REG_BIAS):
                    write_bytes(bias, 32)
                with m.Case(REG_MULT):
                    write_bytes(mult, 16)
                with m.Case(REG_SHIFT):
                    write_bytes(shift, 5)
        mask_write = bus.wr_stb & (bus.wr_addr[9:ADDR_WIDTH] == MASK_BASE >> 9)
        mask_word = bus.wr_addr[2:9]
        m.d.comb += [
            mask_wr.addr.eq(mask_word),
            mask_wr.data.eq(bus.wr_data),
            mask_wr.en.eq(Mux(mask_write, strobe, 0)),
        ]
        with m.If(mask_write):
            old_flags = nonempty.word_select(mask_word, 4)
            new_flags = Cat(
                Mux(strobe[k], bus.wr_data[8 * k : 8 * k + 8] != 0xFF, old_flags[k]) for k in range(4)
            )
            m.d.sync += nonempty.word_select(mask_word, 4).eq(new_flags)
        avg_write = bus.wr_stb & bus.wr_addr[12]
        for half in range(2):
            m.d.comb += [
                avg_wr[half].addr.eq(bus.wr_addr[3:12]),
                avg_wr[half].data.eq(bus.wr_data),
                avg_wr[half].en.eq(Mux(avg_write & (bus.wr_addr[2] == half), strobe, 0)),
            ]

        # Reads: memories are addressed on the strobe, registers muxed from the latched address.
        rd_addr = Signal(ADDR_WIDTH)
        with m.If(bus.rd_stb):
            m.d.sync += rd_addr.eq(bus.rd_addr)
        m.d.comb += [mask_rd_bus.addr.eq(bus.rd_addr[2:9]), mask_rd_bus.en.eq(bus.rd_stb)]
        for half in range(2):
            m.d.comb += [avg_rd_bus[half].addr.eq(bus.rd_addr[3:12]), avg_rd_bus[half].en.eq(bus.rd_stb)]
        with m.If(rd_addr[12]):
            m.d.comb += bus.rd_data.eq(Mux(rd_addr[2], avg_rd_bus[1].data, avg_rd_bus[0].data))
        with m.Elif(rd_addr[9:12] == MASK_BASE >> 9):
            m.d.comb += bus.rd_data.eq(mask_rd_bus.data)
        with m.Elif(rd_addr[9:12] == 0):
            readable = {
                REG_ID: ID_VALUE, REG_GEOMETRY: GEOMETRY_VALUE, REG_CONTROL: skip_en,
                REG_STATUS: Cat(busy, frame_error), REG_FRAMES: frames, REG_LAST_CYCLES: last_cycles,
                REG_LAST_MACS: last_macs, REG_LAST_COMPUTED: last_computed,
                **{REG_W0 + i: w.as_signed() for i, w in enumerate(weights)},  # reads sign-extend
                REG_BIAS: bias, REG_MULT: mult, REG_SHIFT: shift,
            }  # fmt: skip
            with m.Switch(rd_addr[2:9]):
                for word, value in readable.items():
                    with m.Case(word):
                        m.d.comb += bus.rd_data.eq(value)

        # ------------------------------------------------------------ frame bookkeeping
        # Start times travel from the load stage to the last output beat; computed-output counts
        # from the compute stage. Both queues are popped by a frame's last OFMAP handshake.
        m.submodules.start_queue = start_queue = SyncFIFO(width=32, depth=FRAME_QUEUE_DEPTH)
        m.submodules.count_queue = count_queue = SyncFIFO(width=13, depth=FRAME_QUEUE_DEPTH)
        in_flight = Signal(4)
        frame_started = Signal()
        frame_dropped = Signal()
        frame_emitted = Signal()
        m.d.sync += in_flight.eq(in_flight + frame_started - frame_dropped - frame_emitted)
        m.d.comb += busy.eq(in_flight != 0)

        ifmap_full = Signal(2)  # slot loaded and not yet read by the compute stage
        obuf_busy = Signal(OBUF_SLOTS)  # slot owned by a frame being computed or drained
        obuf_ready = Signal(OBUF_SLOTS)  # slot holds a finished OFMAP waiting for / in the drain

        # ------------------------------------------------------------ load stage
        m.submodules.ifmap = ifmap = IfmapWindowBuffer()
        load_slot = Signal()
        load_beat = Signal(9)
        discard = Signal()  # dropping beats up to the next tlast after a missing one
        first_beat_time = Signal(32)
        in_take = Signal()
        m.d.comb += [
            self.s_axis_tready.eq(discard | ~ifmap_full.bit_select(load_slot, 1)),
            in_take.eq(self.s_axis_tvalid & self.s_axis_tready),
            ifmap.wr_en.eq(in_take & ~discard),
            ifmap.wr_slot.eq(load_slot),
            ifmap.wr_beat.eq(load_beat),
            ifmap.wr_data.eq(self.s_axis_tdata),
        ]
        with m.If(in_take & discard):
            with m.If(self.s_axis_tlast):
                m.d.sync += discard.eq(0)
        with m.Elif(in_take):
            with m.If(load_beat == 0):
                m.d.comb += frame_started.eq(1)
                m.d.sync += first_beat_time.eq(cycle)
            with m.If(load_beat == BEATS_PER_FRAME - 1):
                m.d.sync += [
                    ifmap_full.bit_select(load_slot, 1).eq(1),
                    load_slot.eq(~load_slot),
                    load_beat.eq(0),
                ]
                m.d.comb += [start_queue.w_en.eq(1), start_queue.w_data.eq(first_beat_time)]
                with m.If(~self.s_axis_tlast):
                    m.d.sync += [frame_error.eq(1), discard.eq(1)]
            with m.Elif(self.s_axis_tlast):
                m.d.comb += frame_dropped.eq(1)
                m.d.sync += [frame_error.eq(1), load_beat.eq(0)]
            with m.Else():
                m.d.sync += load_beat.eq(load_beat + 1)

        # ------------------------------------------------------------ compute stage
        m.submodules.scanner = scanner = MaskScanner()
        m.submodules.mac = mac = MacRequant(tag_width=14)
        compute_slot = Signal()  # IFMAP slot being computed
        compute_obuf = Signal(range(OBUF_SLOTS))  # OFMAP slot it writes
        computing = Signal()
        computed_count = Signal(13)
        m.d.comb += [
            scanner.nonempty.eq(nonempty | (~skip_en).replicate(GROUPS)),
            scanner.skip_en.eq(skip_en),
            mask_rd_scan.addr.eq(scanner.mask_addr),
            mask_rd_scan.en.eq(scanner.mask_en),
            scanner.mask_data.eq(mask_rd_scan.data),
        ]
        can_start = (
            ~computing
            & ifmap_full.bit_select(compute_slot, 1)
            & ~obuf_busy.bit_select(compute_obuf, 1)
        )
        with m.If(can_start):
            m.d.comb += scanner.start.eq(1)
            m.d.sync += [
                computing.eq(1),
                computed_count.eq(0),
                obuf_busy.bit_select(compute_obuf, 1).eq(1),
            ]
        issue = computing & scanner.issue
        m.d.comb += [
            ifmap.rd_en.eq(issue),
            ifmap.rd_slot.eq(compute_slot),
            ifmap.rd_y.eq(scanner.index[6:12]),
            ifmap.rd_x.eq(scanner.index[0:6]),
        ]
        with m.If(issue):
            m.d.sync += computed_count.eq(computed_count + 1)
        frame_computed = computing & scanner.done
        with m.If(frame_computed):
            # The last window read is issued in this cycle, so the IFMAP slot is free after it.
            m.d.sync += [
                computing.eq(0),
                compute_slot.eq(~compute_slot),
                compute_obuf.eq(_next_slot(compute_obuf)),
                ifmap_full.bit_select(compute_slot, 1).eq(0),
            ]
            m.d.comb += [count_queue.w_en.eq(1), count_queue.w_data.eq(computed_count + issue)]

        # The window arrives IfmapWindowBuffer.LATENCY cycles after its read; its tag follows.
        issue_tag = Cat(scanner.index, compute_obuf)
        tag_valid, tag = issue, issue_tag
        for stage in range(IfmapWindowBuffer.LATENCY):
            next_valid, next_tag = Signal(name=f"win_valid{stage}"), Signal(14, name=f"win_tag{stage}")
            m.d.sync += next_valid.eq(tag_valid)
            with m.If(tag_valid):
                m.d.sync += next_tag.eq(tag)
            tag_valid, tag = next_valid, next_tag
        m.d.comb += [mac.in_valid.eq(tag_valid), mac.in_tag.eq(tag), mac.bias.eq(bias)]
        m.d.comb += [mac.mult.eq(mult), mac.shift.eq(shift)]
        m.d.comb += [mac.window[i].eq(ifmap.window[i]) for i in range(TAPS)]
        m.d.comb += [mac.weights[i].eq(weights[i]) for i in range(TAPS)]

        # OFMAP buffer: 3 slots x 512 words of 8 pixels, written one byte lane per result.
        m.submodules.obuf = obuf = Memory(shape=unsigned(64), depth=OBUF_SLOTS * BEATS_PER_FRAME, init=[])
        obuf_wr = obuf.write_port(granularity=8)
        obuf_rd = obuf.read_port()
        out_index, out_slot = mac.out_tag[0:12], mac.out_tag[12:14]
        m.d.comb += [
            obuf_wr.addr.eq(Cat(out_index[3:12], out_slot)),
            obuf_wr.data.eq(mac.out_pixel.replicate(PIXELS_PER_BEAT)),
            obuf_wr.en.eq(Mux(mac.out_valid, Const(1, 8) << out_index[0:3], 0)),
        ]
        # A frame's OFMAP is complete when its last result is written: the end-of-frame marker
        # follows the last index through the same number of pipeline stages.
        marker_valid, marker_slot = frame_computed, compute_obuf
        for stage in range(IfmapWindowBuffer.LATENCY + MacRequant.LATENCY):
            next_valid = Signal(name=f"end_valid{stage}")
            next_slot = Signal(range(OBUF_SLOTS), name=f"end_slot{stage}")
            m.d.sync += [next_valid.eq(marker_valid), next_slot.eq(marker_slot)]
            marker_valid, marker_slot = next_valid, next_slot
        with m.If(marker_valid):
            m.d.sync += obuf_ready.bit_select(marker_slot, 1).eq(1)

        # ------------------------------------------------------------ drain stage
        m.submodules.out_fifo = out_fifo = SyncFIFO(width=65, depth=OUTPUT_FIFO_DEPTH)
        drain_slot = Signal(range(OBUF_SLOTS))
        drain_beat = Signal(9)
        read_pending = Signal()  # a beat's memories were read last cycle: push it now
        pending_last = Signal()
        pending_lane = Signal(2)
        credit = out_fifo.level + read_pending < OUTPUT_FIFO_DEPTH
        drain_read = Signal()  # one OFMAP word, one mask word and two AVG words read this cycle
        m.d.comb += drain_read.eq(obuf_ready.bit_select(drain_slot, 1) & credit)
        m.d.comb += [
            obuf_rd.addr.eq(Cat(drain_beat, drain_slot)),
            obuf_rd.en.eq(drain_read),
            mask_rd_drain.addr.eq(drain_beat[2:9]),
            mask_rd_drain.en.eq(drain_read),
        ]
        for half in range(2):
            m.d.comb += [avg_rd_drain[half].addr.eq(drain_beat), avg_rd_drain[half].en.eq(drain_read)]
        m.d.sync += read_pending.eq(drain_read)
        with m.If(drain_read):
            m.d.sync += [pending_last.eq(drain_beat == BEATS_PER_FRAME - 1), pending_lane.eq(drain_beat[0:2])]
            with m.If(drain_beat == BEATS_PER_FRAME - 1):
                m.d.sync += [
                    drain_beat.eq(0),
                    drain_slot.eq(_next_slot(drain_slot)),
                    obuf_ready.bit_select(drain_slot, 1).eq(0),
                    obuf_busy.bit_select(drain_slot, 1).eq(0),
                ]
            with m.Else():
                m.d.sync += drain_beat.eq(drain_beat + 1)
        compressed = mask_rd_drain.data.word_select(pending_lane, 8) & skip_en.replicate(8)
        averages = Cat(avg_rd_drain[0].data, avg_rd_drain[1].data)
        pixels = [
            Mux(compressed[p], averages[8 * p : 8 * p + 8], obuf_rd.data[8 * p : 8 * p + 8])
            for p in range(PIXELS_PER_BEAT)
        ]
        m.d.comb += [out_fifo.w_en.eq(read_pending), out_fifo.w_data.eq(Cat(*pixels, pending_last))]
        m.d.comb += [
            self.m_axis_tvalid.eq(out_fifo.r_rdy),
            self.m_axis_tdata.eq(out_fifo.r_data[0:64]),
            self.m_axis_tlast.eq(out_fifo.r_data[64]),
            out_fifo.r_en.eq(self.m_axis_tready),
        ]
        with m.If(self.m_axis_tvalid & self.m_axis_tready & self.m_axis_tlast):
            m.d.comb += [frame_emitted.eq(1), start_queue.r_en.eq(1), count_queue.r_en.eq(1)]
            m.d.sync += [
                frames.eq(frames + 1),
                last_cycles.eq(cycle - start_queue.r_data),
                last_computed.eq(count_queue.r_data),
                last_macs.eq(count_queue.r_data * MACS_PER_OUTPUT),
            ]
        return m



def _next_slot(slot):
    """Next OFMAP slot, counting modulo OBUF_SLOTS."""
    return Mux(slot == OBUF_SLOTS - 1, 0, slot + 1)
