"""Backends run a `KernelJob` (model/hw/job.py): runs of `velcro_krnl`, each a configuration image
and its frames on a planned compute unit. `sim` runs them on the simulated kernel, `xrt` on an
Alveo card, each unit's runs in the job's order with at most one in flight per unit.

Either way the answer is a `DeviceResult`: what device memory holds afterwards (every run's image
with the counters the kernel wrote back, and the OFMAPs) and, from the simulation only, the cycles
of every run from its ap_start to its ap_done and the clock cycle at which every frame's last OFMAP
beat reached memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from model.hw.job import KernelJob


@dataclass
class DeviceResult:
    images: np.ndarray  # (runs, IMAGE_BYTES) uint8, counters written back
    ofmaps: np.ndarray  # (frames, 64, 64) uint8, in the job's order
    wall_s: float  # host wall time of the runs (simulation: build and run)
    run_cycles: np.ndarray | None = None  # (runs,) int64: ap_start handshake -> ap_done; simulation only
    frame_end_cycles: np.ndarray | None = None  # (frames,) int64: last OFMAP beat, from the run's start; simulation only


class Backend(Protocol):
    name: str

    def run(self, job: KernelJob) -> DeviceResult: ...
