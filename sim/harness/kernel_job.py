"""The npz files that carry a host job into the simulated kernel and its results back.

A job is what the host would hand XRT: per compute unit, a configuration image (model/hw/image.py)
and the IFMAPs of `n_frames` frames. The kernel bench (sim/benches/tb_krnl.py::test_host_job) runs
the compute units one after another on one simulated `velcro_krnl`, with a reset between them so
that each starts from reset as a separate unit on a card does, and writes back what device memory
holds afterwards: the images with their counters, and the OFMAPs. It also records, per unit, the
clock cycle of every frame's last OFMAP beat on the memory bus, from which the host's callers
measure intervals.

All cycles count the bench's clock from the start of the simulation, one count for the whole job.
Device memory has a latency of VELCRO_LATENCY cycles (default 64) and pauses on VELCRO_PAUSE of the
cycles of each channel (default 0, so that the cycles are reproducible); rtl/README.md, section 9.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.hw.spec import IMAGE_BYTES, H, W


@dataclass
class KernelJob:
    images: np.ndarray  # (units, IMAGE_BYTES) uint8
    ifmaps: np.ndarray  # (units, n_frames, 64, 64) uint8

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images, dtype=np.uint8)
        self.ifmaps = np.asarray(self.ifmaps)
        units = self.images.shape[0]
        if self.images.shape != (units, IMAGE_BYTES):
            raise ValueError(f"images must be (units, {IMAGE_BYTES}) uint8, got {self.images.shape}")
        if self.ifmaps.ndim != 4 or self.ifmaps.shape[0] != units or self.ifmaps.shape[2:] != (H, W):
            raise ValueError(f"ifmaps must be ({units}, n_frames, {H}, {W}), got {self.ifmaps.shape}")
        if self.ifmaps.dtype != np.uint8:
            raise ValueError(f"ifmaps must be uint8, got {self.ifmaps.dtype}")

    @property
    def n_frames(self) -> int:
        return self.ifmaps.shape[1]

    def save(self, path: Path) -> None:
        np.savez(path, images=self.images, ifmaps=self.ifmaps)

    @classmethod
    def load(cls, path: str | Path) -> KernelJob:
        data = np.load(path)
        return cls(data["images"], data["ifmaps"])


@dataclass
class KernelResult:
    images: np.ndarray  # (units, IMAGE_BYTES) uint8: the images after the run, counters written back
    ofmaps: np.ndarray  # (units, n_frames, 64, 64) uint8
    frame_end_cycles: np.ndarray  # (units, n_frames) int64: clock cycle of each frame's last OFMAP beat (W)
    start_cycles: np.ndarray  # (units,) int64: cycle of the ap_start write's handshake
    done_cycles: np.ndarray  # (units,) int64: first cycle ap_done was set (the interrupt rose)

    def save(self, path: Path) -> None:
        np.savez(path, images=self.images, ofmaps=self.ofmaps, frame_end_cycles=self.frame_end_cycles,
                 start_cycles=self.start_cycles, done_cycles=self.done_cycles)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> KernelResult:
        data = np.load(path)
        return cls(*(data[f] for f in ("images", "ofmaps", "frame_end_cycles", "start_cycles", "done_cycles")))
