"""The `xrt` backend: a job on an Alveo card through XRT's Python binding, `pyxrt`.

One kernel object per compute unit. `v++ --connectivity.nk velcro_krnl:16` names the units velcro_krnl_1
to velcro_krnl_16, and a kernel opened as "velcro_krnl:{velcro_krnl_<i>}" drives exactly that unit.
A run's buffers are allocated in the memory banks its arguments are connected to on its planned unit
(`kernel.group_id(argument index)`), so each unit works in its own HBM pseudo-channels. The arguments
follow `model.hw.spec.KERNEL_ARGS` (cfg, ifmap, ofmap, n_frames).

Dispatch: every run's buffers are allocated, written and synced to the device first. Then the first
run of every unit is started, and the host polls the runs in flight (`run.state()`); when a unit's run
completes, the host starts that unit's next run in the job's order, then reads the completed run's
image and OFMAPs back while the next one computes. At most one run is in flight per unit: XRT would
queue a second start, but the unit's ap_start waits for its previous run anyway, so queueing gains
nothing on the card and would hide the dispatch latency, from a run's completion to the next start,
that `host/schedule.py` plans with; one run in flight per unit keeps the planned order and that
latency honest. A card measures no cycles, so the result has none (`wall_s` is the dispatch loop's
wall time, from the first start to the last read-back).

pyxrt is not on PyPI: it comes with an XRT install, whose `setup.sh` puts it on PYTHONPATH. It is
imported only here, and the tests pass a stand-in module with the same calls instead.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from host.backends import DeviceResult
from model.errors import VelcroError
from model.hw.image import frames_buffer, frames_from_buffer
from model.hw.job import KernelJob
from model.hw.spec import FRAME_BYTES, IMAGE_BYTES, INSTANCES, KERNEL_ARGS, KERNEL_NAME

ARG_INDEX = {arg.name: i for i, arg in enumerate(KERNEL_ARGS)}
# A frame takes at most ~14 µs at 300 MHz; a run that has not completed this long after its start has hung.
TIMEOUT_MS = 10_000

# XRT's `enum ert_cmd_state` (ert.h), what `run.state()` returns. pyxrt binds it as `pyxrt.ert_cmd_state`
# but leaves ERT_CMD_STATE_RUNNING unnamed, so states are compared by value.
ERT_CMD_STATES = {1: "NEW", 2: "QUEUED", 3: "RUNNING", 4: "COMPLETED", 5: "ERROR", 6: "ABORT", 7: "SUBMITTED",
                  8: "TIMEOUT", 9: "NORESPONSE", 10: "SKERROR", 11: "SKCRASHED"}  # fmt: skip
COMPLETED = 4
# Still on its way: new, queued, submitted to the unit (another of XRT's scheduler states) or running.
IN_FLIGHT = frozenset({1, 2, 3, 7})


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


def state_name(code: int) -> str:
    return f"ERT_CMD_STATE_{ERT_CMD_STATES[code]}" if code in ERT_CMD_STATES else f"unknown state {code}"


@dataclass
class _InFlight:
    run: int  # index in the job
    handle: object  # the pyxrt run
    started: float  # time.perf_counter() at its start


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
        needed = int(job.units.max()) + 1 if job.runs else 0
        if needed > self.compute_units:
            raise VelcroError(f"the plan needs {needed} compute units, the card has {self.compute_units} "
                              f"({self.xclbin.name}): plan for {self.compute_units} units")  # fmt: skip
        device, kernels = self._open()
        buffers = [self._buffers(device, kernels[int(job.units[r])], job, r) for r in range(job.runs)]
        queues: dict[int, list[int]] = {}  # per unit, its runs in the job's order
        for r in range(job.runs):
            queues.setdefault(int(job.units[r]), []).append(r)
        images, ofmaps = job.images.copy(), np.empty_like(job.ifmaps)
        start = time.perf_counter()
        in_flight = {unit: self._start(kernels[unit], job, runs.pop(0), buffers) for unit, runs in queues.items()}
        while in_flight:
            for unit, flight in list(in_flight.items()):
                code = int(flight.handle.state())
                if code == COMPLETED:
                    del in_flight[unit]
                    if queues[unit]:  # start the unit's next run before reading this one back
                        in_flight[unit] = self._start(kernels[unit], job, queues[unit].pop(0), buffers)
                    self._read_back(job, flight.run, buffers[flight.run], images, ofmaps)
                elif code not in IN_FLIGHT:
                    raise VelcroError(f"compute unit {compute_unit(unit)} ended run {flight.run} of the job in "
                                      f"{state_name(code)}, not completed: check the card with `xbutil examine` "
                                      "and the xclbin")  # fmt: skip
                elif (time.perf_counter() - flight.started) * 1000 > TIMEOUT_MS:
                    raise VelcroError(f"compute unit {compute_unit(unit)} has not completed run {flight.run} of the "
                                      f"job within {TIMEOUT_MS} ms of its start (still {state_name(code)}): it hangs; "
                                      "check the card with `xbutil examine` and the xclbin")  # fmt: skip
        return DeviceResult(images, ofmaps, time.perf_counter() - start)

    def _buffers(self, device, kernel, job: KernelJob, run: int) -> dict:
        """Run `run`'s buffers in `kernel`'s banks, its image and IFMAPs written and synced to the device.
        A run without frames still gets a frame's worth (XRT allocates no empty buffer; the kernel
        touches none of it)."""
        xrt = self.xrt
        n = int(job.n_frames[run])
        sizes = {"cfg": IMAGE_BYTES, "ifmap": max(n, 1) * FRAME_BYTES, "ofmap": max(n, 1) * FRAME_BYTES}
        contents = {"cfg": np.ascontiguousarray(job.images[run])}
        if n:
            contents["ifmap"] = frames_buffer(job.ifmaps[job.frames(run)])
        bos = {}
        for arg in (a for a in KERNEL_ARGS if a.pointer):
            bo = xrt.bo(device, sizes[arg.name], xrt.bo.normal, kernel.group_id(ARG_INDEX[arg.name]))
            if arg.name in contents:
                bo.write(contents[arg.name], 0)
                bo.sync(xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, sizes[arg.name], 0)
            bos[arg.name] = bo
        return bos

    def _start(self, kernel, job: KernelJob, run: int, buffers: list[dict]) -> _InFlight:
        bos, n = buffers[run], int(job.n_frames[run])
        started = time.perf_counter()
        return _InFlight(run, kernel(*(bos[a.name] if a.pointer else n for a in KERNEL_ARGS)), started)

    def _read_back(self, job: KernelJob, run: int, bos: dict, images: np.ndarray, ofmaps: np.ndarray) -> None:
        """The image with the counters the kernel wrote back, and the OFMAPs, of a completed run."""
        sync = self.xrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE
        bos["cfg"].sync(sync, IMAGE_BYTES, 0)
        images[run] = np.asarray(bos["cfg"].read(IMAGE_BYTES, 0)).view(np.uint8)
        n = int(job.n_frames[run])
        if n:
            size = n * FRAME_BYTES
            bos["ofmap"].sync(sync, size, 0)
            ofmaps[job.frames(run)] = frames_from_buffer(np.asarray(bos["ofmap"].read(size, 0)).view(np.uint8), n)
