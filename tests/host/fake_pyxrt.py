"""A stand-in for XRT's `pyxrt` with the calls host/backends/xrt.py makes, for machines without a card.

It checks what a card would reject or silently get wrong: compute-unit names, buffer flags, sizes
and memory banks (every argument of every unit gets its own group id here, so a buffer in the wrong
bank or an argument out of order is caught), a sync to the device after every write and before the
run, the argument order of `kernel(...)`, and the host's dispatch rule: at most one run in flight per
compute unit (starting a unit whose previous run the host has not yet seen complete is an error), no
buffer of a run in flight written or synced. A run computes with the golden model from what "device
memory" holds when it starts: the unit decodes its configuration image
(`model.hw.image.config_from_image`) and, when the run completes, has written the OFMAPs and FRAMES
and the LAST_* counters of its last frame into the image (LAST_CYCLES from the cycle model's
isolated-frame latency; all 0 for a run without frames, as rtl/README.md says).

Runs take time: a run of n frames on unit u reports ERT_CMD_STATE_RUNNING for `polls_per_frame[u]`
· n + 1 calls of `run.state()` and then its end state (COMPLETED, or `ends[u]`; an end state of
"RUNNING" is a unit that hangs). `run.wait(timeout)` ends it at once. Like pyxrt's `ert_cmd_state`,
whose binding names no RUNNING state, states are `ErtState` values that `int()` turns into ert.h's
numbers. Every call lands in `log`; units in the "start" and "done" events count from 0, as
`KernelJob.units`, and `started` keeps every start's (unit, image, IFMAPs) as device memory held them.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping, Sequence

import numpy as np

from model.hw import cycles, golden
from model.hw.image import config_from_image
from model.hw.spec import FRAME_BYTES, H, IMAGE_BYTES, KERNEL_ARGS, KERNEL_NAME, REG, W

TO_DEVICE, FROM_DEVICE = 0, 1
CU_NAME = re.compile(rf"^{KERNEL_NAME}:\{{{KERNEL_NAME}_(\d+)\}}$")
# ert.h's enum ert_cmd_state
ERT = {"NEW": 1, "QUEUED": 2, "RUNNING": 3, "COMPLETED": 4, "ERROR": 5, "ABORT": 6, "SUBMITTED": 7, "TIMEOUT": 8,
       "NORESPONSE": 9, "SKERROR": 10, "SKCRASHED": 11}  # fmt: skip
TERMINAL = {ERT[s] for s in ("COMPLETED", "ERROR", "ABORT", "TIMEOUT", "NORESPONSE", "SKERROR", "SKCRASHED")}


class ErtState:
    """A value of pyxrt's `ert_cmd_state` (a pybind11 enum): `int()` gives ert.h's number."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __int__(self) -> int:
        return self.value

    def __eq__(self, other) -> bool:
        return isinstance(other, ErtState) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        names = [n for n, v in ERT.items() if v == self.value and n != "RUNNING"]
        return f"<ert_cmd_state.{'ERT_CMD_STATE_' + names[0] if names else '???'}: {self.value}>"


