"""Bit-exact NumPy golden model of one conv2d instance (the arithmetic of rtl/README.md).

Everything the hardware computes is defined here once; the cocotb benches, the Amaranth unit tests
and the hardware-in-the-loop flow all compare against these functions. Geometry comes from
`model.hw.spec`; the names below are re-exported for the many callers that import them from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.hw.spec import BEATS_PER_FRAME, MACS_PER_OUTPUT, N_OUTPUTS, PIXELS_PER_BEAT, H, K, W

__all__ = [  # the geometry is re-exported: many callers import it from the golden model
    "H", "W", "K", "PIXELS_PER_BEAT", "BEATS_PER_FRAME", "N_OUTPUTS", "MACS_PER_OUTPUT",
    "ConvConfig", "FrameResult", "ZP_GRID2", "ZP_CHECKER", "ZP_PATTERNS", "anchors", "wrap_int32", "accumulate",
    "requantize", "conv2d", "frame_result", "frame_to_beats", "beats_to_frame",
    "mask_words", "mask_bytes", "avg_words", "random_config",
]  # fmt: skip


# Zero-value prediction patterns (ZP_CONFIG.PATTERN): which positions are anchors, always computed.
ZP_GRID2 = 0  # row and column both even: 1/4 of the positions
ZP_CHECKER = 1  # row + column even: 1/2 of the positions
ZP_PATTERNS = {"grid2": ZP_GRID2, "checker": ZP_CHECKER}


def anchors(pattern: int) -> np.ndarray:
    """(64, 64) bool: the anchor positions of a prediction pattern."""
    y, x = np.indices((H, W))
    if pattern == ZP_GRID2:
        return (y % 2 == 0) & (x % 2 == 0)
    if pattern == ZP_CHECKER:
        return (y + x) % 2 == 0
    raise ValueError(f"prediction pattern {pattern!r}: use {ZP_GRID2} (GRID2) or {ZP_CHECKER} (CHECKER)")


@dataclass(frozen=True)
class ConvConfig:
    """One instance's configuration: the contents of its registers (rtl/README.md)."""

    weights: np.ndarray  # (3, 3) int8
    bias: int  # int32
    mult: int  # M, unsigned 16-bit
    shift: int  # S in [0, 31]
    mask: np.ndarray  # (64, 64) bool, True = compressed
    avg: np.ndarray  # (64, 64) uint8, emitted where mask is True
    skip_en: bool = True
    zp_en: bool = False  # zero-value prediction (CONTROL.ZP_EN)
    zp_pattern: int = ZP_GRID2  # ZP_CONFIG.PATTERN
    zp_max: int = 0  # ZP_CONFIG.ZP_MAX: anchors at or below it count as zero

    def __post_init__(self) -> None:
        w = np.asarray(self.weights)
        if w.shape != (K, K) or w.min() < -128 or w.max() > 127:
            raise ValueError(f"weights must be a 3x3 array of int8 values, got shape {w.shape}")
        if not -(2**31) <= int(self.bias) < 2**31:
            raise ValueError(f"bias {self.bias} does not fit int32")
        if not 0 <= int(self.mult) < 2**16:
            raise ValueError(f"mult (M) {self.mult} must be an unsigned 16-bit value")
        if not 0 <= int(self.shift) <= 31:
            raise ValueError(f"shift (S) {self.shift} must lie in [0, 31]")
        if np.asarray(self.mask).shape != (H, W) or np.asarray(self.avg).shape != (H, W):
            raise ValueError(f"mask and avg must both have shape ({H}, {W})")
        a = np.asarray(self.avg)
        if a.min() < 0 or a.max() > 255:
            raise ValueError("avg values must be uint8 (0..255)")
        if self.zp_pattern not in (ZP_GRID2, ZP_CHECKER):
            raise ValueError(f"zp_pattern {self.zp_pattern!r} must be {ZP_GRID2} (GRID2) or {ZP_CHECKER} (CHECKER)")
        if not 0 <= int(self.zp_max) <= 255:
            raise ValueError(f"zp_max {self.zp_max} must be a uint8 value (0..255)")

    @property
    def effective_mask(self) -> np.ndarray:
        """Positions that are really skipped: none when SKIP_EN = 0."""
        return np.asarray(self.mask, dtype=bool) & bool(self.skip_en)

    @property
    def computed_outputs(self) -> int:
        """Outputs computed per frame; with prediction on that depends on the frame (`frame_result`)."""
        if self.zp_en:
            raise ValueError("with zero-value prediction the computed outputs depend on the frame: use frame_result()")
        return int(N_OUTPUTS - self.effective_mask.sum())


