"""Top-1 accuracy, the measure the paper compares before and after compression."""
from __future__ import annotations

import torch
import torch.nn as nn
from tqdm import tqdm


def accuracy(model: nn.Module, images, labels: torch.Tensor, *, batch_size: int = 256, progress: bool = False, desc: str = "eval") -> float:
    """Share of `images` whose arg-max output is the label (model in eval mode, no grad)."""
    if len(labels) == 0:
        return float("nan")
    correct = 0
    with torch.no_grad():
        for start in tqdm(range(0, len(labels), batch_size), desc=desc, disable=not progress, leave=False):
            index = torch.arange(start, min(start + batch_size, len(labels)))
            batch = images[index] if not isinstance(images, torch.Tensor) else images[start : start + batch_size]
            correct += int((model(batch).argmax(1) == labels[start : start + batch_size]).sum())
    return correct / len(labels)
