"""The xrt backend against a stand-in of pyxrt (tests/host/fake_pyxrt.py): the calls a card needs, in
the right order, with the right sizes, banks and sync directions; every run on its planned unit in the
job's order with at most one in flight per unit; and the results read back right. No card or XRT is
used here; the stand-in computes with the golden model from the images it is given."""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
from fake_pyxrt import ERT, make_pyxrt

import host.backends.xrt as xrt_backend
from host.api import ScheduleOptions, layer_job, make_backend, plan_layer, run_layers
from host.backends.xrt import XrtBackend, compute_unit
from model.deploy.quantize import golden_runner
from model.errors import VelcroError
from model.hw import golden
from model.hw.image import config_from_image, config_image
from model.hw.job import KernelJob
from model.hw.spec import FRAME_BYTES, IMAGE_BYTES, INSTANCES, REG

FRAMES = 3
# Units that take different times per frame, so runs complete in another order than they started.
SPEEDS = [1 + (7 * u) % 5 for u in range(INSTANCES)]
LPT = ScheduleOptions(plan="lpt", block=1, dispatch_us=0)


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


def _bank(event: tuple) -> int:
    """The group id of the buffer a ("bo", size, group), ("write", group, size) or ("sync", group, direction) is about."""
    return event[2] if event[0] == "bo" else event[1]


