"""`velcro_conv2d`: one 64x64, 3x3, ReLU conv2d instance with VELCRO compression skip.

Three stages run concurrently on consecutive frames (two IFMAP slots, three OFMAP slots):

    load    (512 beats)  s_axis -> IFMAP buffer slot
    compute (c cycles)   scanner -> window read -> MAC/requant -> OFMAP buffer slot
    drain   (512 beats)  OFMAP buffer slot, mask and averages -> output FIFO -> m_axis (drain.py)

Only computed outputs enter the compute stage, one per cycle; compressed outputs take their value
from the AVG memory while the frame drains, so they cost neither cycles nor MACs. With CONTROL.ZP_EN
the compute stage runs phase A (the uncompressed anchors), the dilate pass and phase B (the outputs
next to a hot anchor) (`zero_predict.py`), and the drain emits 0 where the predicted-zero map says so
(rtl/README.md, section 8). Geometry, register map and latencies come from `model.hw.spec`; the cycle
model of this micro-architecture is `model.hw.cycles`, the arithmetic `model.hw.golden`. Ports,
registers and frame rules: rtl/README.md.
"""
from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import enum, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory

from model.hw import spec
from model.hw.spec import (BEATS_PER_FRAME, GROUPS_PER_ROW, INDEX_BITS, MACS_PER_OUTPUT, N_OUTPUTS, PIXELS_PER_BEAT,
                           REG, TAPS, ZP_CHECKER, H, W)  # fmt: skip
from rtl import registers
from rtl.axil import AxiLiteRegisterBus
from rtl.bits import decoded
from rtl.drain import Drain, increment_modulo
from rtl.ifmap_buffer import IfmapWindowBuffer
from rtl.interfaces import AxiLiteSignature, AxiStreamSignature, FlatPortsComponent
from rtl.mac_requant import MacRequant
from rtl.mask_flags import EVEN_COLUMNS, ODD_COLUMNS, MaskFlags
from rtl.mask_scan import MaskScanner
from rtl.zero_predict import AvgHotFlags, ZeroPredictor

COUNT_BITS = N_OUTPUTS.bit_length()  # 0..4096 outputs
X_BITS = (W - 1).bit_length()
LANE_BITS = (PIXELS_PER_BEAT - 1).bit_length()  # pixel position inside a beat
# An OFMAP slot is held from compute start to the end of its drain (about c + 520 cycles). With three
# slots that occupancy never limits the frame interval below max(512, c + 3); with two it would
# for c just above 500.
OBUF_SLOTS = 3
FRAME_QUEUE_DEPTH = 8  # frames accepted but not yet emitted: at most 2 + 3 + 1
# The tag an issued output carries through the window read and the MAC: index, OFMAP slot, anchor.
TAG_BITS = INDEX_BITS + (OBUF_SLOTS - 1).bit_length() + 1

if spec.ZP_DILATE_CYCLES != ZeroPredictor.FLAGS_READY + MaskScanner.ROWS_SETUP:
    raise ValueError(f"the contract's ZP_DILATE_CYCLES is {spec.ZP_DILATE_CYCLES}; the dilate pass and the "
                     f"scanner's row set-up take {ZeroPredictor.FLAGS_READY + MaskScanner.ROWS_SETUP}")
if spec.ZP_DILATE_CYCLES + spec.MASK_SCAN_STARTUP < ZeroPredictor.COUNT_READY:
    raise ValueError("phase B could end before the predicted count is final")


