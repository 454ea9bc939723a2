"""`velcro_conv2d`: one 64x64, 3x3, ReLU conv2d instance with VELCRO compression skip.

Three stages run concurrently on consecutive frames (two IFMAP slots, three OFMAP slots):

    load    (512 beats)  s_axis -> IFMAP buffer slot
    compute (c cycles)   mask scanner -> window read -> MAC/requant -> OFMAP buffer slot
    drain   (512 beats)  OFMAP buffer slot, mask and averages -> output FIFO -> m_axis

Only computed outputs enter the compute stage, one per cycle; compressed outputs take their value
from the AVG memory while the frame drains, so they cost neither cycles nor MACs. Geometry, register
map and latencies come from `model.hw.spec`; the cycle model of this micro-architecture is
`model.hw.cycles`, the arithmetic `model.hw.golden`. Ports, registers and frame rules: rtl/README.md.
"""
from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory

from model.hw import spec
from model.hw.spec import BEATS_PER_FRAME, MACS_PER_OUTPUT, N_OUTPUTS, PIXELS_PER_BEAT, REG, TAPS, W
from rtl import registers
from rtl.axil import AxiLiteRegisterBus
from rtl.ifmap_buffer import IfmapWindowBuffer
from rtl.interfaces import AxiLiteSignature, AxiStreamSignature, FlatPortsComponent
from rtl.mac_requant import MacRequant
from rtl.mask_scan import GROUPS, MaskScanner

INDEX_BITS = (N_OUTPUTS - 1).bit_length()  # output index = 64·y + x
X_BITS = (W - 1).bit_length()
LANE_BITS = (PIXELS_PER_BEAT - 1).bit_length()  # pixel position inside a beat
GROUPS_PER_MASK_WORD = 32 // PIXELS_PER_BEAT  # a MASK word covers 4 beats (mask bytes)
OUTPUT_FIFO_DEPTH = 4
# An OFMAP slot is held from compute start to the end of its drain (about c + 520 cycles). With three
# slots that occupancy never limits the frame interval below max(512, c + 3); with two it would
# for c just above 500.
OBUF_SLOTS = 3
FRAME_QUEUE_DEPTH = 8  # frames accepted but not yet emitted: at most 2 + 3 + 1


def core_interfaces(lanes: int = 1, addr_width: int = spec.CORE_ADDR_WIDTH) -> dict:
    """The port groups of velcro_conv2d (lanes = 1) and velcro_top (lanes = instances)."""
    return {
        "s_axis": AxiStreamSignature(lanes=lanes).flip(),
        "m_axis": AxiStreamSignature(lanes=lanes),
        "s_axil": AxiLiteSignature(addr_width).flip(),
    }


