"""The `xrt` backend: a job on an Alveo card through XRT's Python binding, `pyxrt`.

One compute unit per channel. `v++ --connectivity.nk velcro_krnl:16` names the units velcro_krnl_1
to velcro_krnl_16, and a kernel opened as "velcro_krnl:{velcro_krnl_<i>}" drives exactly that unit.
Every buffer is allocated in the memory bank its argument is connected to on that unit
(`kernel.group_id(argument index)`), so each unit works in its own HBM pseudo-channels. The
arguments follow `model.hw.spec.KERNEL_ARGS` (cfg, ifmap, ofmap, n_frames). All units of a wave
are started before the first is waited for; a job with more units than the card has runs in waves.

pyxrt is not on PyPI: it comes with an XRT install, whose `setup.sh` puts it on PYTHONPATH. It is
imported only here, and the tests pass a stand-in module with the same calls instead.
"""
from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

import numpy as np

from host.backends import DeviceResult
from model.errors import VelcroError
from model.hw.image import frames_buffer, frames_from_buffer
from model.hw.spec import FRAME_BYTES, IMAGE_BYTES, INSTANCES, KERNEL_ARGS, KERNEL_NAME
from sim.harness.kernel_job import KernelJob

ARG_INDEX = {arg.name: i for i, arg in enumerate(KERNEL_ARGS)}
# A frame takes at most ~14 µs at 300 MHz; a unit that has not finished after this has hung.
TIMEOUT_MS = 10_000


def import_pyxrt() -> ModuleType:
    try:
        import pyxrt
    except ImportError as err:
        raise VelcroError(
            f"--device xrt needs XRT's Python binding pyxrt, which is not importable ({err}). Install XRT with "
            "the U280 platform and run `source /opt/xilinx/xrt/setup.sh` in this shell first, or use --device sim"
        ) from None
    return pyxrt


def compute_unit(index: int) -> str:
    """XRT's name of compute unit `index` (0-based): "velcro_krnl:{velcro_krnl_<index + 1>}"."""
    return f"{KERNEL_NAME}:{{{KERNEL_NAME}_{index + 1}}}"


class XrtBackend:
    name = "xrt"

    def __init__(self, xclbin: str | Path, *, device_index: int = 0, compute_units: int = INSTANCES,
                 pyxrt: ModuleType | None = None) -> None:  # fmt: skip
        """`pyxrt` replaces the imported module (the tests' stand-in)."""
        self.xrt = pyxrt if pyxrt is not None else import_pyxrt()
        self.xclbin = Path(xclbin)
        if not self.xclbin.is_file():
            raise VelcroError(f"xclbin {self.xclbin} does not exist: build it with `make xclbin` (needs Vitis)")
        self.device_index = device_index
        self.compute_units = compute_units
        self._opened = None

    def _open(self):
        """The device with the xclbin loaded and one kernel object per compute unit, once."""
        if self._opened is None:
            xrt = self.xrt
            device = xrt.device(self.device_index)
            uuid = device.load_xclbin(xrt.xclbin(str(self.xclbin)))
            kernels = [xrt.kernel(device, uuid, compute_unit(i), xrt.kernel.shared) for i in range(self.compute_units)]
            self._opened = device, kernels
        return self._opened

    def run(self, job: KernelJob) -> DeviceResult:
        device, kernels = self._open()
        units = job.images.shape[0]
        images, ofmaps = job.images.copy(), np.empty_like(job.ifmaps)
        start = time.perf_counter()
        for first in range(0, units, len(kernels)):
            wave = range(first, min(first + len(kernels), units))
            self._run_wave(device, kernels, job, wave, images, ofmaps)
        return DeviceResult(images, ofmaps, time.perf_counter() - start)

    def _run_wave(self, device, kernels, job: KernelJob, wave: range, images: np.ndarray, ofmaps: np.ndarray) -> None:
        """Units `wave` on kernels[0..]: buffers in, all started, all waited for, buffers out."""
        xrt = self.xrt
        sync = xrt.xclBOSyncDirection
        n = job.n_frames
        sizes = {"cfg": IMAGE_BYTES, "ifmap": n * FRAME_BYTES, "ofmap": n * FRAME_BYTES}
        buffers = []
        for kernel, unit in zip(kernels, wave):
            contents = {"cfg": np.ascontiguousarray(job.images[unit]), "ifmap": frames_buffer(job.ifmaps[unit])}
            bos = {}
            for arg in (a for a in KERNEL_ARGS if a.pointer):
                bo = xrt.bo(device, sizes[arg.name], xrt.bo.normal, kernel.group_id(ARG_INDEX[arg.name]))
                if arg.name in contents:
                    bo.write(contents[arg.name], 0)
                    bo.sync(sync.XCL_BO_SYNC_BO_TO_DEVICE, sizes[arg.name], 0)
                bos[arg.name] = bo
            buffers.append(bos)
        runs = [kernel(*(bos[a.name] if a.pointer else n for a in KERNEL_ARGS)) for kernel, bos in zip(kernels, buffers)]
        for slot, run in enumerate(runs):
            state = run.wait(TIMEOUT_MS)
            if state != xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
                raise VelcroError(f"compute unit {compute_unit(slot)} ended in state {state}, not completed, within "
                                  f"{TIMEOUT_MS} ms: check the card with `xbutil examine` and the xclbin")  # fmt: skip
        for bos, unit in zip(buffers, wave):
            bos["cfg"].sync(sync.XCL_BO_SYNC_BO_FROM_DEVICE, IMAGE_BYTES, 0)
            images[unit] = np.asarray(bos["cfg"].read(IMAGE_BYTES, 0)).view(np.uint8)
            bos["ofmap"].sync(sync.XCL_BO_SYNC_BO_FROM_DEVICE, sizes["ofmap"], 0)
            ofmaps[unit] = frames_from_buffer(np.asarray(bos["ofmap"].read(sizes["ofmap"], 0)).view(np.uint8), n)
