"""Top-1 accuracy, the measure the paper compares before and after compression.

`accuracy` runs a model over images; `top1_accuracy` scores outputs that already exist (logits, or
predicted class indices), e.g. the logits of a network continued from a hardware layer's output.
Both count a correct image the same way. Under torchrun (`model.velcro.distributed`) every rank
runs its share of the batches and the counts are summed, so every rank gets the same accuracy as a
single process.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from tqdm import tqdm

from model.errors import VelcroError
from model.velcro.distributed import SINGLE, Sharding


def _correct(outputs: torch.Tensor, labels) -> int:
    """Images whose prediction is the label: arg-max of (N, classes) logits, or (N,) class indices."""
    labels = torch.as_tensor(labels)
    predictions = outputs.argmax(1) if outputs.dim() == 2 else outputs
    if predictions.shape != labels.shape:
        raise VelcroError(
            f"outputs {tuple(outputs.shape)} do not match labels {tuple(labels.shape)}: give (N, classes) logits "
            "or (N,) predicted classes for N labels"
        )
    return int((predictions == labels).sum())


def top1_accuracy(outputs: torch.Tensor, labels) -> float:
    """Share of images whose prediction is the label; `outputs` are (N, classes) logits or (N,) predictions."""
    if len(labels) == 0:
        return float("nan")
    return _correct(outputs, labels) / len(labels)


def predictions(
    model: nn.Module, images, n: int, *, batch_size: int = 256, sharding: Sharding = SINGLE, progress: bool = False, desc: str = "eval"
) -> tuple[torch.Tensor, list[slice]]:
    """Top-1 classes of this rank's batches of the first `n` images (model in eval mode, no grad).

    Returns the predictions (on the CPU) and the batches (`Sharding.mine`) they belong to. `images`
    is a tensor or anything indexed by a tensor of indices (an ImageNet task's file list).
    """
    batches = sharding.mine(n, batch_size)
    out = []
    with torch.no_grad():
        for part in tqdm(batches, desc=desc, disable=not progress or not sharding.main, leave=False):
            index = torch.arange(part.start, part.stop)
            batch = images[part] if isinstance(images, torch.Tensor) else images[index]
            out.append(model(batch.to(sharding.device)).argmax(1).cpu())
    return (torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)), batches


def accuracy(
    model: nn.Module, images, labels: torch.Tensor, *, batch_size: int = 256, sharding: Sharding = SINGLE,
    progress: bool = False, desc: str = "eval",
) -> float:
    """Share of `images` whose arg-max output is the label; with `sharding`, over every rank's share."""
    if len(labels) == 0:
        return float("nan")
    predicted, batches = predictions(model, images, len(labels), batch_size=batch_size, sharding=sharding, progress=progress, desc=desc)
    mine = torch.cat([labels[b] for b in batches]) if batches else labels[:0]
    (correct,) = sharding.sum([_correct(predicted, mine)])
    return correct / len(labels)
