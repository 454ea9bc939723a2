"""Backends run a `KernelJob` (sim/harness/kernel_job.py): per compute unit, a configuration image and
the IFMAPs of `n_frames` frames. `sim` runs it on the simulated kernel, `xrt` on an Alveo card.

Either way the answer is a `DeviceResult`: what device memory holds afterwards (every image with the
counters the kernel wrote back, and the OFMAPs) and, from the simulation only, the clock cycle at
which every frame's last OFMAP beat reached memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sim.harness.kernel_job import KernelJob


@dataclass
class DeviceResult:
    images: np.ndarray  # (units, IMAGE_BYTES) uint8, counters written back
    ofmaps: np.ndarray  # (units, n_frames, 64, 64) uint8
    wall_s: float  # host wall time of the runs (simulation: build and run)
    frame_end_cycles: np.ndarray | None = None  # (units, n_frames) int64; simulation only


class Backend(Protocol):
    name: str

    def run(self, job: KernelJob) -> DeviceResult: ...
