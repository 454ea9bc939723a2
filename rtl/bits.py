"""Small bit-level building blocks, written the way they map onto LUTs and carry chains."""
from amaranth import Cat, Const


def lowest_set(value):
    """(index of the lowest set bit, value with that bit cleared) of a wide value: a carry chain and
    an OR tree."""
    width = len(value)
    onehot = value & (~value + 1)[:width]
    index = Cat(*((onehot & sum(1 << i for i in range(width) if (i >> b) & 1)).any()
                  for b in range((width - 1).bit_length())))  # fmt: skip
    return index, value & (value - 1)[:width]


def lowest_set_narrow(value):
    """`lowest_set` of a value of a few bits as sums of products (two LUT levels for 8 bits): a
    carry chain would cost more levels than it saves."""
    width = len(value)
    first = [value[i] & ~value[:i].any() if i else value[0] for i in range(width)]
    index = Cat(*(Cat(*(first[i] for i in range(width) if (i >> b) & 1)).any()
                  for b in range((width - 1).bit_length())))  # fmt: skip
    rest = Cat(*(value[i] & value[:i].any() if i else Const(0, 1) for i in range(width)))
    return index, rest


def at_most_one_set(value):
    """No two bits of `value` are set."""
    width = len(value)
    return ~Cat(*(value[i] & value[:i].any() for i in range(1, width))).any()


def decoded(select, count: int, lanes=None):
    """`1 << select`, or `lanes << (select * len(lanes))`, for select < count: one comparator per
    position instead of the barrel shifter a variable shift becomes."""
    if lanes is None:
        return Cat(*(select == i for i in range(count)))
    return Cat(*((select == i).replicate(len(lanes)) & lanes for i in range(count)))
