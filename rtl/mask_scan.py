"""Mask scanner: yields the indices of the computed (not compressed) outputs, one per cycle.

Skipped outputs must cost no cycles. The mask is split into 512 groups of 8 outputs (one mask
byte each); the register file keeps one `nonempty` flag per group (the group has at least one
computed output). A frame's scan works on two levels:

* group finder: a 512-bit `pending` copy of the flags; every cycle it isolates the lowest set
  flag (x & -x), so all-compressed groups are jumped over in zero cycles, and reads that group's
  mask byte from the mask memory;
* bit expander: emits the group's computed outputs lowest first, one per cycle, and takes the next
  group in the same cycle it emits the last one, so there is no bubble between groups.

A frame with c computed outputs therefore issues its indices on c consecutive cycles, starting
`STARTUP` cycles after `start` (3 = `spec.MASK_SCAN_STARTUP`: load `pending`, stage the first group
while its mask word is read, hand it to the expander); `done` is raised with the last index (or
alone, at the startup, when nothing is computed). The finder stalls while the expander is busy.

Direct mode (`direct` = 1, used by zero-value prediction): the expander takes a group's byte from
the 4096-bit `bits` input (bit i = issue output i) instead of the complement of its mask byte, and
the mask memory is not read; `nonempty` must then be the per-group OR of `bits`. Both inputs must
hold still while the scan runs. The timing is the same in both modes.
"""
from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from model.hw import spec
from model.hw.spec import N_OUTPUTS, PIXELS_PER_BEAT, REG

GROUPS = N_OUTPUTS // PIXELS_PER_BEAT  # 512 groups of 8 outputs = mask bytes
GROUPS_PER_WORD = 32 // PIXELS_PER_BEAT  # mask bytes per MASK word


def _lowest_set_index(value, width: int):
    """(index of the lowest set bit, the value with that bit cleared) as Amaranth expressions."""
    onehot = value & (~value + 1)
    index_bits = []
    for b in range((width - 1).bit_length()):
        sel = [i for i in range(width) if (i >> b) & 1]
        index_bits.append((onehot & sum(1 << i for i in sel)).any())
    return Cat(*index_bits), value & (value - 1)


class MaskScanner(wiring.Component):
    STARTUP = spec.MASK_SCAN_STARTUP  # cycles from `start` to the first issued index
    _STAGES = 3  # what elaborate builds: pending -> staged (mask word read) -> current

    def __init__(self):
        if self.STARTUP != self._STAGES:
            raise ValueError(f"the contract's MASK_SCAN_STARTUP is {self.STARTUP}; this scanner has {self._STAGES}")
        if PIXELS_PER_BEAT != 8:
            raise ValueError("a scan group is one mask byte: PIXELS_PER_BEAT must be 8")
        super().__init__(
            {
                "start": In(1),
                "nonempty": In(GROUPS),
                "skip_en": In(1),
                "direct": In(1),
                "bits": In(N_OUTPUTS),
                "mask_addr": Out(range(REG["MASK"].count)),
                "mask_en": Out(1),
                "mask_data": In(32),
                "issue": Out(1),
                "index": Out(range(N_OUTPUTS)),
                "done": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()

        # Group finder.
        pending = Signal(GROUPS)
        scanning = Signal()  # groups (or the empty-frame marker) still to hand over
        group, pending_rest = _lowest_set_index(pending, GROUPS)
        # Stage between finder and expander: the group whose mask byte is being read.
        staged = Signal()
        staged_group = Signal(range(GROUPS))
        staged_last = Signal()
        staged_real = Signal()  # 0 for the marker of a frame with nothing to compute
        # Bit expander.
        current = Signal()
        current_group = Signal(range(GROUPS))
        current_bits = Signal(PIXELS_PER_BEAT)
        current_last = Signal()

        bit, bits_rest = _lowest_set_index(current_bits, PIXELS_PER_BEAT)
        finishing = Signal()
        expander_free = Signal()
        m.d.comb += [
            finishing.eq(current & (bits_rest == 0)),
            expander_free.eq(~current | finishing),
            self.issue.eq(current & (current_bits != 0)),
            self.index.eq(Cat(bit, current_group)),
            self.done.eq(finishing & current_last),
        ]

        # The expander takes the staged group when it is free; the finder refills the stage then.
        advance = Signal()
        m.d.comb += advance.eq(~staged | expander_free)
        word_bits = (GROUPS_PER_WORD - 1).bit_length()  # group = MASK word and byte inside it
        m.d.comb += [self.mask_addr.eq(group[word_bits:]), self.mask_en.eq(advance & scanning & ~self.direct)]
        staged_byte = self.mask_data.word_select(staged_group[:word_bits], 8)
        issue_byte = Mux(self.direct, self.bits.word_select(staged_group, 8), ~(staged_byte & self.skip_en.replicate(8)))
        with m.If(expander_free):
            m.d.sync += [
                current.eq(staged),
                current_group.eq(staged_group),
                current_bits.eq(issue_byte & staged_real.replicate(8)),
                current_last.eq(staged_last),
            ]
        with m.Elif(current):
            m.d.sync += current_bits.eq(bits_rest)
        with m.If(advance):
            m.d.sync += [
                staged.eq(scanning),
                staged_group.eq(group),
                staged_last.eq(pending_rest == 0),
                staged_real.eq(pending != 0),
            ]
            with m.If(scanning):
                m.d.sync += pending.eq(pending_rest)
                with m.If(pending_rest == 0):
                    m.d.sync += scanning.eq(0)

        with m.If(self.start):
            m.d.sync += [pending.eq(self.nonempty), scanning.eq(1), staged.eq(0), current.eq(0)]
        return m
