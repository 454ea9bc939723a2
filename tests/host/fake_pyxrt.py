"""A stand-in for XRT's `pyxrt` with the calls host/backends/xrt.py makes, for machines without a card.

It checks what a card would reject or silently get wrong: compute-unit names, buffer flags, sizes
and memory banks (every argument of every unit gets its own group id here, so a buffer in the wrong
bank or an argument out of order is caught), a sync to the device after every write and before the
run, the argument order of `kernel(...)`. A run computes with the golden model from what "device
memory" holds: the unit decodes its configuration image (`model.hw.image.config_from_image`), writes
the OFMAPs and writes FRAMES and the LAST_* counters of its last frame back into the image
(LAST_CYCLES from the cycle model's isolated-frame latency). Every call lands in `log`.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from model.hw import cycles, golden
from model.hw.image import config_from_image
from model.hw.spec import FRAME_BYTES, H, IMAGE_BYTES, KERNEL_ARGS, KERNEL_NAME, REG, W

TO_DEVICE, FROM_DEVICE = 0, 1
COMPLETED = 4
CU_NAME = re.compile(rf"^{KERNEL_NAME}:\{{{KERNEL_NAME}_(\d+)\}}$")


def make_pyxrt(compute_units: int = 16) -> SimpleNamespace:
    """A fresh stand-in module; `module.log` lists every call as (name, details...)."""
    log: list[tuple] = []

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
            log.append(("bo", size, group))

        def write(self, data, seek: int) -> None:
            data = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
            assert seek == 0 and data.size == self.size, f"write of {data.size} bytes at {seek} into {self.size}"
            self.host[:] = data
            self.unsynced = True
            log.append(("write", self.group, data.size))

        def sync(self, direction: int, size: int, offset: int) -> None:
            assert direction in (TO_DEVICE, FROM_DEVICE) and (size, offset) == (self.size, 0), "sync the whole buffer"
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
        def __init__(self, unit: int) -> None:
            self.unit = unit

        def wait(self, timeout_ms: int) -> int:
            assert timeout_ms > 0
            log.append(("wait", self.unit))
            return COMPLETED

    class kernel:
        shared = "shared"

        def __init__(self, dev: device, xclbin_uuid: uuid, name: str, mode) -> None:
            match = CU_NAME.match(name)
            assert match and 1 <= int(match[1]) <= compute_units, f"no compute unit {name!r} in the xclbin"
            assert xclbin_uuid is dev.uuid and mode == kernel.shared, "kernel(device, loaded uuid, name, shared)"
            self.unit = int(match[1])
            log.append(("kernel", name))

        def group_id(self, index: int) -> int:
            assert 0 <= index < len(KERNEL_ARGS) and KERNEL_ARGS[index].pointer, f"argument {index} is not a buffer"
            return 100 * self.unit + index

        def __call__(self, *args) -> run:
            assert len(args) == len(KERNEL_ARGS), f"{len(args)} arguments, the kernel has {len(KERNEL_ARGS)}"
            buffers = {a.name: v for a, v in zip(KERNEL_ARGS, args) if a.pointer}
            (n,) = (v for a, v in zip(KERNEL_ARGS, args) if not a.pointer)
            for i, (arg, value) in enumerate(zip(KERNEL_ARGS, args)):
                if arg.pointer:
                    assert isinstance(value, bo) and value.group == self.group_id(i), f"{arg.name}: a buffer in its bank"
                    assert not value.unsynced, f"{arg.name} written but not synced to the device"
            assert isinstance(n, int) and n >= 1
            sizes = {"cfg": IMAGE_BYTES, "ifmap": n * FRAME_BYTES, "ofmap": n * FRAME_BYTES}
            assert {k: b.size for k, b in buffers.items()} == sizes, "buffer sizes"
            image = buffers["cfg"].device
            cfg = config_from_image(image)
            results = [golden.frame_result(x, cfg) for x in buffers["ifmap"].device.reshape(n, H, W)]
            buffers["ofmap"].device[:] = np.stack([r.ofmap for r in results]).reshape(-1)
            last = results[-1]
            counters = {"FRAMES": n, "LAST_CYCLES": cycles.frame_latency(last.computed_outputs), "LAST_MACS": last.macs,
                        "LAST_COMPUTED": last.computed_outputs, "LAST_PREDICTED": last.predicted_outputs}  # fmt: skip
            for name, value in counters.items():
                image[REG[name].offset : REG[name].end] = np.frombuffer(int(value).to_bytes(4, "little"), np.uint8)
            log.append(("start", self.unit))
            return run(self.unit)

    return SimpleNamespace(
        device=device, xclbin=xclbin, kernel=kernel, bo=bo, log=log,
        xclBOSyncDirection=SimpleNamespace(XCL_BO_SYNC_BO_TO_DEVICE=TO_DEVICE, XCL_BO_SYNC_BO_FROM_DEVICE=FROM_DEVICE),
        ert_cmd_state=SimpleNamespace(ERT_CMD_STATE_COMPLETED=COMPLETED),
    )  # fmt: skip
