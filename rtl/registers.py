"""Register decode of one instance, generated from the register map in `model.hw.spec`.

Word indices, widths, reset values, sign extension on read and write-1-to-clear fields all come
from `spec.REGISTERS`; the instance only says which signal implements which register:

* `storage(reg)` makes the flip-flops of a read/write register (one per word of an array), with
  the contract's width, reset value and signedness (a signed register reads sign-extended);
* `decode(...)` builds the write side (byte strobes honoured, bits above a register's width or
  outside its fields dropped, a value a field cannot hold replaced by the field's reset) and the
  read multiplexer for every flip-flop and read-only word, and returns a strobe per W1C field;
  it refuses a map in which a register has no implementation;
* `region(addr, reg)` decodes a memory-backed region (MASK, AVG) from the upper address bits.

Addresses no register occupies read 0 and ignore writes; address bits [1:0] are ignored.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value, signed, unsigned

from model.hw import spec


def storage(reg: spec.Register) -> list[Signal]:
    """The flip-flops of read/write register `reg`: one signal per word, named after the register."""
    if not reg.writable or reg.is_memory:
        raise ValueError(f"{reg.name} is not a flip-flop register (access {reg.access}, memory {reg.is_memory})")
    shape = signed(reg.width) if reg.sign_extend else unsigned(reg.width)
    names = [f"{reg.name.lower()}{i}" for i in range(reg.count)] if reg.count > 1 else [reg.name.lower()]
    return [Signal(shape, init=reg.reset, name=name) for name in names]


def region(addr: Value, reg: spec.Register) -> tuple[Value, Value]:
    """(address inside `reg`'s region, word index inside it) for a memory-backed register array."""
    if not reg.is_memory:
        raise ValueError(f"{reg.name} is not a memory-backed region")
    size_bits = (4 * reg.count).bit_length() - 1  # the spec checks: power of two, aligned
    return addr[size_bits : spec.CORE_ADDR_WIDTH] == reg.offset >> size_bits, addr[2:size_bits]


def _write_bytes(m: Module, target: Signal, data: Value, strobe: Value, reg: spec.Register) -> None:
    """Honour the byte strobes for a register of `len(target)` bits.

    A register with fields stores only its fields' bits (the others read 0); a field that lists
    its `values` stores its reset value when any other value is written.
    """
    if reg.fields:
        for f in reg.fields:
            bits = slice(f.lsb, f.lsb + f.width)
            value = data[bits]
            if f.values is not None:
                value = Mux(Cat(value == v for v in f.values).any(), value, f.reset)
            with m.If(strobe[f.lsb // 8]):
                m.d.sync += target[bits].eq(value)
        return
    width = len(target)
    for k in range((width + 7) // 8):
        lo, hi = 8 * k, min(8 * k + 8, width)
        with m.If(strobe[k]):
            m.d.sync += target[lo:hi].eq(data[lo:hi])


def decode(m: Module, bus, read_addr: Value, flops: dict[str, list[Signal]],
           readonly: dict[str, Value]) -> tuple[Signal, dict[str, Signal]]:
    """Write decode and read multiplexer of every register that is not a memory region.

    `bus` is an `AxiLiteRegisterBus` (its wr_stb/wr_addr/wr_data/wr_strb write strobe);
    `read_addr` the byte address whose word is read; `flops` maps read/write registers to their
    `storage`; `readonly` maps read-only registers to the value they read. Returns (the value of
    the word at `read_addr`, 0 where no flip-flop or read-only register sits; {"REG.FIELD": strobe}
    for every W1C field, high in the cycle a 1 is written to it).
    """
    missing = [r.name for r in spec.REGISTERS if not r.is_memory and r.name not in (flops if r.writable else readonly)]
    extra = sorted((set(flops) | set(readonly)) - {r.name for r in spec.REGISTERS})
    if missing or extra:
        raise ValueError(f"register implementation disagrees with the map: missing {missing}, unknown {extra}")

    word_bits = slice(2, spec.CORE_ADDR_WIDTH)
    clears = {f"{r.name}.{f.name}": Signal(name=f"clear_{r.name.lower()}_{f.name.lower()}")
              for r in spec.REGISTERS for f in r.fields if f.w1c}  # fmt: skip
    with m.If(bus.wr_stb):
        with m.Switch(bus.wr_addr[word_bits]):
            for reg in spec.REGISTERS:
                if reg.is_memory:
                    continue
                for i in range(reg.count):
                    if reg.writable:
                        with m.Case(reg.word + i):
                            _write_bytes(m, flops[reg.name][i], bus.wr_data, bus.wr_strb, reg)
                    elif reg.clear_on_write:
                        with m.Case(reg.word + i):
                            for f in reg.fields:
                                if f.w1c:
                                    m.d.comb += clears[f"{reg.name}.{f.name}"].eq(
                                        bus.wr_strb[f.lsb // 8] & bus.wr_data[f.lsb])

    value = Signal(spec.AXIL_DATA_WIDTH, name="register_read")
    with m.Switch(read_addr[word_bits]):
        for reg in spec.REGISTERS:
            if reg.is_memory:
                continue
            for i in range(reg.count):
                with m.Case(reg.word + i):
                    if reg.writable:
                        m.d.comb += value.eq(flops[reg.name][i])  # signed storage sign-extends
                    else:
                        m.d.comb += value.eq(readonly[reg.name])
    return value, clears