class VelcroConv2d(FlatPortsComponent):
    """One conv2d instance (module `velcro_conv2d`); ports and registers in rtl/README.md."""

    # Names this design gives the parts the energy proxy watches. `elaborate` uses them, and
    # `ACTIVITY_PROBES` is built from them, so a rename happens here and nowhere else.
    MAC, IFMAP, SCANNER = "mac", "ifmap", "scanner"  # submodule instance names
    DRAIN_READ = "drain_read"  # high in a cycle the drain reads one OFMAP, one MASK and two AVG words
    # Energy event -> [(signal path under the instance, events per cycle the signal is high)]; the
    # events are those of model/hw/energy_table.toml and model.hw.energy.frame_events.
    ACTIVITY_PROBES = {
        "mac": [(f"{MAC}.in_valid", MACS_PER_OUTPUT)],
        "requant": [(f"{MAC}.in_valid", 1)],
        "ifmap_write": [(f"{IFMAP}.wr_en", 1)],
        "window_read": [(f"{IFMAP}.rd_en", 1)],
        "ofmap_write": [(f"{MAC}.out_valid", 1)],
        "ofmap_read": [(DRAIN_READ, 1)],
        "mask_read": [(DRAIN_READ, 1), (f"{SCANNER}.mask_en", 1)],
        "avg_read": [(DRAIN_READ, 2)],
    }
    MAC_SCOPE = MAC  # toggles of signals under this scope count as the MAC datapath

    def __init__(self):
        super().__init__(core_interfaces())

    def elaborate(self, platform):
        m = Module()
        m.submodules.axil = bus = AxiLiteRegisterBus(spec.CORE_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.s_axil), bus.axil)

        cycle = Signal(32)
        m.d.sync += cycle.eq(cycle + 1)

        # ------------------------------------------------------------ registers (model.hw.spec)
        flops = {r.name: registers.storage(r) for r in spec.REGISTERS if r.writable and not r.is_memory}
        skip_en = flops["CONTROL"][0][REG["CONTROL"].field("SKIP_EN").lsb]
        weights = flops["W"]
        (bias,), (mult,), (shift,) = flops["BIAS"], flops["MULT"], flops["SHIFT"]
        busy, frame_error = Signal(), Signal()
        status = Signal(REG["STATUS"].width)
        m.d.comb += [
            status[REG["STATUS"].field("BUSY").lsb].eq(busy),
            status[REG["STATUS"].field("FRAME_ERROR").lsb].eq(frame_error),
        ]
        counters = {name: Signal(32, name=name.lower()) for name in ("FRAMES", "LAST_CYCLES", "LAST_MACS", "LAST_COMPUTED")}
        frames, last_cycles, last_macs, last_computed = counters.values()
        readonly = {"ID": spec.ID_VALUE, "GEOMETRY": spec.GEOMETRY_VALUE, "STATUS": status, **counters}
        nonempty = Signal(GROUPS, init=(1 << GROUPS) - 1)  # per mask byte: has a computed output

        # Reads: memories are addressed on the strobe, registers muxed from the latched address.
        rd_addr = Signal(spec.CORE_ADDR_WIDTH)
        with m.If(bus.rd_stb):
            m.d.sync += rd_addr.eq(bus.rd_addr)
        register_value, clears = registers.decode(m, bus, rd_addr, flops, readonly)
        with m.If(clears["STATUS.FRAME_ERROR"]):  # a frame error in the same cycle sets it again below
            m.d.sync += frame_error.eq(0)

        # MASK: one memory of 32-bit words; AVG: even and odd words in two memories, so the drain
        # reads the 8 averages of one beat per cycle.
        mask_reg, avg_reg = REG["MASK"], REG["AVG"]
        m.submodules.mask_mem = mask_mem = Memory(shape=unsigned(32), depth=mask_reg.count, init=[])
        mask_wr = mask_mem.write_port(granularity=8)
        mask_rd_bus, mask_rd_scan, mask_rd_drain = (mask_mem.read_port() for _ in range(3))
        avg_wr, avg_rd_bus, avg_rd_drain = [], [], []
        for half in range(2):
            mem = Memory(shape=unsigned(32), depth=avg_reg.count // 2, init=[])
            m.submodules[f"avg_mem{half}"] = mem
            avg_wr.append(mem.write_port(granularity=8))
            avg_rd_bus.append(mem.read_port())
            avg_rd_drain.append(mem.read_port())

        strobe = bus.wr_strb
        mask_hit, mask_word = registers.region(bus.wr_addr, mask_reg)
        mask_write = bus.wr_stb & mask_hit
        m.d.comb += [
            mask_wr.addr.eq(mask_word),
            mask_wr.data.eq(bus.wr_data),
            mask_wr.en.eq(Mux(mask_write, strobe, 0)),
        ]
        with m.If(mask_write):
            old_flags = nonempty.word_select(mask_word, GROUPS_PER_MASK_WORD)
            new_flags = Cat(
                Mux(strobe[k], bus.wr_data[8 * k : 8 * k + 8] != 0xFF, old_flags[k])
                for k in range(GROUPS_PER_MASK_WORD)
            )
            m.d.sync += nonempty.word_select(mask_word, GROUPS_PER_MASK_WORD).eq(new_flags)
        avg_hit, avg_word = registers.region(bus.wr_addr, avg_reg)
        for half in range(2):
            m.d.comb += [
                avg_wr[half].addr.eq(avg_word[1:]),
                avg_wr[half].data.eq(bus.wr_data),
                avg_wr[half].en.eq(Mux(bus.wr_stb & avg_hit & (avg_word[0] == half), strobe, 0)),
            ]

        _, mask_rd_word = registers.region(bus.rd_addr, mask_reg)
        _, avg_rd_word = registers.region(bus.rd_addr, avg_reg)
        m.d.comb += [mask_rd_bus.addr.eq(mask_rd_word), mask_rd_bus.en.eq(bus.rd_stb)]
        for half in range(2):
            m.d.comb += [avg_rd_bus[half].addr.eq(avg_rd_word[1:]), avg_rd_bus[half].en.eq(bus.rd_stb)]
        avg_was_hit, avg_was_word = registers.region(rd_addr, avg_reg)
        mask_was_hit, _ = registers.region(rd_addr, mask_reg)
        with m.If(avg_was_hit):
            m.d.comb += bus.rd_data.eq(Mux(avg_was_word[0], avg_rd_bus[1].data, avg_rd_bus[0].data))
        with m.Elif(mask_was_hit):
            m.d.comb += bus.rd_data.eq(mask_rd_bus.data)
        with m.Else():
            m.d.comb += bus.rd_data.eq(register_value)

        # ------------------------------------------------------------ frame bookkeeping
        # Start times travel from the load stage to the last output beat; computed-output counts
        # from the compute stage. Both queues are popped by a frame's last OFMAP handshake.
        m.submodules.start_queue = start_queue = SyncFIFO(width=32, depth=FRAME_QUEUE_DEPTH)
        m.submodules.count_queue = count_queue = SyncFIFO(width=N_OUTPUTS.bit_length(), depth=FRAME_QUEUE_DEPTH)
        in_flight = Signal(range(FRAME_QUEUE_DEPTH + 1))
        frame_started = Signal()
        frame_dropped = Signal()
        frame_emitted = Signal()
        m.d.sync += in_flight.eq(in_flight + frame_started - frame_dropped - frame_emitted)
        m.d.comb += busy.eq(in_flight != 0)

        ifmap_full = Signal(2)  # slot loaded and not yet read by the compute stage
        obuf_busy = Signal(OBUF_SLOTS)  # slot owned by a frame being computed or drained
        obuf_ready = Signal(OBUF_SLOTS)  # slot holds a finished OFMAP waiting for / in the drain

        # ------------------------------------------------------------ load stage
        m.submodules[self.IFMAP] = ifmap = IfmapWindowBuffer()
        load_slot = Signal()
        load_beat = Signal(range(BEATS_PER_FRAME))
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
        m.submodules[self.SCANNER] = scanner = MaskScanner()
        tag_bits = INDEX_BITS + (OBUF_SLOTS - 1).bit_length()  # output index and OFMAP slot
        m.submodules[self.MAC] = mac = MacRequant(tag_width=tag_bits)
        compute_slot = Signal()  # IFMAP slot being computed
        compute_obuf = Signal(range(OBUF_SLOTS))  # OFMAP slot it writes
        computing = Signal()
        computed_count = Signal(range(N_OUTPUTS + 1))
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
            ifmap.rd_y.eq(scanner.index[X_BITS:INDEX_BITS]),
            ifmap.rd_x.eq(scanner.index[0:X_BITS]),
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
            next_valid, next_tag = Signal(name=f"win_valid{stage}"), Signal(tag_bits, name=f"win_tag{stage}")
            m.d.sync += next_valid.eq(tag_valid)
            with m.If(tag_valid):
                m.d.sync += next_tag.eq(tag)
            tag_valid, tag = next_valid, next_tag
        m.d.comb += [mac.in_valid.eq(tag_valid), mac.in_tag.eq(tag), mac.bias.eq(bias)]
        m.d.comb += [mac.mult.eq(mult), mac.shift.eq(shift)]
        m.d.comb += [mac.window[i].eq(ifmap.window[i]) for i in range(TAPS)]
        m.d.comb += [mac.weights[i].eq(weights[i]) for i in range(TAPS)]

        # OFMAP buffer: 3 slots x 512 words of 8 pixels, written one byte lane per result.
        obuf = Memory(shape=unsigned(spec.BEAT_BITS), depth=OBUF_SLOTS * BEATS_PER_FRAME, init=[])
        m.submodules.obuf = obuf
        obuf_wr = obuf.write_port(granularity=8)
        obuf_rd = obuf.read_port()
        out_index, out_slot = mac.out_tag[:INDEX_BITS], mac.out_tag[INDEX_BITS:]
        m.d.comb += [
            obuf_wr.addr.eq(Cat(out_index[LANE_BITS:], out_slot)),
            obuf_wr.data.eq(mac.out_pixel.replicate(PIXELS_PER_BEAT)),
            obuf_wr.en.eq(Mux(mac.out_valid, Const(1, PIXELS_PER_BEAT) << out_index[:LANE_BITS], 0)),
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
        m.submodules.out_fifo = out_fifo = SyncFIFO(width=spec.BEAT_BITS + 1, depth=OUTPUT_FIFO_DEPTH)
        drain_slot = Signal(range(OBUF_SLOTS))
        drain_beat = Signal(range(BEATS_PER_FRAME))
        read_pending = Signal()  # a beat's memories were read last cycle: push it now
        pending_last = Signal()
        pending_lane = Signal(range(GROUPS_PER_MASK_WORD))  # mask byte of the beat in its MASK word
        credit = out_fifo.level + read_pending < OUTPUT_FIFO_DEPTH
        drain_read = Signal(name=self.DRAIN_READ)  # one OFMAP word, one MASK word, two AVG words
        m.d.comb += drain_read.eq(obuf_ready.bit_select(drain_slot, 1) & credit)
        m.d.comb += [
            obuf_rd.addr.eq(Cat(drain_beat, drain_slot)),
            obuf_rd.en.eq(drain_read),
            mask_rd_drain.addr.eq(drain_beat[len(pending_lane):]),
            mask_rd_drain.en.eq(drain_read),
        ]
        for half in range(2):
            m.d.comb += [avg_rd_drain[half].addr.eq(drain_beat), avg_rd_drain[half].en.eq(drain_read)]
        m.d.sync += read_pending.eq(drain_read)
        with m.If(drain_read):
            m.d.sync += [pending_last.eq(drain_beat == BEATS_PER_FRAME - 1), pending_lane.eq(drain_beat[: len(pending_lane)])]
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
            self.m_axis_tdata.eq(out_fifo.r_data[: spec.BEAT_BITS]),
            self.m_axis_tlast.eq(out_fifo.r_data[spec.BEAT_BITS]),
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