def make_pyxrt(compute_units: int = 16, *, polls_per_frame: Sequence[int] | None = None,
               ends: Mapping[int, str] | None = None) -> SimpleNamespace:  # fmt: skip
    """A fresh stand-in module; `module.log` lists every call as (name, details...). A run of n frames
    on unit u (0-based) completes after `polls_per_frame[u]` · n + 1 polls (default 1 per frame), and
    ends in `ends[u]` (a name of ert.h's states, default "COMPLETED"; "RUNNING" never ends)."""
    log: list[tuple] = []
    started: list[tuple[int, np.ndarray, np.ndarray]] = []
    speed = list(polls_per_frame) if polls_per_frame is not None else [1] * compute_units
    assert len(speed) == compute_units and all(s >= 0 for s in speed), "one polls_per_frame >= 0 per unit"
    ends = dict(ends or {})
    assert all(name in ERT and (ERT[name] in TERMINAL or name == "RUNNING") for name in ends.values()), (
        f"end states are ert.h's final ones, or RUNNING: {ends}")

    class xclbin:
        def __init__(self, path: str) -> None:
            assert isinstance(path, str) and Path(path).is_file(), f"xclbin({path!r}): no such file"
            self.path = path
            log.append(("xclbin", path))

    class uuid:
        pass

    class device:
        def __init__(self, index: int) -> None:
            assert isinstance(index, int), f"device({index!r}): an index"
            self.uuid = None
            log.append(("device", index))

        def load_xclbin(self, binary: xclbin) -> uuid:
            assert isinstance(binary, xclbin), "load_xclbin takes a pyxrt.xclbin"
            self.uuid = uuid()
            log.append(("load_xclbin", binary.path))
            return self.uuid

    class bo:
        normal = "normal"

        def __init__(self, dev: device, size: int, flags, group: int) -> None:
            assert isinstance(dev, device) and flags == bo.normal, "bo(device, size, bo.normal, group)"
            assert size > 0, f"a {size}-byte buffer"
            self.size, self.group = size, group
            self.host = np.zeros(size, dtype=np.uint8)
            self.device = np.full(size, 0xA5, dtype=np.uint8)  # what a card's memory may hold
            self.unsynced = False
            self.run: run | None = None  # the run using it, once started
            log.append(("bo", size, group))

        def _idle(self, what: str) -> None:
            busy = self.run is not None and not self.run.ended
            assert not busy, f"{what} buffer {self.group} while its run on unit {self.run.unit} is in flight"

        def write(self, data, seek: int) -> None:
            data = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
            assert seek == 0 and data.size == self.size, f"write of {data.size} bytes at {seek} into {self.size}"
            self._idle("write to")
            self.host[:] = data
            self.unsynced = True
            log.append(("write", self.group, data.size))

        def sync(self, direction: int, size: int, offset: int) -> None:
            assert direction in (TO_DEVICE, FROM_DEVICE) and (size, offset) == (self.size, 0), "sync the whole buffer"
            self._idle("sync of")
            if direction == TO_DEVICE:
                self.device[:] = self.host
                self.unsynced = False
            else:
                self.host[:] = self.device
            log.append(("sync", self.group, "to_device" if direction == TO_DEVICE else "from_device"))

        def read(self, size: int, skip: int) -> np.ndarray:
            assert (size, skip) == (self.size, 0), "read the whole buffer"
            return self.host.view(np.int8).copy()  # pyxrt hands back a char array

    class run:
        """One start of a unit: RUNNING for `polls` calls of state(), then its end state."""

        def __init__(self, unit: int, n: int, buffers: dict[str, bo], results: list) -> None:
            self.unit, self.n, self.buffers, self.results = unit, n, buffers, results
            self.polls = speed[unit] * n + 1
            self.end = ERT[ends.get(unit, "COMPLETED")]
            self.ended = False  # the host has seen it end (state() or wait() returned a terminal state)
            for b in buffers.values():
                b.run = self

        def _finish(self) -> ErtState:
            """The unit's end: on completion device memory holds the OFMAPs and the counters."""
            if self.end == ERT["RUNNING"]:
                return ErtState(self.end)  # hangs
            if not self.ended:
                self.ended = True
                if self.end == ERT["COMPLETED"]:
                    self._write_results()
                log.append(("done", self.unit))
            return ErtState(self.end)

        def _write_results(self) -> None:
            image = self.buffers["cfg"].device
            if self.n:
                self.buffers["ofmap"].device[:] = np.stack([r.ofmap for r in self.results]).reshape(-1)
            last = self.results[-1] if self.n else None
            counters = {"FRAMES": self.n, "LAST_CYCLES": cycles.frame_latency(last.computed_outputs) if last else 0,
                        "LAST_MACS": last.macs if last else 0, "LAST_COMPUTED": last.computed_outputs if last else 0,
                        "LAST_PREDICTED": last.predicted_outputs if last else 0}  # fmt: skip
            for name, value in counters.items():
                image[REG[name].offset : REG[name].end] = np.frombuffer(int(value).to_bytes(4, "little"), np.uint8)

        def state(self) -> ErtState:
            if self.polls > 0:
                self.polls -= 1
                return ErtState(ERT["RUNNING"])
            return self._finish()

        def wait(self, timeout_ms: int) -> ErtState:
            assert timeout_ms > 0
            log.append(("wait", self.unit))
            self.polls = 0
            return self._finish()

    class kernel:
        shared = "shared"

        def __init__(self, dev: device, xclbin_uuid: uuid, name: str, mode) -> None:
            match = CU_NAME.match(name)
            assert match and 1 <= int(match[1]) <= compute_units, f"no compute unit {name!r} in the xclbin"
            assert xclbin_uuid is dev.uuid and mode == kernel.shared, "kernel(device, loaded uuid, name, shared)"
            self.unit = int(match[1]) - 1  # 0-based, as KernelJob.units
            self.current: run | None = None
            log.append(("kernel", name))

        def group_id(self, index: int) -> int:
            assert 0 <= index < len(KERNEL_ARGS) and KERNEL_ARGS[index].pointer, f"argument {index} is not a buffer"
            return 100 * (self.unit + 1) + index

        def __call__(self, *args) -> run:
            assert self.current is None or self.current.ended, (
                f"unit {self.unit} started while its previous run is in flight: at most one run in flight per unit")
            assert len(args) == len(KERNEL_ARGS), f"{len(args)} arguments, the kernel has {len(KERNEL_ARGS)}"
            buffers = {a.name: v for a, v in zip(KERNEL_ARGS, args) if a.pointer}
            (n,) = (v for a, v in zip(KERNEL_ARGS, args) if not a.pointer)
            for i, (arg, value) in enumerate(zip(KERNEL_ARGS, args)):
                if arg.pointer:
                    assert isinstance(value, bo) and value.group == self.group_id(i), f"{arg.name}: a buffer in its bank"
                    assert not value.unsynced, f"{arg.name} written but not synced to the device"
                    value._idle("a start with")
            assert isinstance(n, int) and n >= 0
            # the kernel moves n frames; a run without frames still needs buffers, which it never touches
            frames = max(n, 1) * FRAME_BYTES
            sizes = {"cfg": IMAGE_BYTES, "ifmap": frames, "ofmap": frames}
            assert {k: b.size for k, b in buffers.items()} == sizes, "buffer sizes"
            cfg = config_from_image(buffers["cfg"].device)
            ifmaps = buffers["ifmap"].device[: n * FRAME_BYTES].reshape(n, H, W).copy()
            results = [golden.frame_result(x, cfg) for x in ifmaps]
            started.append((self.unit, buffers["cfg"].device.copy(), ifmaps))
            log.append(("start", self.unit, n))
            self.current = run(self.unit, n, buffers, results)
            return self.current

    return SimpleNamespace(
        device=device, xclbin=xclbin, kernel=kernel, bo=bo, log=log, started=started,
        xclBOSyncDirection=SimpleNamespace(XCL_BO_SYNC_BO_TO_DEVICE=TO_DEVICE, XCL_BO_SYNC_BO_FROM_DEVICE=FROM_DEVICE),
        ert_cmd_state=SimpleNamespace(**{f"ERT_CMD_STATE_{k}": ErtState(v) for k, v in ERT.items() if k != "RUNNING"}),
    )  # fmt: skip
