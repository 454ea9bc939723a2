"""VELCRO statistics: every activation call site found, float64 moments equal to brute force."""
from __future__ import annotations


import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from model.errors import VelcroError
from model.velcro.sites import intercept
from model.velcro.stats import ActivationStatistics
from model.nets.zoo import build_model


@pytest.fixture(autouse=True)
def seeded_torch():
    """Every random tensor in these tests is replayable: torch's generator starts from 0 in each test."""
    torch.manual_seed(0)


class MixedActivations(nn.Module):
    """One reused ReLU module, a functional relu, ReLU6, in-place activations, an MLP head ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.c3 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.c4 = nn.Conv2d(6, 6, 1)
        self.relu = nn.ReLU(inplace=True)
        self.relu6 = nn.ReLU6()
        self.fc1 = nn.Linear(6, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        x = self.relu(self.c1(x))  # site 0
        x = self.relu(self.c2(x) + x)  # site 1: same module again
        x = F.relu(self.c3(x))  # site 2: functional
        x = self.relu6(self.c4(x)).relu_()  # site 3 (relu6); the relu_ after it follows no conv
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc2(torch.relu(self.fc1(x)))  # an activation after a linear layer: not a site


def brute_force(model: nn.Module, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """Every site's outputs for all images stacked (same batches: float32 kernels depend on batch size)."""
    outputs: dict[int, list[torch.Tensor]] = {}

    def keep(index, _n, _f, out, _m):
        outputs.setdefault(index, []).append(out.detach().to(torch.float64).clone())
        return out

    with torch.no_grad():
        for images in batches:
            with intercept(model, keep):
                model(images)
    return [torch.cat(outputs[k]) for k in sorted(outputs)]


def assert_matches(stats: ActivationStatistics, stacked: list[torch.Tensor]) -> None:
    assert len(stats.sites) == len(stacked)
    for k, acts in enumerate(stacked):
        torch.testing.assert_close(stats.mean(k), acts.mean(0), rtol=1e-9, atol=0)
        torch.testing.assert_close(stats.variance(k), acts.var(0, correction=0), rtol=1e-9, atol=0)


def test_random_model_sites_and_moments():
    torch.manual_seed(1)
    model = MixedActivations().eval()
    batches = [torch.randn(n, 3, 8, 8) * 3 + 1 for n in (1, 5, 2, 7)]
    stats = ActivationStatistics(model)
    for b in batches:
        stats.observe(b)
    assert [s.function for s in stats.sites] == ["relu", "relu", "relu", "relu6"]
    assert [s.name for s in stats.sites] == ["relu", "relu#2", "model:relu", "relu6"]
    assert stats.count == 15
    assert_matches(stats, brute_force(model, batches))


def test_nearly_constant_elements_keep_precision():
    """Values with a tiny spread around a large mean: naive sum-of-squares would lose everything."""
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU()).eval()
    with torch.no_grad():
        model[0].weight.fill_(1e-3)
        model[0].bias.fill_(1000.0)
    images = torch.randn(12, 1, 4, 4)
    stats = ActivationStatistics(model)
    for chunk in images.split(5):
        stats.observe(chunk)
    assert_matches(stats, brute_force(model, list(images.split(5))))
    constant = ActivationStatistics(model)
    constant.observe(torch.zeros(4, 1, 4, 4))
    assert torch.all(constant.variance(0) == 0)


@pytest.mark.parametrize("name, sites", [("resnet18", 17), ("googlenet", 57), ("mobilenet_v2", 35)])
def test_torchvision_architectures(name, sites):
    torch.manual_seed(0)
    model = build_model(name)
    batches = [torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)]
    stats = ActivationStatistics(model)
    for b in batches:
        stats.observe(b)
    assert len(stats.sites) == sites
    assert_matches(stats, brute_force(model, batches))


def test_merge_state_dict_and_hook_removal():
    torch.manual_seed(2)
    model = MixedActivations().eval()
    images = torch.randn(10, 3, 8, 8)
    whole = ActivationStatistics(model)
    whole.observe(images)
    left, right = ActivationStatistics(model), ActivationStatistics(model)
    left.observe(images[:3])
    right.observe(images[3:])
    left.merge(right)
    for k in range(len(whole.sites)):
        torch.testing.assert_close(left.mean(k), whole.mean(k), rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(left.variance(k), whole.variance(k), rtol=1e-9, atol=1e-15)
    restored = ActivationStatistics(model)
    restored.load_state_dict(whole.state_dict())
    assert restored.sites == whole.sites and restored.count == 10
    assert all(torch.equal(restored.variance(k), whole.variance(k)) for k in range(len(whole.sites)))
    # attach / remove: forwards count only while attached
    with torch.no_grad():
        with whole.attached():
            model(images[:2])
        assert whole.count == 12
        model(images[:2])
    assert whole.count == 12
    assert not model._forward_hooks and not model._forward_pre_hooks


def _shard_worker(rank: int, world: int, init_file: str, result_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(3)
    model = MixedActivations().eval()
    images = torch.randn(9, 3, 8, 8)
    stats = ActivationStatistics(model)
    stats.observe(images[:4] if rank == 0 else images[4:])  # disjoint shards
    stats.all_reduce()
    if rank == 0:
        torch.save(stats.state_dict(), result_file)
    dist.destroy_process_group()


def test_two_processes_all_reduce_equals_single_pass(tmp_path):
    init_file = tmp_path / "init"
    result_file = tmp_path / "merged.pt"
    mp.start_processes(_shard_worker, args=(2, str(init_file), str(result_file)), nprocs=2, start_method="spawn")
    torch.manual_seed(3)
    model = MixedActivations().eval()
    images = torch.randn(9, 3, 8, 8)
    merged = ActivationStatistics(model)
    merged.load_state_dict(torch.load(result_file, weights_only=True))
    assert merged.count == 9
    assert_matches(merged, brute_force(model, [images[:4], images[4:]]))


def test_nan_activation_is_reported_and_not_counted():
    model = MixedActivations().eval()
    stats = ActivationStatistics(model)
    stats.observe(torch.randn(2, 3, 8, 8))
    bad = torch.randn(2, 3, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(VelcroError, match="NaN.*input normalisation"):
        stats.observe(bad)
    assert stats.count == 2


def test_one_image_is_not_enough_for_a_variance():
    stats = ActivationStatistics(MixedActivations().eval())
    stats.observe(torch.randn(1, 3, 8, 8))
    with pytest.raises(VelcroError, match="at least 2 preprocessing images for a variance, got 1; give more"):
        stats.variance(0)


def test_training_mode_is_refused():
    with pytest.raises(VelcroError, match="model.eval()"):
        ActivationStatistics(MixedActivations()).observe(torch.randn(2, 3, 8, 8))
