"""A kernel job: the runs a host hands to `velcro_krnl` compute units, and what came back.

A run is one start of one compute unit (rtl/README.md, section 9): a configuration image
(model/hw/image.py) and the IFMAPs of its frames. A job lists runs in dispatch order, each with
the compute unit it is planned for; a unit runs its runs one after another, in the job's order.
Every start resets the instance, so runs are independent of each other and of where they ran: the
simulated kernel may run them in any order and in any process, a card runs them as planned.

The job and its result travel as npz files between the host and the simulated kernel's bench
(sim/benches/tb_krnl.py::test_host_job); all cycles of a result count the bench's clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.hw.spec import IMAGE_BYTES, H, W


@dataclass
class KernelJob:
    images: np.ndarray  # (runs, IMAGE_BYTES) uint8
    ifmaps: np.ndarray  # (frames, 64, 64) uint8: every run's frames, run after run
    n_frames: np.ndarray  # (runs,) int64: frames of each run
    units: np.ndarray  # (runs,) int64: the compute unit each run is planned for

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images, dtype=np.uint8)
        self.ifmaps = np.asarray(self.ifmaps)
        self.n_frames = np.asarray(self.n_frames, dtype=np.int64).reshape(-1)
        self.units = np.asarray(self.units, dtype=np.int64).reshape(-1)
        runs = self.images.shape[0]
        if self.images.shape != (runs, IMAGE_BYTES):
            raise ValueError(f"images must be (runs, {IMAGE_BYTES}) uint8, got {self.images.shape}")
        if self.ifmaps.ndim != 3 or self.ifmaps.shape[1:] != (H, W) or self.ifmaps.dtype != np.uint8:
            raise ValueError(f"ifmaps must be (frames, {H}, {W}) uint8, got {self.ifmaps.shape} {self.ifmaps.dtype}")
        if self.n_frames.shape != (runs,) or self.units.shape != (runs,):
            raise ValueError(f"n_frames and units need one entry per run ({runs}), got {self.n_frames.shape} and {self.units.shape}")
        if (self.n_frames < 0).any() or self.n_frames.sum() != self.ifmaps.shape[0]:
            raise ValueError(f"the runs' frames ({self.n_frames.tolist()}) must add up to the {self.ifmaps.shape[0]} IFMAPs")
        if (self.units < 0).any():
            raise ValueError(f"compute units are numbered from 0, got {self.units.tolist()}")

    @property
    def runs(self) -> int:
        return self.images.shape[0]

    def frames(self, run: int) -> slice:
        """Where run `run`'s frames sit in `ifmaps` (and its OFMAPs in a result's `ofmaps`)."""
        first = int(self.n_frames[:run].sum())
        return slice(first, first + int(self.n_frames[run]))

    def subset(self, runs: np.ndarray) -> KernelJob:
        """The runs `runs` (indices, in that order) as a job of their own."""
        ifmaps = [self.ifmaps[self.frames(r)] for r in runs]
        return KernelJob(self.images[runs], np.concatenate(ifmaps) if ifmaps else self.ifmaps[:0],
                         self.n_frames[runs], self.units[runs])  # fmt: skip

    def save(self, path: Path) -> None:
        np.savez(path, images=self.images, ifmaps=self.ifmaps, n_frames=self.n_frames, units=self.units)

    @classmethod
    def load(cls, path: str | Path) -> KernelJob:
        data = np.load(path)
        return cls(data["images"], data["ifmaps"], data["n_frames"], data["units"])


@dataclass
class KernelResult:
    images: np.ndarray  # (runs, IMAGE_BYTES) uint8: the images after the runs, counters written back
    ofmaps: np.ndarray  # (frames, 64, 64) uint8, in the job's order
    frame_end_cycles: np.ndarray  # (frames,) int64: clock cycle of each frame's last OFMAP beat (W)
    start_cycles: np.ndarray  # (runs,) int64: cycle of the ap_start write's handshake
    done_cycles: np.ndarray  # (runs,) int64: first cycle ap_done was set (the interrupt rose)

    def save(self, path: Path) -> None:
        np.savez(path, images=self.images, ofmaps=self.ofmaps, frame_end_cycles=self.frame_end_cycles,
                 start_cycles=self.start_cycles, done_cycles=self.done_cycles)  # fmt: skip

    @classmethod
    def load(cls, path: str | Path) -> KernelResult:
        data = np.load(path)
        return cls(*(data[f] for f in ("images", "ofmaps", "frame_end_cycles", "start_cycles", "done_cycles")))
