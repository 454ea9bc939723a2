"""Round trips of everything packed into register words and the kernel's configuration image.

The expected layouts are re-derived here from rtl/README.md (MASK bit j of word i is output
32i + j, AVG byte k of word i is output 4i + k, beats carry pixel 8b + p in bits [8p+7:8p]), so a
packing bug cannot cancel against the same bug in its own unpacker.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from model.hw import golden
from model.hw.golden import ConvConfig
from model.hw.image import config_from_image, config_image, frames_buffer, frames_from_buffer, written_back
from model.hw.spec import IMAGE_BYTES, IMAGE_LOADED, IMAGE_WRITTEN_BACK, REG, H, W

bool_maps = arrays(np.bool_, (H, W), elements=st.booleans())
byte_maps = arrays(np.uint8, (H, W), elements=st.integers(0, 255))


def edgy_integers(low: int, high: int) -> st.SearchStrategy[int]:
    """Integers in [low, high] that hit both ends often: sign bits and top bits live there."""
    return st.one_of(st.sampled_from([low, high]), st.integers(low, high))


configs = st.builds(
    ConvConfig,
    weights=st.lists(edgy_integers(-128, 127), min_size=9, max_size=9).map(lambda w: np.array(w).reshape(3, 3)),
    bias=edgy_integers(-(2**31), 2**31 - 1),
    mult=edgy_integers(0, 2**16 - 1),
    shift=edgy_integers(0, 31),
    mask=bool_maps,
    avg=byte_maps,
    skip_en=st.booleans(),
    zp_en=st.booleans(),
    zp_pattern=st.sampled_from(sorted(golden.ZP_PATTERNS.values())),
    zp_max=edgy_integers(0, 255),
)


def assert_same_config(a: ConvConfig, b: ConvConfig) -> None:
    np.testing.assert_array_equal(np.asarray(a.weights, np.int64), np.asarray(b.weights, np.int64))
    np.testing.assert_array_equal(np.asarray(a.mask, bool), np.asarray(b.mask, bool))
    np.testing.assert_array_equal(np.asarray(a.avg, np.uint8), np.asarray(b.avg, np.uint8))
    scalars = ("bias", "mult", "shift", "skip_en", "zp_en", "zp_pattern", "zp_max")
    assert [int(getattr(a, n)) for n in scalars] == [int(getattr(b, n)) for n in scalars]


@given(bool_maps)
def test_mask_words_put_output_32i_plus_j_in_bit_j_of_word_i(mask):
    words = golden.mask_words(mask)
    assert len(words) == REG["MASK"].count and all(0 <= w < 2**32 for w in words)
    unpacked = [bool(words[i // 32] >> (i % 32) & 1) for i in range(H * W)]
    assert unpacked == mask.reshape(-1).tolist()
    assert golden.mask_bytes(mask) == b"".join(w.to_bytes(4, "little") for w in words)


@given(byte_maps)
def test_avg_words_put_output_4i_plus_k_in_byte_k_of_word_i(avg):
    words = golden.avg_words(avg)
    assert len(words) == REG["AVG"].count
    assert [words[i // 4] >> (8 * (i % 4)) & 0xFF for i in range(H * W)] == avg.reshape(-1).tolist()


@given(byte_maps)
def test_beats_round_trip_with_pixel_8b_plus_p_in_byte_p(frame):
    beats = golden.frame_to_beats(frame)
    assert [beats[i // 8] >> (8 * (i % 8)) & 0xFF for i in range(H * W)] == frame.reshape(-1).tolist()
    np.testing.assert_array_equal(golden.beats_to_frame(beats), frame)


@given(configs)
def test_config_image_round_trips_and_puts_each_register_at_its_address(cfg):
    image = config_image(cfg)
    assert image.shape == (IMAGE_BYTES,) and image.dtype == np.uint8
    assert_same_config(config_from_image(image), cfg)

    def word(name: str, index: int = 0) -> int:
        return int.from_bytes(image[REG[name].addr(index) : REG[name].addr(index) + 4].tobytes(), "little")

    assert [word("W", i) for i in range(9)] == [w & 0xFFFFFFFF for w in np.asarray(cfg.weights).reshape(-1).tolist()]
    assert (word("BIAS"), word("MULT"), word("SHIFT")) == (cfg.bias & 0xFFFFFFFF, cfg.mult, cfg.shift)
    assert word("CONTROL") == int(cfg.skip_en) | int(cfg.zp_en) << 1
    assert word("ZP_CONFIG") == cfg.zp_pattern | cfg.zp_max << 8
    assert [word("MASK", i) for i in range(REG["MASK"].count)] == golden.mask_words(cfg.mask)
    assert [word("AVG", i) for i in range(REG["AVG"].count)] == golden.avg_words(cfg.avg)
    loaded = np.zeros(IMAGE_BYTES, bool)
    for name in IMAGE_LOADED:
        loaded[REG[name].offset : REG[name].end] = True
    assert not image[~loaded].any(), "counters and unmapped bytes must be 0"


any_images = st.one_of(
    arrays(np.uint8, IMAGE_BYTES, elements=st.integers(0, 255)),
    st.integers(0, 2**32 - 1).map(lambda seed: np.random.default_rng(seed).integers(0, 256, IMAGE_BYTES, dtype=np.uint8)),
)


@given(any_images)
def test_any_image_loads_as_the_registers_would_store_it(image):
    """Whatever bytes a buffer holds, the kernel ends up with a valid configuration, and imaging that
    configuration again loads the same one (the stored values are a fixed point)."""
    cfg = config_from_image(image)
    assert_same_config(config_from_image(config_image(cfg)), cfg)
    pattern = image[REG["ZP_CONFIG"].offset] & 0b11
    assert cfg.zp_pattern == (pattern if pattern in golden.ZP_PATTERNS.values() else 0), "2 and 3 store GRID2"
    assert cfg.shift == image[REG["SHIFT"].offset] & 0x1F
    assert list(np.asarray(cfg.weights).reshape(-1)) == image[REG["W"].offset : REG["W"].end : 4].view(np.int8).tolist()


@given(st.lists(st.integers(0, 2**32 - 1), min_size=len(IMAGE_WRITTEN_BACK), max_size=len(IMAGE_WRITTEN_BACK)))
def test_written_back_counters_are_read_from_their_addresses(counters):
    image = np.zeros(IMAGE_BYTES, np.uint8)
    for name, value in zip(IMAGE_WRITTEN_BACK, counters):
        image[REG[name].offset : REG[name].end] = np.frombuffer(value.to_bytes(4, "little"), np.uint8)
    assert written_back(image) == dict(zip(IMAGE_WRITTEN_BACK, counters))


@given(st.integers(0, 4), st.integers(0, 2**32 - 1), st.integers(0, 4096))
def test_frames_buffer_round_trips(n_frames, seed, spare_bytes):
    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, H, W), dtype=np.uint8)
    buffer = np.concatenate([frames_buffer(frames), np.zeros(spare_bytes, np.uint8)])
    np.testing.assert_array_equal(frames_from_buffer(buffer, n_frames), frames)
