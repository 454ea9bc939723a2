"""`velcro_conv2d`: one 64x64, 3x3, ReLU conv2d instance with VELCRO compression skip.

Three stages run concurrently on consecutive frames (two IFMAP slots, three OFMAP slots):

    load    (512 beats)  s_axis -> IFMAP buffer slot
    compute (c cycles)   mask scanner -> window read -> MAC/requant -> OFMAP buffer slot
    drain   (512 beats)  OFMAP buffer slot, mask and averages -> output FIFO -> m_axis (drain.py)

Only computed outputs enter the compute stage, one per cycle; compressed outputs take their value
from the AVG memory while the frame drains, so they cost neither cycles nor MACs. With CONTROL.ZP_EN
the compute stage runs two scans, the uncompressed anchors and then the outputs next to a hot anchor
(`zero_predict.py`), and the drain emits 0 where a predicted-zero map says so (rtl/README.md,
section 8). Geometry, register
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
from rtl.drain import Drain, increment_modulo
from rtl.ifmap_buffer import IfmapWindowBuffer
from rtl.interfaces import AxiLiteSignature, AxiStreamSignature, FlatPortsComponent
from rtl.mac_requant import MacRequant
from rtl.mask_scan import GROUPS, MaskScanner
from rtl.zero_predict import AvgHotFlags, ZeroPredictor

INDEX_BITS = (N_OUTPUTS - 1).bit_length()  # output index = 64·y + x
COUNT_BITS = N_OUTPUTS.bit_length()  # 0..4096 outputs
X_BITS = (W - 1).bit_length()
LANE_BITS = (PIXELS_PER_BEAT - 1).bit_length()  # pixel position inside a beat
GROUPS_PER_MASK_WORD = 32 // PIXELS_PER_BEAT  # a MASK word covers 4 beats (mask bytes)
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
    MAC, IFMAP, SCANNER, DRAIN = "mac", "ifmap", "scanner", "drain"  # submodule instance names
    DRAIN_READ = f"{DRAIN}.mem_read"  # high in a cycle the drain reads one OFMAP, one MASK and two AVG words
    ZP_MAP_WRITE = "zp_map_write"  # a ZP frame writes 4 rows of its predicted-zero map (16 per frame)
    ZP_MAP_READ = f"{DRAIN}.map_read"  # the drain of a ZP frame reads the predicted-zero map (one per beat)
    # Energy event -> [(signal path under the instance, events per cycle the signal is high)]; the
    # events are those of model/hw/energy_table.toml and model.hw.energy.frame_events.
    ACTIVITY_PROBES = {
        "mac": [(f"{MAC}.in_valid", MACS_PER_OUTPUT)],
        "requant": [(f"{MAC}.in_valid", 1)],
        "ifmap_write": [(f"{IFMAP}.wr_en", 1)],
        "window_read": [(f"{IFMAP}.rd_en", 1)],
        "ofmap_write": [(f"{MAC}.out_valid", 1)],
        "ofmap_read": [(DRAIN_READ, 1)],
        # mask-side metadata: MASK words, and with prediction on the predicted-zero map
        "mask_read": [(DRAIN_READ, 1), (f"{SCANNER}.mask_en", 1), (ZP_MAP_WRITE, 1), (ZP_MAP_READ, 1)],
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
        zp_en = flops["CONTROL"][0][REG["CONTROL"].field("ZP_EN").lsb]
        (zp_config,) = flops["ZP_CONFIG"]
        pattern_field, zp_max_field = REG["ZP_CONFIG"].field("PATTERN"), REG["ZP_CONFIG"].field("ZP_MAX")
        zp_pattern = zp_config[pattern_field.lsb : pattern_field.lsb + pattern_field.width]
        zp_max = zp_config[zp_max_field.lsb : zp_max_field.lsb + zp_max_field.width]
        weights = flops["W"]
        (bias,), (mult,), (shift,) = flops["BIAS"], flops["MULT"], flops["SHIFT"]
        busy, frame_error = Signal(), Signal()
        status = Signal(REG["STATUS"].width)
        m.d.comb += [
            status[REG["STATUS"].field("BUSY").lsb].eq(busy),
            status[REG["STATUS"].field("FRAME_ERROR").lsb].eq(frame_error),
        ]
        counter_names = ("FRAMES", "LAST_CYCLES", "LAST_MACS", "LAST_COMPUTED", "LAST_PREDICTED")
        counters = {name: Signal(32, name=name.lower()) for name in counter_names}
        frames, last_cycles, last_macs, last_computed, last_predicted = counters.values()
        readonly = {"ID": spec.ID_VALUE, "GEOMETRY": spec.GEOMETRY_VALUE, "STATUS": status, **counters}
        nonempty = Signal(GROUPS, init=(1 << GROUPS) - 1)  # per mask byte: has a computed output
        mask_mirror = Signal(N_OUTPUTS)  # the MASK memory's contents, for zero-value prediction

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
        avg_wr, avg_rd_bus, avg_rd_drain, avg_rd_refresh = [], [], [], []
        for half in range(2):
            mem = Memory(shape=unsigned(32), depth=avg_reg.count // 2, init=[])
            m.submodules[f"avg_mem{half}"] = mem
            avg_wr.append(mem.write_port(granularity=8))
            avg_rd_bus.append(mem.read_port())
            avg_rd_drain.append(mem.read_port())
            avg_rd_refresh.append(mem.read_port())

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
            # The whole mask in flip-flops too: zero-value prediction needs every bit at once.
            bytes_written = Cat(strobe[k].replicate(8) for k in range(4))
            at_word = Cat(Const(0, 5), mask_word)
            m.d.sync += mask_mirror.eq(
                mask_mirror & ~(bytes_written.as_unsigned() << at_word)[:N_OUTPUTS]
                | ((bus.wr_data & bytes_written) << at_word)[:N_OUTPUTS]
            )
        avg_hit, avg_word = registers.region(bus.wr_addr, avg_reg)
        for half in range(2):
            m.d.comb += [
                avg_wr[half].addr.eq(avg_word[1:]),
                avg_wr[half].data.eq(bus.wr_data),
                avg_wr[half].en.eq(Mux(bus.wr_stb & avg_hit & (avg_word[0] == half), strobe, 0)),
            ]

        # avg > ZP_MAX of every output, for compressed anchors (zero_predict.py): updated on AVG
        # writes, recomputed from the AVG memory after a ZP_MAX write.
        m.submodules.avg_flags = avg_flags = AvgHotFlags()
        m.d.comb += [
            avg_flags.zp_max.eq(zp_max),
            avg_flags.restart.eq(bus.wr_stb & (bus.wr_addr[2:] == REG["ZP_CONFIG"].word)
                               & strobe[zp_max_field.lsb // 8]),
            avg_flags.wr_en.eq(bus.wr_stb & avg_hit),
            avg_flags.wr_word.eq(avg_word),
            avg_flags.wr_data.eq(bus.wr_data),
            avg_flags.wr_strb.eq(strobe),
            avg_flags.rd_data.eq(Cat(avg_rd_refresh[0].data, avg_rd_refresh[1].data)),
        ]
        for port in avg_rd_refresh:
            m.d.comb += [port.addr.eq(avg_flags.rd_addr), port.en.eq(avg_flags.rd_en)]

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
        m.submodules.count_queue = count_queue = SyncFIFO(width=2 * COUNT_BITS, depth=FRAME_QUEUE_DEPTH)
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
        m.submodules.zp = zp = ZeroPredictor()
        # output index, OFMAP slot, and whether it is an anchor of a prediction frame's phase A
        tag_bits = INDEX_BITS + (OBUF_SLOTS - 1).bit_length() + 1
        m.submodules[self.MAC] = mac = MacRequant(tag_width=tag_bits)
        compute_slot = Signal()  # IFMAP slot being computed
        compute_obuf = Signal(range(OBUF_SLOTS))  # OFMAP slot it writes
        computing = Signal()
        computed_count = Signal(range(N_OUTPUTS + 1))
        # Zero-value prediction (zero_predict.py): a frame started with ZP_EN runs phase A (the
        # uncompressed anchors), waits until the last anchor's hot flag is written, then runs
        # phase B (the outputs next to a hot anchor) while the predicted-zero map is written to
        # the frame's slot of `zp_map`, ZP_MAP_ROWS_PER_CYCLE rows per cycle.
        frame_zp = Signal()  # the frame being computed predicts
        phase_b = Signal()
        hot_wait = Signal()  # phase A is done: its last results are on their way to the hot flags
        hot_wait_count = Signal(range(spec.ZP_HOT_WAIT))
        b_done = Signal()  # phase B issued its last output; the map is still being written
        map_writing = Signal()
        map_done = Signal()
        map_row = Signal(range(spec.ZP_MAP_WRITE_CYCLES))  # word of the map: ZP_MAP_ROWS_PER_CYCLE rows
        predicted_count = Signal(range(N_OUTPUTS + 1))
        slot_zp = Signal(OBUF_SLOTS)  # the frame in each OFMAP slot predicts
        m.d.comb += [
            zp.pattern.eq(zp_pattern),
            zp.zp_max.eq(zp_max),
            zp.compressed.eq(Mux(skip_en, mask_mirror, 0)),
            zp.avg_hot.eq(avg_flags.avg_hot),
        ]
        can_start = (
            ~computing
            & ifmap_full.bit_select(compute_slot, 1)
            & ~obuf_busy.bit_select(compute_obuf, 1)
            & ~(zp_en & avg_flags.busy)
        )
        start_b = computing & hot_wait & (hot_wait_count == 0)
        m.d.comb += [
            scanner.direct.eq(Mux(computing, frame_zp, zp_en)),
            scanner.bits.eq(Mux(phase_b | start_b, zp.bits_b, zp.bits_a)),
            scanner.skip_en.eq(skip_en),
            mask_rd_scan.addr.eq(scanner.mask_addr),
            mask_rd_scan.en.eq(scanner.mask_en),
            scanner.mask_data.eq(mask_rd_scan.data),
        ]
        with m.If(start_b):
            m.d.comb += scanner.nonempty.eq(zp.flags_b)
        with m.Elif(zp_en):
            m.d.comb += scanner.nonempty.eq(zp.flags_a)
        with m.Else():
            m.d.comb += scanner.nonempty.eq(nonempty | (~skip_en).replicate(GROUPS))
        with m.If(can_start):
            m.d.comb += [scanner.start.eq(1), zp.clear.eq(zp_en)]
            m.d.sync += [
                computing.eq(1),
                computed_count.eq(0),
                obuf_busy.bit_select(compute_obuf, 1).eq(1),
                frame_zp.eq(zp_en),
                slot_zp.bit_select(compute_obuf, 1).eq(zp_en),
                phase_b.eq(0),
                hot_wait.eq(0),
                b_done.eq(0),
                map_writing.eq(0),
                map_done.eq(0),
                predicted_count.eq(0),
            ]
        with m.If(computing & frame_zp & ~phase_b & ~hot_wait & scanner.done):
            m.d.sync += [hot_wait.eq(1), hot_wait_count.eq(spec.ZP_HOT_WAIT - 1)]
        with m.If(computing & hot_wait & (hot_wait_count != 0)):
            m.d.sync += hot_wait_count.eq(hot_wait_count - 1)
        with m.If(start_b):
            m.d.comb += scanner.start.eq(1)
            m.d.sync += [hot_wait.eq(0), phase_b.eq(1), map_writing.eq(1), map_row.eq(0)]

        zp_map = Memory(shape=unsigned(N_OUTPUTS // spec.ZP_MAP_WRITE_CYCLES), depth=OBUF_SLOTS * spec.ZP_MAP_WRITE_CYCLES, init=[])
        m.submodules.zp_map = zp_map
        zp_map_wr = zp_map.write_port()
        zp_map_rd = zp_map.read_port()
        map_write = Signal(name=self.ZP_MAP_WRITE)
        map_last = map_writing & (map_row == spec.ZP_MAP_WRITE_CYCLES - 1)
        m.d.comb += map_write.eq(computing & map_writing)
        # The word being written, 0 outside the writing cycles: `predicted` changes with every anchor
        # result of phase A, and a selector (or the popcount behind it) fed from it directly would
        # switch all through phase A (operand isolation). Constant slices, not a variable shift,
        # so only the selected word's wires move.
        map_word = Signal(len(zp_map_wr.data))
        with m.If(map_write):
            with m.Switch(map_row):
                for row in range(spec.ZP_MAP_WRITE_CYCLES):
                    with m.Case(row):
                        m.d.comb += map_word.eq(zp.predicted.word_select(row, len(map_word)))
        m.d.comb += [
            zp_map_wr.addr.eq(compute_obuf * spec.ZP_MAP_WRITE_CYCLES + map_row),
            zp_map_wr.data.eq(map_word),
            zp_map_wr.en.eq(map_write),
        ]
        word_predicted = _popcount(map_word)
        with m.If(map_write):
            m.d.sync += [predicted_count.eq(predicted_count + word_predicted), map_row.eq(map_row + 1)]
            with m.If(map_last):
                m.d.sync += [map_writing.eq(0), map_done.eq(1)]
        issue = computing & scanner.issue
        m.d.comb += [
            ifmap.rd_en.eq(issue),
            ifmap.rd_slot.eq(compute_slot),
            ifmap.rd_y.eq(scanner.index[X_BITS:INDEX_BITS]),
            ifmap.rd_x.eq(scanner.index[0:X_BITS]),
        ]
        with m.If(issue):
            m.d.sync += computed_count.eq(computed_count + 1)
        frame_computed = Signal()
        with m.If(frame_zp):
            m.d.comb += frame_computed.eq(computing & phase_b & (scanner.done | b_done) & (map_done | map_last))
            with m.If(computing & phase_b & scanner.done):
                m.d.sync += b_done.eq(1)
        with m.Else():
            m.d.comb += frame_computed.eq(computing & scanner.done)
        frame_predicted = Mux(frame_zp, predicted_count + Mux(map_write, word_predicted, 0), 0)
        with m.If(frame_computed):
            # The last window read is issued in this cycle, so the IFMAP slot is free after it.
            m.d.sync += [
                computing.eq(0),
                compute_slot.eq(~compute_slot),
                compute_obuf.eq(increment_modulo(compute_obuf, OBUF_SLOTS)),
                ifmap_full.bit_select(compute_slot, 1).eq(0),
            ]
            m.d.comb += [count_queue.w_en.eq(1), count_queue.w_data.eq(Cat((computed_count + issue)[:COUNT_BITS], frame_predicted))]

        # The window arrives IfmapWindowBuffer.LATENCY cycles after its read; its tag follows.
        issue_tag = Cat(scanner.index, compute_obuf, frame_zp & ~phase_b)
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
        out_index, out_slot = mac.out_tag[:INDEX_BITS], mac.out_tag[INDEX_BITS : tag_bits - 1]
        m.d.comb += [
            zp.result_valid.eq(mac.out_valid & mac.out_tag[tag_bits - 1]),
            zp.result_index.eq(out_index),
            zp.result_pixel.eq(mac.out_pixel),
        ]
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
        m.submodules[self.DRAIN] = drain = Drain(OBUF_SLOTS, len(mask_rd_drain.data), len(zp_map_rd.data))
        m.d.comb += [
            drain.skip_en.eq(skip_en),
            drain.slot_ready.eq(obuf_ready),
            drain.slot_zp.eq(slot_zp),
            obuf_rd.addr.eq(Cat(drain.beat, drain.slot)),
            obuf_rd.en.eq(drain.mem_read),
            mask_rd_drain.addr.eq(drain.mask_addr),
            mask_rd_drain.en.eq(drain.mem_read),
            zp_map_rd.addr.eq(drain.slot * spec.ZP_MAP_WRITE_CYCLES + drain.map_addr),
            zp_map_rd.en.eq(drain.map_read),
            drain.obuf_data.eq(obuf_rd.data),
            drain.mask_data.eq(mask_rd_drain.data),
            drain.avg_data.eq(Cat(avg_rd_drain[0].data, avg_rd_drain[1].data)),
            drain.map_data.eq(zp_map_rd.data),
        ]
        for half in range(2):
            m.d.comb += [avg_rd_drain[half].addr.eq(drain.beat), avg_rd_drain[half].en.eq(drain.mem_read)]
        with m.If(drain.release):
            m.d.sync += [
                obuf_ready.bit_select(drain.slot, 1).eq(0),
                obuf_busy.bit_select(drain.slot, 1).eq(0),
            ]
        wiring.connect(m, drain.m_axis, wiring.flipped(self.m_axis))
        with m.If(self.m_axis_tvalid & self.m_axis_tready & self.m_axis_tlast):
            m.d.comb += [frame_emitted.eq(1), start_queue.r_en.eq(1), count_queue.r_en.eq(1)]
            m.d.sync += [
                frames.eq(frames + 1),
                last_cycles.eq(cycle - start_queue.r_data),
                last_computed.eq(count_queue.r_data[:COUNT_BITS]),
                last_macs.eq(count_queue.r_data[:COUNT_BITS] * MACS_PER_OUTPUT),
                last_predicted.eq(count_queue.r_data[COUNT_BITS:]),
            ]
        return m


def _popcount(value):
    """Number of set bits, as a balanced adder tree."""
    terms = [value[i] for i in range(len(value))]
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]
