"""The configuration image of the Alveo kernel, and the memory buffers it reads and writes.

XRT can pass a kernel only arguments, so one instance's configuration travels through device memory
as an 8 KB image of its own register space (rtl/README.md, section 9): every register sits at its
own byte address, little-endian. The kernel copies the `IMAGE_LOADED` registers into its instance
on each start and writes the `IMAGE_WRITTEN_BACK` counters back at their own addresses. One builder
serves the host on either backend (simulation or a card) and the benches.
"""
from __future__ import annotations

import numpy as np

from model.hw.golden import ConvConfig, mask_bytes
from model.hw.spec import FRAME_BYTES, IMAGE_BYTES, IMAGE_LOADED, IMAGE_WRITTEN_BACK, REG, H, K, Register, W


def control_word(cfg: ConvConfig) -> int:
    """CONTROL: SKIP_EN and ZP_EN."""
    control = REG["CONTROL"]
    return (int(cfg.skip_en) << control.field("SKIP_EN").lsb) | (int(cfg.zp_en) << control.field("ZP_EN").lsb)


def zp_config_word(cfg: ConvConfig) -> int:
    """ZP_CONFIG: PATTERN and ZP_MAX."""
    reg = REG["ZP_CONFIG"]
    return (int(cfg.zp_pattern) << reg.field("PATTERN").lsb) | (int(cfg.zp_max) << reg.field("ZP_MAX").lsb)


def register_bytes(cfg: ConvConfig) -> dict[str, bytes]:
    """The contents of every register the kernel loads, as the little-endian bytes at its address."""
    word = lambda v: (int(v) & 0xFFFFFFFF).to_bytes(4, "little")  # noqa: E731
    contents = {
        "CONTROL": word(control_word(cfg)),
        "ZP_CONFIG": word(zp_config_word(cfg)),
        "W": b"".join(word(w) for w in np.asarray(cfg.weights).reshape(-1)),
        "BIAS": word(cfg.bias),
        "MULT": word(cfg.mult),
        "SHIFT": word(cfg.shift),
        "MASK": mask_bytes(cfg.mask),
        "AVG": np.ascontiguousarray(np.asarray(cfg.avg, dtype=np.uint8)).tobytes(),
    }
    assert tuple(contents) == IMAGE_LOADED, "register_bytes and spec.IMAGE_LOADED list different registers"
    return contents


def config_image(cfg: ConvConfig) -> np.ndarray:
    """The 8,192-byte image (uint8) of `cfg`; counters and unmapped bytes are 0."""
    image = np.zeros(IMAGE_BYTES, dtype=np.uint8)
    for name, data in register_bytes(cfg).items():
        reg = REG[name]
        if len(data) != reg.end - reg.offset:
            raise AssertionError(f"{name}: {len(data)} bytes for a {reg.end - reg.offset}-byte register")
        image[reg.offset : reg.end] = np.frombuffer(data, dtype=np.uint8)
    return image


def _stored(reg: Register, value: int) -> int:
    """What `reg` holds after the kernel writes `value` into it: its `width` bits, only its fields' bits,
    and a field's reset value where the value is one the field cannot hold (rtl/README.md, section 3)."""
    kept = value & ((1 << reg.width) - 1)
    if reg.fields:
        kept &= sum(f.mask for f in reg.fields)
    for f in reg.fields:
        if f.values is not None and (kept & f.mask) >> f.lsb not in f.values:
            kept = kept & ~f.mask | (f.reset << f.lsb)
    return kept


def config_from_image(image: np.ndarray) -> ConvConfig:
    """The configuration a compute unit computes with after loading `image` (the inverse of
    `config_image` on the `IMAGE_LOADED` registers): for models of the kernel, such as the host's
    stand-in of a card."""
    image = np.asarray(image, dtype=np.uint8)
    if image.shape != (IMAGE_BYTES,):
        raise ValueError(f"a configuration image is {IMAGE_BYTES} bytes, got shape {image.shape}")

    def word(name: str, index: int = 0) -> int:
        reg = REG[name]
        addr = reg.addr(index)
        return _stored(reg, int.from_bytes(image[addr : addr + 4].tobytes(), "little"))

    def field(name: str, field_name: str) -> int:
        f = REG[name].field(field_name)
        return (word(name) & f.mask) >> f.lsb

    def signed(value: int, bits: int) -> int:
        return value - (1 << bits) if value >> (bits - 1) else value

    mask, avg = REG["MASK"], REG["AVG"]
    return ConvConfig(
        weights=np.array([signed(word("W", i), REG["W"].width) for i in range(REG["W"].count)]).reshape(K, K),
        bias=signed(word("BIAS"), REG["BIAS"].width),
        mult=word("MULT"),
        shift=word("SHIFT"),
        mask=np.unpackbits(image[mask.offset : mask.end], bitorder="little").astype(bool).reshape(H, W),
        avg=image[avg.offset : avg.end].reshape(H, W).copy(),
        skip_en=bool(field("CONTROL", "SKIP_EN")),
        zp_en=bool(field("CONTROL", "ZP_EN")),
        zp_pattern=field("ZP_CONFIG", "PATTERN"),
        zp_max=field("ZP_CONFIG", "ZP_MAX"),
    )


def written_back(image: np.ndarray) -> dict[str, int]:
    """The counters the kernel wrote back into an image after a run."""
    image = np.asarray(image, dtype=np.uint8)
    if image.shape != (IMAGE_BYTES,):
        raise ValueError(f"a configuration image is {IMAGE_BYTES} bytes, got shape {image.shape}")
    return {name: int.from_bytes(image[REG[name].offset : REG[name].end].tobytes(), "little")
            for name in IMAGE_WRITTEN_BACK}  # fmt: skip


def frames_buffer(ifmaps: np.ndarray) -> np.ndarray:
    """IFMAPs (n, 64, 64) uint8 as the contiguous buffer the kernel reads: 4,096 bytes per frame."""
    ifmaps = np.asarray(ifmaps)
    if ifmaps.ndim != 3 or ifmaps.shape[1:] != (H, W):
        raise ValueError(f"IFMAPs must have shape (n, {H}, {W}), got {ifmaps.shape}")
    if ifmaps.dtype != np.uint8:
        raise ValueError(f"IFMAPs must be uint8 (the quantized layer input), got {ifmaps.dtype}")
    return np.ascontiguousarray(ifmaps).reshape(-1)


def frames_from_buffer(buffer: np.ndarray, n_frames: int) -> np.ndarray:
    """The first `n_frames` OFMAPs (n, 64, 64) of a buffer the kernel wrote."""
    buffer = np.asarray(buffer, dtype=np.uint8).reshape(-1)
    if buffer.size < n_frames * FRAME_BYTES:
        raise ValueError(f"{n_frames} frames need {n_frames * FRAME_BYTES} bytes, the buffer has {buffer.size}")
    return buffer[: n_frames * FRAME_BYTES].reshape(n_frames, H, W).copy()
