"""host.api without a simulator: jobs from layer configurations, the checks on what a backend hands back,
and how the sim backend splits a large job over its worker processes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fake_pyxrt import make_pyxrt

from host.api import layer_job, run_layers
from host.backends import DeviceResult
from host.backends.sim import SPLIT_CYCLES, balanced_parts
from host.backends.xrt import XrtBackend
from model.errors import VelcroError
from model.hw import cycles, golden
from model.hw.image import config_image
from model.hw.spec import INSTANCES, N_OUTPUTS, REG
from sim.harness.kernel_job import KernelJob


@pytest.fixture
def layer():
    rng = np.random.default_rng(7)
    configs = [golden.random_config(rng, d) for d in np.linspace(0, 1, INSTANCES)]
    return configs, rng.integers(0, 256, (INSTANCES, 2, golden.H, golden.W), dtype=np.uint8)


class Tampering:
    """A backend (the stand-in card) whose answer `tamper` changes before the host sees it."""

    def __init__(self, tmp_path, tamper):
        xclbin = tmp_path / "velcro_krnl.xclbin"
        xclbin.write_bytes(b"stand-in")
        self.card, self.tamper, self.name = XrtBackend(xclbin, pyxrt=make_pyxrt()), tamper, "tampering"

    def run(self, job: KernelJob) -> DeviceResult:
        result = self.card.run(job)
        self.tamper(result)
        return result


def test_a_job_has_one_unit_per_channel_and_configuration(layer):
    configs, ifmaps = layer
    other = [dataclasses.replace(c, skip_en=False) for c in configs]
    job = layer_job([configs, other], ifmaps)
    assert job.images.shape == (2 * INSTANCES, REG["AVG"].end) and job.n_frames == 2
    assert np.array_equal(job.images[INSTANCES + 3], config_image(other[3]))
    assert np.array_equal(job.ifmaps[INSTANCES + 3], ifmaps[3])
    with pytest.raises(VelcroError, match="16 channels"):
        layer_job([configs[:15]], ifmaps)
    with pytest.raises(VelcroError, match="IFMAPs must be"):
        layer_job([configs], ifmaps[:, :0])


def test_wrong_counters_are_caught(layer, tmp_path):
    configs, ifmaps = layer

    def tamper(result):
        offset = REG["LAST_COMPUTED"].offset
        result.images[5, offset] ^= 1

    with pytest.raises(VelcroError, match=r"channel 5: the counters written back .* LAST_COMPUTED"):
        run_layers([configs], ifmaps, Tampering(tmp_path, tamper))


def test_a_short_answer_is_caught(layer, tmp_path):
    configs, ifmaps = layer

    def tamper(result):
        result.ofmaps = result.ofmaps[:, :1]

    with pytest.raises(VelcroError, match="returned images .* and OFMAPs"):
        run_layers([configs], ifmaps, Tampering(tmp_path, tamper))


def test_replayed_ofmaps_only_for_what_ran(layer, tmp_path):
    configs, ifmaps = layer
    (run,) = run_layers([configs], ifmaps, Tampering(tmp_path, lambda result: None))
    assert run.runner(list(configs), ifmaps.copy()) is run.ofmaps
    with pytest.raises(VelcroError, match="configurations are not the ones that ran"):
        run.runner([dataclasses.replace(configs[0], skip_en=False), *configs[1:]], ifmaps)
    with pytest.raises(VelcroError, match="IFMAPs are not the ones that ran"):
        run.runner(configs, ifmaps[:, ::-1])
    with pytest.raises(VelcroError, match="simulated kernel only"):
        run.gaps()


def test_large_jobs_split_evenly_small_ones_do_not(layer):
    configs, ifmaps = layer
    small = layer_job([configs], ifmaps)
    assert [p.tolist() for p in balanced_parts(small, 2)] == [list(range(INSTANCES))]
    frames = np.repeat(ifmaps, 40, axis=1)  # 80 frames per unit
    large = layer_job([configs, configs], frames)
    parts = balanced_parts(large, 2)
    assert sorted(np.concatenate(parts).tolist()) == list(range(2 * INSTANCES))
    cost = [frames.shape[1] * cycles.frame_interval(N_OUTPUTS - int(c.mask.sum())) for c in configs * 2]
    loads = [sum(cost[u] for u in p) for p in parts]
    assert sum(loads) > SPLIT_CYCLES and abs(loads[0] - loads[1]) <= max(cost)
