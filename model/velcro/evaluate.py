"""Top-1 accuracy, the measure the paper compares before and after compression.

`accuracy` runs a model over images; `top1_accuracy` scores outputs that already exist (logits, or
predicted class indices), e.g. the logits of a network continued from a hardware layer's output.
Both count a correct image the same way.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from tqdm import tqdm

from model.errors import VelcroError


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


def accuracy(model: nn.Module, images, labels: torch.Tensor, *, batch_size: int = 256, progress: bool = False, desc: str = "eval") -> float:
    """Share of `images` whose arg-max output is the label (model in eval mode, no grad)."""
    if len(labels) == 0:
        return float("nan")
    correct = 0
    with torch.no_grad():
        for start in tqdm(range(0, len(labels), batch_size), desc=desc, disable=not progress, leave=False):
            index = torch.arange(start, min(start + batch_size, len(labels)))
            batch = images[index] if not isinstance(images, torch.Tensor) else images[start : start + batch_size]
            correct += _correct(model(batch), labels[start : start + batch_size])
    return correct / len(labels)