class ScanMode(enum.Enum, shape=2):
    """What the running scan issues."""

    COMPUTED = 0  # a frame without prediction: every uncompressed output
    ANCHORS = 1  # phase A: the uncompressed anchors
    NEAR_HOT = 2  # phase B: uncompressed non-anchors next to a hot anchor


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
        # mask-side metadata: MASK words, the scanner's group reads, and with prediction on the map
        "mask_read": [(DRAIN_READ, 1), (f"{SCANNER}.group_read", 1), (ZP_MAP_WRITE, 1), (ZP_MAP_READ, 1)],
        "avg_read": [(DRAIN_READ, 2)],
    }
    MAC_SCOPE = MAC  # toggles of signals under this scope count as the MAC datapath

    def __init__(self):
        super().__init__(core_interfaces())

    def elaborate(self, platform):
        m = Module()
        regs = self._register_file(m)
        frames = self._frame_bookkeeping(m, regs)
        self._load_stage(m, regs, frames)
        self._compute_stage(m, regs, frames)
        self._drain_stage(m, regs, frames)
        return m

    # ---------------------------------------------------------------- registers and memories
    def _register_file(self, m):
        """The AXI4-Lite slave, the registers of `spec.REGISTERS`, the MASK and AVG memories and the
        state kept on their writes (group flags, the averages' hot flags)."""
        m.submodules.axil = bus = AxiLiteRegisterBus(spec.CORE_ADDR_WIDTH)
        wiring.connect(m, wiring.flipped(self.s_axil), bus.axil)
        flops = {r.name: registers.storage(r) for r in spec.REGISTERS if r.writable and not r.is_memory}
        control, (zp_config,) = flops["CONTROL"][0], flops["ZP_CONFIG"]
        pattern_field, zp_max_field = REG["ZP_CONFIG"].field("PATTERN"), REG["ZP_CONFIG"].field("ZP_MAX")
        regs = SimpleNamespace(
            skip_en=control[REG["CONTROL"].field("SKIP_EN").lsb],
            zp_en=control[REG["CONTROL"].field("ZP_EN").lsb],
            zp_pattern=zp_config[pattern_field.lsb : pattern_field.lsb + pattern_field.width],
            zp_max=zp_config[zp_max_field.lsb : zp_max_field.lsb + zp_max_field.width],
            weights=flops["W"], bias=flops["BIAS"][0], mult=flops["MULT"][0], shift=flops["SHIFT"][0],
            busy=Signal(), frame_error=Signal(),
            counters={name: Signal(32, name=name.lower()) for name in spec.IMAGE_WRITTEN_BACK},
        )  # fmt: skip
        status = Signal(REG["STATUS"].width)
        m.d.comb += [
            status[REG["STATUS"].field("BUSY").lsb].eq(regs.busy),
            status[REG["STATUS"].field("FRAME_ERROR").lsb].eq(regs.frame_error),
        ]
        readonly = {"ID": spec.ID_VALUE, "GEOMETRY": spec.GEOMETRY_VALUE, "STATUS": status, **regs.counters}

        # Reads: memories are addressed on the strobe, registers muxed from the latched address.
        rd_addr = Signal(spec.CORE_ADDR_WIDTH)
        with m.If(bus.rd_stb):
            m.d.sync += rd_addr.eq(bus.rd_addr)
        register_value, clears = registers.decode(m, bus, rd_addr, flops, readonly)
        with m.If(clears["STATUS.FRAME_ERROR"]):  # a frame error in the same cycle sets it again
            m.d.sync += regs.frame_error.eq(0)

        mask_bus_data = self._mask_memory(m, bus, regs)
        avg_bus_data = self._avg_memories(m, bus, regs, zp_max_field)
        avg_was_hit, avg_was_word = registers.region(rd_addr, REG["AVG"])
        mask_was_hit, _ = registers.region(rd_addr, REG["MASK"])
        with m.If(avg_was_hit):
            m.d.comb += bus.rd_data.eq(Mux(avg_was_word[0], avg_bus_data[1], avg_bus_data[0]))
        with m.Elif(mask_was_hit):
            m.d.comb += bus.rd_data.eq(mask_bus_data)
        with m.Else():
            m.d.comb += bus.rd_data.eq(register_value)
        return regs

    def _mask_memory(self, m, bus, regs):
        """MASK: one memory of 32-bit words (bus, scanner and drain read it) and its group flags."""
        m.submodules.mask_mem = mask_mem = Memory(shape=unsigned(32), depth=REG["MASK"].count, init=[])
        write = mask_mem.write_port(granularity=8)
        bus_read = mask_mem.read_port()
        regs.mask_scan_read, regs.mask_drain_read = mask_mem.read_port(), mask_mem.read_port()
        hit, word = registers.region(bus.wr_addr, REG["MASK"])
        m.submodules.mask_flags = regs.mask_flags = flags = MaskFlags()
        _, read_word = registers.region(bus.rd_addr, REG["MASK"])
        m.d.comb += [
            write.addr.eq(word), write.data.eq(bus.wr_data), write.en.eq(Mux(bus.wr_stb & hit, bus.wr_strb, 0)),
            flags.wr_en.eq(bus.wr_stb & hit), flags.wr_word.eq(word), flags.wr_data.eq(bus.wr_data),
            flags.wr_strb.eq(bus.wr_strb),
            bus_read.addr.eq(read_word), bus_read.en.eq(bus.rd_stb),
        ]  # fmt: skip
        return bus_read.data

    def _avg_memories(self, m, bus, regs, zp_max_field):
        """AVG: even and odd words in two memories (the drain reads a beat's 8 averages per cycle),
        and the anchors' "average > ZP_MAX" flags, refreshed after a ZP_MAX write."""
        hit, word = registers.region(bus.wr_addr, REG["AVG"])
        _, read_word = registers.region(bus.rd_addr, REG["AVG"])
        m.submodules.avg_flags = regs.avg_flags = avg_flags = AvgHotFlags()
        regs.avg_drain_read, bus_data, refresh_data = [], [], []
        for half in range(2):
            mem = Memory(shape=unsigned(32), depth=REG["AVG"].count // 2, init=[])
            m.submodules[f"avg_mem{half}"] = mem
            write, bus_read, refresh_read = mem.write_port(granularity=8), mem.read_port(), mem.read_port()
            regs.avg_drain_read.append(mem.read_port())
            m.d.comb += [
                write.addr.eq(word[1:]), write.data.eq(bus.wr_data),
                write.en.eq(Mux(bus.wr_stb & hit & (word[0] == half), bus.wr_strb, 0)),
                bus_read.addr.eq(read_word[1:]), bus_read.en.eq(bus.rd_stb),
                refresh_read.addr.eq(avg_flags.rd_addr), refresh_read.en.eq(avg_flags.rd_en),
            ]  # fmt: skip
            bus_data.append(bus_read.data)
            refresh_data.append(refresh_read.data)
        zp_config_write = bus.wr_stb & (bus.wr_addr[2:] == REG["ZP_CONFIG"].word)
        m.d.comb += [
            avg_flags.zp_max.eq(regs.zp_max),
            avg_flags.restart.eq(zp_config_write & bus.wr_strb[zp_max_field.lsb // 8]),
            avg_flags.wr_en.eq(bus.wr_stb & hit), avg_flags.wr_word.eq(word),
            avg_flags.wr_data.eq(bus.wr_data), avg_flags.wr_strb.eq(bus.wr_strb),
            avg_flags.rd_data.eq(Cat(*refresh_data)),
        ]  # fmt: skip
        return bus_data

    # ---------------------------------------------------------------- frames in flight
    def _frame_bookkeeping(self, m, regs):
        """Start times travel from the load stage to the last output beat, computed and predicted
        counts from the compute stage; both queues are popped by a frame's last OFMAP handshake."""
        m.submodules.start_queue = start_queue = SyncFIFO(width=32, depth=FRAME_QUEUE_DEPTH)
        m.submodules.count_queue = count_queue = SyncFIFO(width=2 * COUNT_BITS, depth=FRAME_QUEUE_DEPTH)
        frames = SimpleNamespace(
            start_queue=start_queue, count_queue=count_queue, cycle=Signal(32),
            started=Signal(), dropped=Signal(), emitted=Signal(),
            ifmap_full=Signal(2),  # slot loaded and not yet read by the compute stage
            obuf_busy=Signal(OBUF_SLOTS),  # slot owned by a frame being computed or drained
            obuf_ready=Signal(OBUF_SLOTS),  # slot holds a finished OFMAP waiting for / in the drain
            slot_zp=Signal(OBUF_SLOTS),  # the frame in each OFMAP slot predicts
        )  # fmt: skip
        in_flight = Signal(range(FRAME_QUEUE_DEPTH + 1))
        m.d.sync += [frames.cycle.eq(frames.cycle + 1),
                     in_flight.eq(in_flight + frames.started - frames.dropped - frames.emitted)]  # fmt: skip
        m.d.comb += regs.busy.eq(in_flight != 0)
        return frames

    # ---------------------------------------------------------------- load stage
    def _load_stage(self, m, regs, frames):
        m.submodules[self.IFMAP] = ifmap = IfmapWindowBuffer()
        load_slot = Signal()
        load_beat = Signal(range(BEATS_PER_FRAME))
        discard = Signal()  # dropping beats up to the next tlast after a missing one
        first_beat_time = Signal(32)
        take = Signal()
        m.d.comb += [
            self.s_axis_tready.eq(discard | ~frames.ifmap_full.bit_select(load_slot, 1)),
            take.eq(self.s_axis_tvalid & self.s_axis_tready),
            ifmap.wr_en.eq(take & ~discard),
            ifmap.wr_slot.eq(load_slot),
            ifmap.wr_beat.eq(load_beat),
            ifmap.wr_data.eq(self.s_axis_tdata),
        ]
        with m.If(take & discard):
            with m.If(self.s_axis_tlast):
                m.d.sync += discard.eq(0)
        with m.Elif(take):
            with m.If(load_beat == 0):
                m.d.comb += frames.started.eq(1)
                m.d.sync += first_beat_time.eq(frames.cycle)
            with m.If(load_beat == BEATS_PER_FRAME - 1):
                m.d.sync += [frames.ifmap_full.bit_select(load_slot, 1).eq(1), load_slot.eq(~load_slot),
                             load_beat.eq(0)]  # fmt: skip
                m.d.comb += [frames.start_queue.w_en.eq(1), frames.start_queue.w_data.eq(first_beat_time)]
                with m.If(~self.s_axis_tlast):
                    m.d.sync += [regs.frame_error.eq(1), discard.eq(1)]
            with m.Elif(self.s_axis_tlast):
                m.d.comb += frames.dropped.eq(1)
                m.d.sync += [regs.frame_error.eq(1), load_beat.eq(0)]
            with m.Else():
                m.d.sync += load_beat.eq(load_beat + 1)
        frames.ifmap = ifmap

    # ---------------------------------------------------------------- compute stage
    def _compute_stage(self, m, regs, frames):
        """Scans a loaded frame into the MAC pipeline; with prediction, phase A, the dilate pass and
        phase B. A new frame may start in the cycle the previous one issues its last output."""
        m.submodules[self.SCANNER] = scanner = MaskScanner()
        m.submodules.zp = zp = ZeroPredictor()
        slot = Signal()  # the IFMAP and OFMAP slots of the frame being computed
        obuf = Signal(range(OBUF_SLOTS))
        next_slot = Signal()  # ... and of the next frame to start
        next_obuf = Signal(range(OBUF_SLOTS))
        mode = Signal(ScanMode)
        computed = Signal(range(N_OUTPUTS + 1))  # outputs issued so far, and that plus one
        computed_next = Signal(range(N_OUTPUTS + 2), init=1)
        wait = Signal(range(max(spec.ZP_HOT_WAIT, spec.ZP_DILATE_CYCLES)))
        idle = Signal()
        dilating = Signal()
        frame_end = Signal()  # the frame's last output (or its empty marker) issues now
        # The next frame's slots are registers, so whether it may start is a shallow function of state.
        next_ready = Signal()
        m.d.comb += next_ready.eq(frames.ifmap_full.bit_select(next_slot, 1) & ~frames.obuf_busy.bit_select(next_obuf, 1)
                                  & ~(regs.zp_en & regs.avg_flags.busy))  # fmt: skip
        can_start = (idle | frame_end) & next_ready
        computed_rows, anchor_rows = self._rows_first_scan(m, regs)
        m.d.comb += scanner.rows.eq(Mux(dilating, zp.rows_b, Mux(regs.zp_en, anchor_rows, computed_rows)))

        def start_frame():
            m.d.comb += [scanner.start.eq(1), zp.clear.eq(regs.zp_en)]
            m.d.sync += [
                mode.eq(Mux(regs.zp_en, ScanMode.ANCHORS, ScanMode.COMPUTED)),
                computed.eq(0),
                computed_next.eq(1),
                slot.eq(next_slot),
                obuf.eq(next_obuf),
                next_slot.eq(~next_slot),
                next_obuf.eq(increment_modulo(next_obuf, OBUF_SLOTS)),
                frames.obuf_busy.bit_select(next_obuf, 1).eq(1),
                frames.slot_zp.bit_select(next_obuf, 1).eq(regs.zp_en),
            ]
            with m.If(regs.zp_en):
                m.next = "PHASE_A"
            with m.Else():
                m.next = "SCAN"

        issue = scanner.issue
        with m.If(issue):
            m.d.sync += [computed.eq(computed_next), computed_next.eq(computed_next + 1)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(can_start):
                    start_frame()
            with m.State("SCAN"):  # a frame without prediction, or phase B
                m.d.comb += frame_end.eq(scanner.done)
                with m.If(can_start):
                    start_frame()
                with m.Elif(scanner.done):
                    m.next = "IDLE"
            with m.State("PHASE_A"):
                with m.If(scanner.done):
                    m.d.sync += wait.eq(spec.ZP_HOT_WAIT - 1)
                    m.next = "HOT_WAIT"
            with m.State("HOT_WAIT"):  # the last anchor's result is on its way to the hot flags
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 0):
                    m.d.comb += zp.dilate_start.eq(1)
                    m.d.sync += wait.eq(spec.ZP_DILATE_CYCLES - 1)
                    m.next = "DILATE"
            with m.State("DILATE"):
                m.d.comb += dilating.eq(1)
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 0):
                    m.d.comb += scanner.start.eq(1)
                    m.d.sync += mode.eq(ScanMode.NEAR_HOT)
                    m.next = "SCAN"

        self._scanner_sources(m, regs, scanner, zp, mode)
        ifmap = frames.ifmap
        m.d.comb += [
            ifmap.rd_en.eq(issue), ifmap.rd_slot.eq(slot),
            ifmap.rd_y.eq(scanner.index[X_BITS:INDEX_BITS]), ifmap.rd_x.eq(scanner.index[:X_BITS]),
        ]  # fmt: skip
        with m.If(frame_end):
            # The last window read is issued in this cycle, so the IFMAP slot is free after it.
            m.d.sync += frames.ifmap_full.bit_select(slot, 1).eq(0)
            predicted = Mux(mode == ScanMode.NEAR_HOT, zp.predicted, 0)
            m.d.comb += [frames.count_queue.w_en.eq(1),
                         frames.count_queue.w_data.eq(Cat(Mux(issue, computed_next, computed)[:COUNT_BITS], predicted))]  # fmt: skip
        self._mac_pipeline(m, regs, frames, zp, Cat(scanner.index, obuf, mode == ScanMode.ANCHORS), frame_end, obuf)

    def _rows_first_scan(self, m, regs):
        """The rows with work when a frame starts: without prediction, and for phase A."""
        flags = regs.mask_flags
        computed = Signal(H)
        anchors = Signal(H)
        m.d.comb += [
            computed.eq(Mux(regs.skip_en, flags.rows_even | flags.rows_odd, (1 << H) - 1)),
            anchors.eq(Cat(*(_has_anchors(regs.zp_pattern, y % 2)
                             & (~regs.skip_en | (flags.rows_odd if y % 2 else flags.rows_even)[y]) for y in range(H)))),
        ]  # fmt: skip
        return computed, anchors

    def _scanner_sources(self, m, regs, scanner, zp, mode):
        """Row flags and group issue bits for the scanner, by what the scan issues."""
        flags, row = regs.mask_flags, scanner.row_addr
        m.d.comb += [flags.row_addr.eq(row), zp.b_row.eq(row)]
        all_groups = Const((1 << GROUPS_PER_ROW) - 1, GROUPS_PER_ROW)
        computed_flags = Mux(regs.skip_en, flags.even | flags.odd, all_groups)
        anchor_flags = Mux(_has_anchors(regs.zp_pattern, row[0]),
                           Mux(regs.skip_en, Mux(row[0], flags.odd, flags.even), all_groups), 0)  # fmt: skip
        with m.Switch(mode):
            with m.Case(ScanMode.COMPUTED):
                m.d.comb += scanner.row_flags.eq(computed_flags)
            with m.Case(ScanMode.ANCHORS):
                m.d.comb += scanner.row_flags.eq(anchor_flags)
            with m.Default():
                m.d.comb += scanner.row_flags.eq(zp.b_flags)

        mask_read, group = regs.mask_scan_read, scanner.staged_group
        near_hot = mode == ScanMode.NEAR_HOT
        m.d.comb += [
            mask_read.addr.eq(scanner.group_addr[2:]), mask_read.en.eq(scanner.group_read & ~near_hot),
            zp.b_group.eq(scanner.group_addr), zp.b_read.eq(scanner.group_read & near_hot),
        ]  # fmt: skip
        uncompressed = ~(mask_read.data.word_select(group[:2], 8) & regs.skip_en.replicate(8))
        group_row = group[3:]
        anchor_columns = Mux(_has_anchors(regs.zp_pattern, group_row[0]),
                             Mux(group_row[0], ODD_COLUMNS, EVEN_COLUMNS), 0)  # fmt: skip
        with m.Switch(mode):
            with m.Case(ScanMode.COMPUTED):
                m.d.comb += scanner.group_bits.eq(uncompressed)
            with m.Case(ScanMode.ANCHORS):
                m.d.comb += scanner.group_bits.eq(uncompressed & anchor_columns)
            with m.Default():
                m.d.comb += scanner.group_bits.eq(zp.b_bits)
        m.d.comb += [zp.pattern.eq(regs.zp_pattern), zp.zp_max.eq(regs.zp_max), zp.skip_en.eq(regs.skip_en),
                     flags.line_addr.eq(zp.line_addr), flags.line_en.eq(zp.line_en), zp.mask_line.eq(flags.line),
                     flags.late_addr.eq(zp.late_addr), zp.late_mask_line.eq(flags.late_line),
                     regs.avg_flags.line_addr.eq(zp.line_addr), regs.avg_flags.line_en.eq(zp.line_en),
                     zp.avg_line.eq(regs.avg_flags.line)]  # fmt: skip

    def _mac_pipeline(self, m, regs, frames, zp, issue_tag, frame_end, obuf):
        """Window read -> MAC/requant -> OFMAP buffer; anchors' results also go to the predictor, and a
        frame's OFMAP slot is marked finished when its last result is written."""
        m.submodules[self.MAC] = mac = MacRequant(tag_width=TAG_BITS)
        ifmap = frames.ifmap
        # The window arrives IfmapWindowBuffer.LATENCY cycles after its read; its tag follows.
        tag_valid, tag = ifmap.rd_en, issue_tag
        for stage in range(IfmapWindowBuffer.LATENCY):
            next_valid = Signal(name=f'win_valid{stage}')
            next_tag = Signal(TAG_BITS, name=f'win_tag{stage}')
            m.d.sync += next_valid.eq(tag_valid)
            with m.If(tag_valid):
                m.d.sync += next_tag.eq(tag)
            tag_valid, tag = next_valid, next_tag
        m.d.comb += [mac.in_valid.eq(tag_valid), mac.in_tag.eq(tag), mac.bias.eq(regs.bias),
                     mac.mult.eq(regs.mult), mac.shift.eq(regs.shift)]  # fmt: skip
        m.d.comb += [mac.window[i].eq(ifmap.window[i]) for i in range(TAPS)]
        m.d.comb += [mac.weights[i].eq(regs.weights[i]) for i in range(TAPS)]

        # OFMAP buffer: 3 slots x 512 words of 8 pixels, written one byte lane per result.
        m.submodules.obuf = obuf_mem = Memory(shape=unsigned(spec.BEAT_BITS), depth=OBUF_SLOTS * BEATS_PER_FRAME, init=[])
        write = obuf_mem.write_port(granularity=8)
        frames.obuf_read = obuf_mem.read_port()
        out_index, out_slot = mac.out_tag[:INDEX_BITS], mac.out_tag[INDEX_BITS : TAG_BITS - 1]
        m.d.comb += [
            zp.result_valid.eq(mac.out_valid & mac.out_tag[TAG_BITS - 1]),
            zp.result_index.eq(out_index), zp.result_pixel.eq(mac.out_pixel),
            write.addr.eq(Cat(out_index[LANE_BITS:], out_slot)),
            write.data.eq(mac.out_pixel.replicate(PIXELS_PER_BEAT)),
            write.en.eq(Mux(mac.out_valid, decoded(out_index[:LANE_BITS], PIXELS_PER_BEAT), 0)),
        ]  # fmt: skip
        # The end-of-frame marker follows the last index through the same number of stages.
        marker_valid, marker_slot = frame_end, obuf
        for stage in range(IfmapWindowBuffer.LATENCY + MacRequant.LATENCY):
            next_valid = Signal(name=f'end_valid{stage}')
            next_slot = Signal(range(OBUF_SLOTS), name=f'end_slot{stage}')
            m.d.sync += [next_valid.eq(marker_valid), next_slot.eq(marker_slot)]
            marker_valid, marker_slot = next_valid, next_slot
        with m.If(marker_valid):
            m.d.sync += frames.obuf_ready.bit_select(marker_slot, 1).eq(1)

        # The predicted-zero map of each OFMAP slot, written 4 rows per cycle by the dilate pass.
        m.submodules.zp_map = zp_map = Memory(shape=unsigned(len(zp.map_data)),
                                              depth=OBUF_SLOTS * spec.ZP_MAP_WRITE_CYCLES, init=[])  # fmt: skip
        map_write = zp_map.write_port()
        frames.map_read = zp_map.read_port()
        map_written = Signal(name=self.ZP_MAP_WRITE)
        m.d.comb += [map_written.eq(zp.map_write), map_write.addr.eq(obuf * spec.ZP_MAP_WRITE_CYCLES + zp.map_addr),
                     map_write.data.eq(zp.map_data), map_write.en.eq(map_written)]  # fmt: skip

    # ---------------------------------------------------------------- drain stage
    def _drain_stage(self, m, regs, frames):
        obuf_read, map_read, mask_read = frames.obuf_read, frames.map_read, regs.mask_drain_read
        m.submodules[self.DRAIN] = drain = Drain(OBUF_SLOTS, len(mask_read.data), len(map_read.data))
        m.d.comb += [
            drain.skip_en.eq(regs.skip_en),
            drain.slot_ready.eq(frames.obuf_ready),
            drain.slot_zp.eq(frames.slot_zp),
            obuf_read.addr.eq(Cat(drain.beat, drain.slot)), obuf_read.en.eq(drain.mem_read),
            mask_read.addr.eq(drain.mask_addr), mask_read.en.eq(drain.mem_read),
            map_read.addr.eq(drain.slot * spec.ZP_MAP_WRITE_CYCLES + drain.map_addr), map_read.en.eq(drain.map_read),
            drain.obuf_data.eq(obuf_read.data),
            drain.mask_data.eq(mask_read.data),
            drain.avg_data.eq(Cat(regs.avg_drain_read[0].data, regs.avg_drain_read[1].data)),
            drain.map_data.eq(map_read.data),
        ]  # fmt: skip
        for port in regs.avg_drain_read:
            m.d.comb += [port.addr.eq(drain.beat), port.en.eq(drain.mem_read)]
        with m.If(drain.release):
            m.d.sync += [frames.obuf_ready.bit_select(drain.slot, 1).eq(0),
                         frames.obuf_busy.bit_select(drain.slot, 1).eq(0)]  # fmt: skip
        wiring.connect(m, drain.m_axis, wiring.flipped(self.m_axis))

        counters, queue = regs.counters, frames.count_queue
        computed = queue.r_data[:COUNT_BITS]
        with m.If(self.m_axis_tvalid & self.m_axis_tready & self.m_axis_tlast):
            m.d.comb += [frames.emitted.eq(1), frames.start_queue.r_en.eq(1), queue.r_en.eq(1)]
            m.d.sync += [
                counters["FRAMES"].eq(counters["FRAMES"] + 1),
                counters["LAST_CYCLES"].eq(frames.cycle - frames.start_queue.r_data),
                counters["LAST_COMPUTED"].eq(computed),
                counters["LAST_MACS"].eq(computed * MACS_PER_OUTPUT),
                counters["LAST_PREDICTED"].eq(queue.r_data[COUNT_BITS:]),
            ]


def _has_anchors(pattern, row_parity):
    """A row has anchors with CHECKER, and with GRID2 when it is even."""
    return (pattern == ZP_CHECKER) | (row_parity == 0)
