"""Scanner: yields the indices of the outputs a frame computes, one per cycle; the others cost nothing.

The 4,096 outputs are 64 rows x 8 groups x 8 outputs (a group is one mask byte, one beat). Which
groups have work, and which outputs of a group are issued, comes from the core (`conv2d.py`): per row
its 8 group flags (`row_addr` -> `row_flags`, read combinationally: a LUTRAM in the core), per group
its 8 issue bits (`group_addr`, `group_read` -> `group_bits` one cycle later: the MASK memory, or the
prediction's phase-B memory). Every stage is a register a few LUT levels from the last:

* rows: `rows` (the rows with work) is registered, then its lowest row and the rest, every cycle,
  so `rows` must hold `ROWS_SETUP` cycles before `start`;
* row finder: `pending` gives up its lowest row into `next_row` each time the row stage takes one;
* row stage: the flags of `next_row` (read at a registered address) into the row register;
* group stage: the row register's lowest flagged group is staged and its issue bits are read;
* expander: issues the staged group's bits lowest first, one per cycle.

Each stage refills in the cycle the next one takes its content, so a frame with c computed outputs
issues them on c consecutive cycles, the first `STARTUP` = 4 cycles after `start`. `done` rises with
the last index (alone, STARTUP cycles after `start`, when nothing is computed). `start` may come in
the cycle `done` is high: the new scan loads while the last index leaves, so scans follow each other
with STARTUP - 1 idle cycles between their issues. Whether the row register and the expander hold at
most one more bit is kept in registers beside them, so the hand-over decisions are shallow.

A row whose flags read 0 (only when the flags change under a running scan) costs a cycle, and the
scan then ends with an empty marker: it never hangs.
"""
from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from model.hw.spec import GROUPS_PER_ROW, H, N_GROUPS, N_OUTPUTS, PIXELS_PER_BEAT
from rtl.bits import at_most_one_set, lowest_set, lowest_set_narrow

ROW_BITS = (H - 1).bit_length()
GROUP_BITS = (GROUPS_PER_ROW - 1).bit_length()


class MaskScanner(wiring.Component):
    STARTUP = spec.MASK_SCAN_STARTUP  # cycles from `start` to the first issued index
    _STAGES = 4  # what elaborate builds: next_row -> row register -> staged group -> expander
    ROWS_SETUP = 2  # cycles `rows` must hold before `start`: registered, then its lowest row found

    def __init__(self):
        if self.STARTUP != self._STAGES:
            raise ValueError(f"the contract's MASK_SCAN_STARTUP is {self.STARTUP}; this scanner has {self._STAGES}")
        if PIXELS_PER_BEAT != GROUPS_PER_ROW:
            raise ValueError("a row's group flags are one byte: PIXELS_PER_BEAT must equal GROUPS_PER_ROW")
        super().__init__({
            "start": In(1),
            "rows": In(H),  # at `start`: the rows with work
            "row_addr": Out(ROW_BITS),
            "row_flags": In(GROUPS_PER_ROW),  # flags of row `row_addr`, same cycle
            "group_addr": Out(range(N_GROUPS)),
            "group_read": Out(1),
            "staged_group": Out(range(N_GROUPS)),  # the group whose bits arrive on `group_bits`
            "group_bits": In(PIXELS_PER_BEAT),  # issue bits of `group_addr`, one cycle after `group_read`
            "issue": Out(1),
            "index": Out(range(N_OUTPUTS)),
            "done": Out(1),
        })  # fmt: skip

    def elaborate(self, platform):
        m = Module()
        scanning = Signal()  # the scan's last group (or marker) has not been staged yet
        # Rows: `rows` registered, then its lowest row and the rest.
        rows = Signal(H)
        rows_first = Signal(ROW_BITS)
        rows_rest = Signal(H)
        rows_any = Signal()
        first, rest = lowest_set(rows)
        m.d.sync += [rows.eq(self.rows), rows_first.eq(first), rows_rest.eq(rest), rows_any.eq(rows != 0)]
        # Row finder.
        pending = Signal(H)
        next_row = Signal(ROW_BITS)
        next_valid = Signal()
        following, pending_rest = lowest_set(pending)
        # Row register.
        row = Signal(ROW_BITS)
        row_flags = Signal(GROUPS_PER_ROW)
        row_has = Signal()  # row_flags != 0
        row_single = Signal()  # at most one flag
        row_last = Signal()  # no row follows
        row_marker = Signal()  # the end marker waits here
        # Staged group, then the expander's current group.
        staged = Signal()
        staged_last = Signal()
        staged_real = Signal()
        current = Signal()
        current_group = Signal(range(N_GROUPS))
        current_last = Signal()
        current_bits = Signal(PIXELS_PER_BEAT)
        current_single = Signal()

        # Expander.
        bit, bits_rest = lowest_set_narrow(current_bits)
        expander_free = ~current | current_single
        m.d.comb += [
            self.issue.eq(current & (current_bits != 0)),
            self.index.eq(Cat(bit, current_group)),
            self.done.eq(current & current_single & current_last),
        ]
        incoming = Signal(PIXELS_PER_BEAT)
        m.d.comb += incoming.eq(self.group_bits & staged_real.replicate(PIXELS_PER_BEAT))
        with m.If(expander_free):
            m.d.sync += [current.eq(staged), current_group.eq(self.staged_group), current_bits.eq(incoming),
                         current_single.eq(at_most_one_set(incoming)), current_last.eq(staged_last)]  # fmt: skip
        with m.Elif(current):
            m.d.sync += [current_bits.eq(bits_rest), current_single.eq(at_most_one_set(bits_rest))]

        # Group stage: the row register's lowest group, or the end marker.
        group, flags_rest = lowest_set_narrow(row_flags)
        advance = ~staged | expander_free
        take_group = Signal()
        take_marker = Signal()
        last_group = Signal()
        m.d.comb += [
            take_group.eq(advance & row_has),
            take_marker.eq(advance & ~row_has & row_marker),
            last_group.eq(row_last & row_single),
            self.group_addr.eq(Cat(group, row)),
            self.group_read.eq(take_group | take_marker),
        ]
        with m.If(advance):
            m.d.sync += [staged.eq(take_group | take_marker), self.staged_group.eq(Cat(group, row)),
                         staged_last.eq(take_marker | last_group), staged_real.eq(take_group)]  # fmt: skip
        with m.If(take_group):
            m.d.sync += [row_flags.eq(flags_rest), row_has.eq(~row_single), row_single.eq(at_most_one_set(flags_rest))]
        with m.If(take_marker | take_group & last_group):
            m.d.sync += [row_marker.eq(0), scanning.eq(0)]

        # Row stage: refill the row register in the cycle its last group is taken.
        row_free = ~row_has & ~row_marker | take_group & row_single
        m.d.comb += self.row_addr.eq(next_row)
        with m.If(row_free & next_valid):
            m.d.sync += [row.eq(next_row), row_flags.eq(self.row_flags), row_has.eq(self.row_flags != 0),
                         row_single.eq(at_most_one_set(self.row_flags)), row_last.eq(pending == 0),
                         next_row.eq(following), pending.eq(pending_rest), next_valid.eq(pending != 0)]  # fmt: skip
        with m.Elif(row_free & scanning & ~(take_group & last_group)):
            m.d.sync += row_marker.eq(1)

        with m.If(self.start):
            m.d.sync += [pending.eq(rows_rest), next_row.eq(rows_first), next_valid.eq(rows_any), scanning.eq(1),
                         row_has.eq(0), row_marker.eq(0), staged.eq(0), current.eq(0)]  # fmt: skip
        return m