def _one_in_flight(log: list[tuple]) -> None:
    """Every unit's events alternate start, done, start, done, ... and end with a done."""
    for unit in {e[1] for e in log if e[0] == "start"}:
        kinds = [e[0] for e in log if e[0] in ("start", "done") and e[1] == unit]
        assert kinds == ["start", "done"] * (len(kinds) // 2), f"unit {unit}: {kinds}"


def test_one_run_per_unit_on_its_own_banks(layer, xclbin):
    """--schedule fixed: channel c on unit c, one run each, its buffers in the unit's banks, written and
    synced to the device before its start and synced back after it completed."""
    configs, ifmaps = layer
    xrt = make_pyxrt(polls_per_frame=SPEEDS)
    (run,) = run_layers([configs], ifmaps, XrtBackend(xclbin, pyxrt=xrt))
    assert np.array_equal(run.ofmaps, golden_runner(configs, ifmaps))
    assert [c["FRAMES"] for c in run.counters] == [FRAMES] * INSTANCES  # run_layers checked the LAST_* ones

    log = xrt.log
    assert log[:3] == [("device", 0), ("xclbin", str(xclbin)), ("load_xclbin", str(xclbin))]
    assert [e[1] for e in log if e[0] == "kernel"] == [compute_unit(i) for i in range(INSTANCES)]
    starts = {e[1]: i for i, e in enumerate(log) if e[0] == "start"}
    dones = {e[1]: i for i, e in enumerate(log) if e[0] == "done"}
    assert [log[i] for i in starts.values()] == [("start", u, FRAMES) for u in range(INSTANCES)]
    assert max(starts.values()) < min(dones.values()), "every unit's first run starts before any is polled to its end"
    assert sorted(dones, key=dones.get) != list(range(INSTANCES)), "the stand-in's units finish in another order"
    assert not any(e[0] == "wait" for e in log), "the host polls run.state(), it does not block in wait()"
    buffer_events = [(i, e) for i, e in enumerate(log) if e[0] in ("bo", "write", "sync")]
    for unit in range(INSTANCES):
        cfg, ifmap, ofmap = (100 * (unit + 1) + arg for arg in range(3))  # the stand-in's bank of each argument
        mine = [(i, e) for i, e in buffer_events if _bank(e) in (cfg, ifmap, ofmap)]
        events = [e for _, e in mine]
        assert {e for e in events if e[0] == "bo"} == {
            ("bo", IMAGE_BYTES, cfg), ("bo", FRAMES * FRAME_BYTES, ifmap), ("bo", FRAMES * FRAME_BYTES, ofmap)}
        assert not any(e[0] == "write" and e[1] == ofmap for e in events), "the OFMAP buffer is the kernel's to write"
        start, done = starts[unit], dones[unit]
        assert [e for i, e in mine if i < start and e[0] == "sync"] == [("sync", cfg, "to_device"), ("sync", ifmap, "to_device")]
        assert [e for i, e in mine if i > done and e[0] == "sync"] == [("sync", cfg, "from_device"), ("sync", ofmap, "from_device")]


def test_runs_go_to_their_planned_units_in_the_planned_order(layer, xclbin):
    """--schedule lpt with one image per job: several runs per unit, each started on the unit the plan
    chose, a unit's runs in the plan's order, a unit's next run only after its previous one completed."""
    configs, ifmaps = layer
    xrt = make_pyxrt(polls_per_frame=SPEEDS)
    (run,) = run_layers([configs], ifmaps, XrtBackend(xclbin, pyxrt=xrt), LPT, tuning_ifmaps=ifmaps)
    assert np.array_equal(run.ofmaps, golden_runner(configs, ifmaps))
    assert [c["FRAMES"] for c in run.counters] == [job.images for job in run.plan.jobs]

    jobs = run.plan.jobs
    assert len(jobs) == INSTANCES * FRAMES and max(len(run.plan.unit_jobs(u)) for u in range(INSTANCES)) > 1
    for unit in range(INSTANCES):
        planned = [jobs[j] for j in run.plan.unit_jobs(unit)]
        started = [(image, frames) for u, image, frames in xrt.started if u == unit]
        assert [e[2] for e in xrt.log if e[0] == "start" and e[1] == unit] == [j.images for j in planned]
        assert len(started) == len(planned)
        for (image, frames), job in zip(started, planned):
            assert np.array_equal(image, config_image(configs[job.channel])), f"unit {unit}: channel {job.channel}"
            assert np.array_equal(frames, ifmaps[job.channel, job.first_image : job.first_image + job.images])
    _one_in_flight(xrt.log)
    firsts = [e[1] for e in xrt.log if e[0] == "start"][:INSTANCES]
    assert firsts == list(dict.fromkeys(j.unit for j in jobs)), "every unit's first run starts first, in job order"
    start_order = [e[1] for e in xrt.log if e[0] == "start"]
    assert start_order != [j.unit for j in jobs], "units finishing at their own pace start runs out of job order"


def test_two_configurations_share_the_units(layer, xclbin):
    """Two configurations in one job: 32 runs, two per unit, one after the other; the xclbin is loaded
    once per backend, however many jobs it runs."""
    configs, ifmaps = layer
    xrt = make_pyxrt(polls_per_frame=SPEEDS)
    backend = XrtBackend(xclbin, pyxrt=xrt)
    other = [dataclasses.replace(c, skip_en=False) for c in configs]
    first, second = run_layers([configs, other], ifmaps, backend)
    assert np.array_equal(first.ofmaps, golden_runner(configs, ifmaps))
    assert np.array_equal(second.ofmaps, golden_runner(other, ifmaps))
    assert [e[1] for e in xrt.log if e[0] == "start"].count(0) == 2
    _one_in_flight(xrt.log)
    (again,) = run_layers([configs], ifmaps, backend)
    assert np.array_equal(again.ofmaps, first.ofmaps)
    assert sum(e[0] == "load_xclbin" for e in xrt.log) == 1, "the xclbin is loaded once per backend"
    assert sum(e[0] == "kernel" for e in xrt.log) == INSTANCES, "one kernel object per unit, opened once"


def test_a_run_without_frames(layer, xclbin):
    """n_frames = 0 is a start that only loads and writes the counters back: it still gets buffers."""
    configs, ifmaps = layer
    images = np.stack([config_image(configs[0]), config_image(configs[1])])
    job = KernelJob(images, ifmaps[1, :2], [0, 2], [5, 5])
    xrt = make_pyxrt()
    result = XrtBackend(xclbin, pyxrt=xrt).run(job)
    assert [e for e in xrt.log if e[0] == "start"] == [("start", 5, 0), ("start", 5, 2)]
    assert np.array_equal(result.ofmaps, golden_runner(configs, ifmaps)[1, :2])
    assert config_from_image(result.images[0]).bias == configs[0].bias
    frames = slice(REG["FRAMES"].offset, REG["FRAMES"].end)
    assert result.images[0][frames].tolist() == [0] * 4 and result.images[1][frames].tolist() == [2, 0, 0, 0]
    assert result.run_cycles is None and result.frame_end_cycles is None, "a card measures no cycles"


def test_a_job_beyond_the_card_is_refused(layer, xclbin):
    configs, ifmaps = layer
    xrt = make_pyxrt(compute_units=4)
    backend = XrtBackend(xclbin, compute_units=4, pyxrt=xrt)
    with pytest.raises(VelcroError, match=r"the plan needs 16 compute units, the card has 4"):
        run_layers([configs], ifmaps, backend)
    job = layer_job([(configs, plan_layer(configs, ifmaps, ScheduleOptions(plan="fixed")))], ifmaps)
    with pytest.raises(VelcroError, match=r"needs 16 compute units"):
        backend.run(job)
    assert xrt.log == [], "refused before the card is touched"


def test_a_unit_that_ends_in_error_is_named(layer, xclbin):
    configs, ifmaps = layer
    xrt = make_pyxrt(ends={3: "ERROR"})
    with pytest.raises(VelcroError, match=r"velcro_krnl:\{velcro_krnl_4\} ended run 3 .*ERT_CMD_STATE_ERROR"
                                          r".*xbutil examine"):  # fmt: skip
        run_layers([configs], ifmaps, XrtBackend(xclbin, pyxrt=xrt))


def test_a_unit_that_hangs_times_out(layer, xclbin, monkeypatch):
    configs, ifmaps = layer
    monkeypatch.setattr(xrt_backend, "TIMEOUT_MS", 50)
    xrt = make_pyxrt(ends={6: "RUNNING"})
    with pytest.raises(VelcroError, match=r"velcro_krnl:\{velcro_krnl_7\} has not completed run 6 .*within 50 ms"
                                          r".*ERT_CMD_STATE_RUNNING.*xbutil examine"):  # fmt: skip
        run_layers([configs], ifmaps, XrtBackend(xclbin, pyxrt=xrt))
    assert ("done", 6) not in xrt.log and ("done", 5) in xrt.log


def test_the_stand_in_refuses_a_second_run_in_flight(xclbin):
    """The stand-in's dispatch check, called directly: a unit started again before its run completed."""
    xrt = make_pyxrt()
    device = xrt.device(0)
    uuid = device.load_xclbin(xrt.xclbin(str(xclbin)))
    kernel = xrt.kernel(device, uuid, compute_unit(2), xrt.kernel.shared)

    def start():
        bos = [xrt.bo(device, size, xrt.bo.normal, kernel.group_id(i))
               for i, size in enumerate((IMAGE_BYTES, FRAME_BYTES, FRAME_BYTES))]  # fmt: skip
        for b in bos[:2]:
            b.sync(0, b.size, 0)
        return kernel(*bos, 1), bos

    first, bos = start()
    assert int(first.state()) == ERT["RUNNING"]
    with pytest.raises(AssertionError, match="unit 2 started while its previous run is in flight"):
        start()
    with pytest.raises(AssertionError, match="in flight"):
        bos[2].sync(1, FRAME_BYTES, 0)  # reading the OFMAPs back before the run completed
    assert first.wait(1000) == xrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED  # wait() completes it at once
    second, _ = start()
    while int(second.state()) != ERT["COMPLETED"]:
        pass
    events = [e for e in xrt.log if e[0] in ("start", "done")]
    assert events == [("start", 2, 1), ("done", 2), ("start", 2, 1), ("done", 2)]


def test_a_host_that_does_not_wait_for_completion_is_caught(layer, xclbin, monkeypatch):
    """A backend that took a running run for a completed one would start the unit's next run while the
    previous is in flight: the stand-in's check fires."""
    configs, ifmaps = layer
    monkeypatch.setattr(xrt_backend, "COMPLETED", ERT["RUNNING"])
    with pytest.raises(AssertionError, match="started while its previous run is in flight"):
        run_layers([configs], ifmaps, XrtBackend(xclbin, pyxrt=make_pyxrt()), LPT, tuning_ifmaps=ifmaps)


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