@dataclass(frozen=True)
class FrameResult:
    """What one instance emits for one frame, and how each position got its value."""

    ofmap: np.ndarray  # (64, 64) uint8
    compressed: np.ndarray  # (64, 64) bool: emitted the average, no MACs
    predicted: np.ndarray  # (64, 64) bool: predicted zero, no MACs
    anchors: np.ndarray  # (64, 64) bool: anchors of the pattern (all False with prediction off)

    @property
    def computed(self) -> np.ndarray:
        return ~self.compressed & ~self.predicted

    @property
    def computed_outputs(self) -> int:
        return int(self.computed.sum())

    @property
    def predicted_outputs(self) -> int:
        return int(self.predicted.sum())

    @property
    def macs(self) -> int:
        return MACS_PER_OUTPUT * self.computed_outputs


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap to int32, as the hardware accumulator does."""
    return ((np.asarray(x, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def accumulate(ifmap: np.ndarray, weights: np.ndarray, bias: int) -> np.ndarray:
    """int32 accumulator of a 3x3 'same' correlation with zero padding (before requantization)."""
    x = np.asarray(ifmap, dtype=np.int64)
    if x.shape != (H, W):
        raise ValueError(f"IFMAP must have shape ({H}, {W}), got {x.shape}")
    padded = np.pad(x, 1)
    acc = np.full((H, W), int(bias), dtype=np.int64)
    w = np.asarray(weights, dtype=np.int64)
    for ky in range(K):
        for kx in range(K):
            acc += w[ky, kx] * padded[ky : ky + H, kx : kx + W]
    return wrap_int32(acc)


def requantize(acc: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """clamp((acc*M + R) >> S, 0, 255) with R = 1 << (S-1) (0 for S = 0) and a floor shift."""
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    scaled = (np.asarray(acc, dtype=np.int64) * int(mult) + rounding) >> int(shift)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def frame_result(ifmap: np.ndarray, cfg: ConvConfig) -> FrameResult:
    """The OFMAP of one frame with the rule of every position (rtl/README.md, arithmetic and prediction).

    1. compressed (SKIP_EN and mask): the average, no MACs;
    2. with ZP_EN, an anchor of the pattern that is not compressed: computed;
    3. with ZP_EN, any other position: predicted 0 (no MACs) when every anchor within one row and
       one column of it, inside the map, has a value (by rule 1 or 2) of at most ZP_MAX; computed
       otherwise. Without ZP_EN every position that is not compressed is computed.
    """
    out = requantize(accumulate(ifmap, cfg.weights, cfg.bias), cfg.mult, cfg.shift)
    compressed = cfg.effective_mask
    out[compressed] = np.asarray(cfg.avg, dtype=np.uint8)[compressed]
    if not cfg.zp_en:
        none = np.zeros((H, W), dtype=bool)
        return FrameResult(out, compressed, none, none.copy())
    anchor = anchors(cfg.zp_pattern)
    hot = np.pad(anchor & (out > cfg.zp_max), 1)  # anchors whose value is above ZP_MAX
    near_hot = np.zeros((H, W), dtype=bool)
    for dy in range(3):
        for dx in range(3):
            near_hot |= hot[dy : dy + H, dx : dx + W]
    predicted = ~compressed & ~anchor & ~near_hot
    out[predicted] = 0
    return FrameResult(out, compressed, predicted, anchor)


def conv2d(ifmap: np.ndarray, cfg: ConvConfig) -> np.ndarray:
    """The OFMAP one instance emits for one IFMAP frame (uint8, 64x64)."""
    return frame_result(ifmap, cfg).ofmap


# ---------------------------------------------------------------- stream and register packing
def frame_to_beats(frame: np.ndarray) -> list[int]:
    """64x64 uint8 frame -> 512 64-bit beats, pixel 8b+p in bits [8p+7:8p] of beat b."""
    flat = np.ascontiguousarray(np.asarray(frame, dtype=np.uint8).reshape(-1))
    return [int(v) for v in flat.view("<u8")]


def beats_to_frame(beats: list[int]) -> np.ndarray:
    if len(beats) != BEATS_PER_FRAME:
        raise ValueError(f"a frame has {BEATS_PER_FRAME} beats, got {len(beats)}")
    return np.array(beats, dtype="<u8").view(np.uint8).reshape(H, W)


def mask_words(mask: np.ndarray) -> list[int]:
    """MASK[w] register values: bit j of word w is output index 32w + j (1 = compressed)."""
    bits = np.asarray(mask, dtype=bool).reshape(-1)
    packed = np.packbits(bits, bitorder="little")  # byte k holds indices 8k..8k+7
    return [int(v) for v in packed.view("<u4")]


def mask_bytes(mask: np.ndarray) -> bytes:
    """The MASK region as the bytes an AXI4-Lite master writes from 0x400 on (little-endian words)."""
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1), bitorder="little").tobytes()


def avg_words(avg: np.ndarray) -> list[int]:
    """AVG[w] register values: byte k of word w is output index 4w + k."""
    flat = np.ascontiguousarray(np.asarray(avg, dtype=np.uint8).reshape(-1))
    return [int(v) for v in flat.view("<u4")]


def random_config(rng: np.random.Generator, density: float, *, skip_en: bool = True) -> ConvConfig:
    """A random but sensible configuration: outputs spread over 0..255 rather than all clamped."""
    weights = rng.integers(-128, 128, size=(K, K))
    bias = int(rng.integers(-20000, 20000))
    # Typical |acc| is a few 10^4: pick M, S so that maps it near the uint8 range.
    shift = int(rng.integers(12, 20))
    mult = int(rng.integers(1, 2 ** (shift - 7)))
    mask = rng.random((H, W)) < density
    avg = rng.integers(0, 256, size=(H, W))
    return ConvConfig(weights, bias, mult, shift, mask, avg, skip_en)
