"""The search's tuning set: decisions counted against the uncompressed model, and the lossless rule."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from model.errors import VelcroError
from model.velcro.search import Score, TuningSet


class Rolled(nn.Module):
    """Logits = the image itself, rolled by `shift` classes: predictions move from class c to c + shift."""

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return x.roll(self.shift, dims=1)


# Images are one-hot logits: the uncompressed model (shift 0) predicts 0, 1, 2, 0, 1.
IMAGES = torch.eye(3)[[0, 1, 2, 0, 1]]
LABELS = torch.tensor([0, 1, 0, 0, 2])


def test_score_counts_decisions_against_the_uncompressed_model():
    tuning = TuningSet(Rolled(0), IMAGES, LABELS, batch_size=2)
    assert tuning.baseline == Score(images=5, correct=3, lost=0, gained=0, changed=0)
    # shifted by one: predictions 1, 2, 0, 1, 2 -> images 0, 1, 3 lost, 2 and 4 gained
    score = tuning.score(Rolled(1))
    assert score == Score(images=5, correct=2, lost=3, gained=2, changed=5)
    assert (score.accuracy, score.agreement) == (0.4, 0.0)
    assert tuning.score(Rolled(3)) == tuning.baseline  # a full turn changes nothing


@pytest.mark.parametrize(
    "n, lost, gained, lossless",
    [
        (1000, 0, 0, True),  # nothing changed
        (1000, 1, 1, True),  # bound (0 + 1.645·√2) / 1000 = 0.23 points
        (1000, 4, 4, True),  # (1.645·√8) / 1000 = 0.465 points
        (1000, 5, 5, False),  # (1.645·√10) / 1000 = 0.520 points: a 0.5-point loss is not excluded
        (1000, 2, 1, False),  # a loss on the tuning images
        (1000, 30, 42, True),  # (−12 + 1.645·√72) / 1000 = 0.196 points
        (200, 0, 1, True),  # (−1 + 1.645) / 200 = 0.32 points
        (200, 1, 1, False),  # (1.645·√2) / 200 = 1.16 points
    ],
)
def test_lossless_rule(n, lost, gained, lossless):
    tuning = TuningSet(Rolled(0), torch.eye(2)[[0] * n], torch.zeros(n, dtype=torch.int64))
    assert tuning.lossless(Score(n, n - lost + gained, lost, gained, lost + gained)) is lossless
    assert tuning.rule == f"no loss on the {n} tuning images (lost <= gained) and (lost - gained + 1.645·sqrt(lost + gained)) / {n} <= 0.5 points"


def test_a_search_needs_tuning_images():
    with pytest.raises(VelcroError, match="needs tuning images: give --tune-images 1 or more"):
        TuningSet(Rolled(0), IMAGES[:0], LABELS[:0])
