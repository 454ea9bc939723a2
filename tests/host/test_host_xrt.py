"""The xrt backend against a stand-in of pyxrt (tests/host/fake_pyxrt.py): the calls a card needs, in
the right order, with the right sizes, banks and sync directions, and the results read back right.
No card or XRT is used here; the stand-in computes with the golden model from the images it is given."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
from fake_pyxrt import make_pyxrt

from host.api import make_backend, run_layers
from host.backends.xrt import XrtBackend, compute_unit
from model.deploy.quantize import golden_runner
from model.errors import VelcroError
from model.hw import golden
from model.hw.image import config_from_image, config_image
from model.hw.spec import FRAME_BYTES, IMAGE_BYTES, INSTANCES, REG

FRAMES = 3


@pytest.fixture
def layer():
    """16 random channel configurations (mask densities 0 to 0.9, two with prediction) and their IFMAPs."""
    rng = np.random.default_rng(2021)
    configs = [golden.random_config(rng, d) for d in np.linspace(0, 0.9, INSTANCES)]
    configs[3] = dataclasses.replace(configs[3], zp_en=True, zp_max=40)
    configs[9] = dataclasses.replace(configs[9], zp_en=True, zp_pattern=golden.ZP_CHECKER, zp_max=0)
    return configs, rng.integers(0, 256, (INSTANCES, FRAMES, golden.H, golden.W), dtype=np.uint8)


@pytest.fixture
def xclbin(tmp_path):
    path = tmp_path / "velcro_krnl.xclbin"
    path.write_bytes(b"stand-in")
    return path


def test_sixteen_units_in_flight_on_their_own_banks(layer, xclbin):
    configs, ifmaps = layer
    xrt = make_pyxrt()
    (run,) = run_layers([configs], ifmaps, XrtBackend(xclbin, pyxrt=xrt))
    assert np.array_equal(run.ofmaps, golden_runner(configs, ifmaps))
    assert [c["FRAMES"] for c in run.counters] == [FRAMES] * INSTANCES  # run_layers checked the LAST_* ones

    log = xrt.log
    assert log[:3] == [("device", 0), ("xclbin", str(xclbin)), ("load_xclbin", str(xclbin))]
    assert [e[1] for e in log if e[0] == "kernel"] == [compute_unit(i) for i in range(INSTANCES)]
    starts = [i for i, e in enumerate(log) if e[0] == "start"]
    waits = [i for i, e in enumerate(log) if e[0] == "wait"]
    assert [log[i][1] for i in starts] == list(range(1, INSTANCES + 1))
    assert max(starts) < min(waits), "every unit must be started before the first is waited for"
    buffer_events = [(i, e) for i, e in enumerate(log) if e[0] in ("bo", "write", "sync")]
    for unit in range(1, INSTANCES + 1):
        cfg, ifmap, ofmap = (100 * unit + arg for arg in range(3))  # the stand-in's bank of each argument
        mine = [(i, e) for i, e in buffer_events if _bank(e) in (cfg, ifmap, ofmap)]
        events = [e for _, e in mine]
        assert {e for e in events if e[0] == "bo"} == {
            ("bo", IMAGE_BYTES, cfg), ("bo", FRAMES * FRAME_BYTES, ifmap), ("bo", FRAMES * FRAME_BYTES, ofmap)}
        assert not any(e[0] == "write" and e[1] == ofmap for e in events), "the OFMAP buffer is the kernel's to write"
        start, wait = starts[unit - 1], waits[unit - 1]
        assert [e for i, e in mine if i < start and e[0] == "sync"] == [("sync", cfg, "to_device"), ("sync", ifmap, "to_device")]
        assert [e for i, e in mine if i > wait and e[0] == "sync"] == [("sync", cfg, "from_device"), ("sync", ofmap, "from_device")]


def _bank(event: tuple) -> int:
    """The group id of the buffer a ("bo", size, group), ("write", group, size) or ("sync", group, direction) is about."""
    return event[2] if event[0] == "bo" else event[1]


def test_more_units_than_the_card_runs_in_waves(layer, xclbin):
    configs, ifmaps = layer
    xrt = make_pyxrt()
    other = [dataclasses.replace(c, skip_en=False) for c in configs]
    first, second = run_layers([configs, other], ifmaps, XrtBackend(xclbin, pyxrt=xrt))
    assert np.array_equal(first.ofmaps, golden_runner(configs, ifmaps))
    assert np.array_equal(second.ofmaps, golden_runner(other, ifmaps))
    kinds = [e[0] for e in xrt.log if e[0] in ("start", "wait")]
    assert kinds == ["start"] * INSTANCES + ["wait"] * INSTANCES + ["start"] * INSTANCES + ["wait"] * INSTANCES
    assert sum(e[0] == "load_xclbin" for e in xrt.log) == 1, "the xclbin is loaded once per backend"


def test_a_unit_that_does_not_complete_is_named(layer, xclbin, monkeypatch):
    configs, ifmaps = layer
    xrt = make_pyxrt()
    monkeypatch.setattr(xrt.ert_cmd_state, "ERT_CMD_STATE_COMPLETED", -1)  # no run reaches it
    with pytest.raises(VelcroError, match=r"velcro_krnl:\{velcro_krnl_1\} ended in state .*xbutil examine"):
        run_layers([configs], ifmaps, XrtBackend(xclbin, pyxrt=xrt))


def test_without_pyxrt_the_error_names_xrt_and_its_setup(xclbin, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyxrt", None)  # import pyxrt fails, as on a machine without XRT
    with pytest.raises(VelcroError, match=r"pyxrt.*XRT.*source /opt/xilinx/xrt/setup\.sh.*--device sim"):
        make_backend("xrt", xclbin=xclbin)


def test_xclbin_must_exist(tmp_path):
    with pytest.raises(VelcroError, match="make xclbin"):
        XrtBackend(tmp_path / "missing.xclbin", pyxrt=make_pyxrt())
    with pytest.raises(VelcroError, match="--xclbin"):
        make_backend("xrt")


def test_the_stand_in_decodes_images_as_the_kernel_loads_them(layer):
    """model.hw.image.config_from_image, the stand-in's decoder, inverts config_image and keeps what the
    registers store (ZP_CONFIG.PATTERN 3 stores 0, MULT keeps 16 bits)."""
    configs, _ = layer
    for cfg in configs:
        back = config_from_image(config_image(cfg))
        assert np.array_equal(config_image(back), config_image(cfg))
        assert np.array_equal(back.weights, cfg.weights) and back.bias == cfg.bias
    image = config_image(configs[0])
    image[REG["ZP_CONFIG"].offset] = 3
    image[REG["MULT"].offset + 2] = 0xFF
    assert config_from_image(image).zp_pattern == 0 and config_from_image(image).mult == configs[0].mult
