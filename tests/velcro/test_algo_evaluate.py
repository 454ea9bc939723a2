"""Top-1 accuracy: from a model, and from outputs that already exist (logits or predictions)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from model.errors import VelcroError
from model.velcro.evaluate import accuracy, top1_accuracy


def test_top1_from_logits_and_predictions():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = torch.tensor([1, 0, 0, 0])
    assert top1_accuracy(logits, labels) == 0.75
    assert top1_accuracy(logits.argmax(1), labels.tolist()) == 0.75
    assert math.isnan(top1_accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(VelcroError, match="do not match labels"):
        top1_accuracy(logits, labels[:3])


def test_model_accuracy_agrees_with_top1_over_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5)).eval()
    images, labels = torch.randn(23, 3, 2, 2), torch.randint(0, 5, (23,))
    with torch.no_grad():
        expected = top1_accuracy(model(images), labels)
    assert accuracy(model, images, labels, batch_size=4) == pytest.approx(expected)
