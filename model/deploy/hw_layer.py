"""What the hardware flow needs from the algorithm side, in three calls.

(a) `load_default_model()` -> DefaultCNN in eval mode (trained checkpoint).
(b) `hw_layer_statistics(task, n_images, seed=0)` -> (mean, variance), float64 tensors of shape
    (16, 64, 64): per element of the hardware layer's post-ReLU output (`model.hw_dw` + `hw_relu`),
    over `n_images` preprocessing images of the named Fashion-MNIST task (e.g. "footwear").
(c) `hw_layer_input(model, images)` -> (N, 16, 64, 64) float input of the hardware layer (post-ReLU
    stem output), and `run_from_hw_output(model, hw_output)` -> logits of the rest of the network
    from a (N, 16, 64, 64) layer output, e.g. the dequantized results of the FPGA.
    `model.hw_layer(x)` is the float reference of the layer itself.

Images are Fashion-MNIST tensors (N, 1, 28, 28) in [0, 1] (`model.nets.data.fashion_task(...).images`).
The preprocessing images of (b) are the seeded split of `task_split`, which the export and the
end-to-end check use too.
"""
from __future__ import annotations

import torch

from model.nets.data import DEFAULT_PREP_FRACTION, Split, TaskData, fashion_task, split_task
from model.nets.default_model import HW_SITE, DefaultCNN, load_default_model
from model.errors import VelcroError
from model.velcro.stats import ActivationStatistics

__all__ = ["load_default_model", "task_split", "task_statistics", "hw_layer_statistics", "hw_layer_input", "run_from_hw_output"]


def task_split(task: str, n_prep: int | None = None, *, seed: int = 0) -> tuple[TaskData, Split]:
    """A Fashion-MNIST task and its seeded preprocessing / validation split (`n_prep` images, default 1.5 %)."""
    data = fashion_task(task)
    return data, split_task(len(data.labels), prep_fraction=DEFAULT_PREP_FRACTION, prep_images=n_prep, seed=seed)


def task_statistics(model: torch.nn.Module, task: str, n_images: int | None = None, *, seed: int = 0) -> ActivationStatistics:
    """Statistics of every activation output of `model` over a task's preprocessing images."""
    data, split = task_split(task, n_images, seed=seed)
    stats = ActivationStatistics(model)
    for start in range(0, len(split.prep), 256):
        stats.observe(data.images[split.prep[start : start + 256]])
    return stats


def hw_layer_statistics(task: str = "footwear", n_images: int | None = None, *, seed: int = 0, model: DefaultCNN | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element float64 (mean, variance) of the hardware layer's output, shape (16, 64, 64)."""
    model = model if model is not None else load_default_model()
    stats = task_statistics(model, task, n_images, seed=seed)
    site = stats.sites[HW_SITE]
    if site.name != "hw_relu" or site.shape != (16, 64, 64):
        raise VelcroError(f"activation output {HW_SITE} is {site.name} {site.shape}, not the hardware layer; is this the default CNN?")
    return stats.mean(HW_SITE).clone(), stats.variance(HW_SITE).clone()


def hw_layer_input(model: DefaultCNN, images: torch.Tensor) -> torch.Tensor:
    """The (N, 16, 64, 64) input of the hardware layer for Fashion-MNIST `images`."""
    with torch.no_grad():
        return model.hw_input(images)


def run_from_hw_output(model: DefaultCNN, hw_output: torch.Tensor) -> torch.Tensor:
    """Logits of the network continued from the hardware layer's (N, 16, 64, 64) output."""
    if tuple(hw_output.shape[1:]) != (16, 64, 64):
        raise VelcroError(f"hardware layer output must be (N, 16, 64, 64), got {tuple(hw_output.shape)}")
    with torch.no_grad():
        return model.from_hw_output(hw_output.to(torch.float32))
