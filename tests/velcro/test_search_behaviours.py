"""ThresholdSearch (`velcro search --target` / `--lossless`, model/README.md section 7) on a hand-built model
whose answer is known.

Its second activation output (the one the search compresses; the first is left alone) has 100 elements:
the first 60 are 1 on every image (variance 0), the other 40 are the class scores, and image j of class j
has 5 at score j and values below 1 elsewhere. Compressing a constant element changes nothing;
compressing a score replaces it by its mean (about 0.6) and loses the images of that class. So every
C up to 0.6 is lossless, every tuple compressing more than 60 elements is not, and the largest lossless
C lies in [0.60, 0.61), compressing exactly the 60 constant elements.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from model.velcro.compress import compression_masks
from model.velcro.search import ThresholdSearch, TuningSet
from model.velcro.stats import ActivationStatistics

CONSTANT, CLASSES = 60, 40
SIDE = 10  # 10 x 10 = CONSTANT + CLASSES elements


class KnownAnswer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            for conv in (self.first, self.second):
                conv.weight.fill_(1.0)
                conv.bias.zero_()

    def forward(self, x):
        x = F.relu(self.first(x))  # activation output 0: left alone by the search
        x = F.relu(self.second(x))  # activation output 1: 100 elements
        return x.flatten(1)[:, CONSTANT:]  # the 40 class scores


def class_images(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(CLASSES).repeat(per_class)
    flat = torch.ones(len(labels), SIDE * SIDE)
    flat[:, CONSTANT:] = torch.rand(len(labels), CLASSES, generator=g)
    flat[torch.arange(len(labels)), CONSTANT + labels] = 5.0
    return flat.view(-1, 1, SIDE, SIDE), labels


@pytest.fixture(scope="module")
def search():
    model = KnownAnswer().eval()
    stats = ActivationStatistics(model)
    stats.observe(class_images(2, seed=1)[0])
    tuning = TuningSet(model, *class_images(1, seed=2))
    assert tuning.baseline.accuracy == 1.0
    return ThresholdSearch(model, stats, tuning)


def compressed_elements(search, thresholds) -> list[int]:
    masks = compression_masks(search.stats, thresholds)
    assert masks[0] is None, "the first activation output is left alone"
    return masks[1].reshape(-1).nonzero().reshape(-1).tolist()


def test_target_gives_a_tuple_of_that_ratio(search):
    point, thresholds = search.best_at(0.4)
    assert point.saving_ratio == 0.4 and point.family == "uniform"  # a tie: the first family wins
    assert compressed_elements(search, thresholds) == list(range(40))
    assert point.score.changed == 0 and search.tuning.lossless(point.score)
    assert [p.family for p in search.explored[-2:]] == ["uniform", "relative"], "every family is tried for a target"


def test_a_target_beyond_the_constant_elements_loses(search):
    point, thresholds = search.best_at(0.8)
    assert len(compressed_elements(search, thresholds)) == 80
    assert point.score.lost >= 1 and not search.tuning.lossless(point.score)


def test_lossless_finds_the_known_answer(search):
    point, thresholds = search.largest_lossless()
    assert 0.60 <= point.saving_ratio < 0.61, point.saving_ratio
    assert compressed_elements(search, thresholds) == list(range(CONSTANT))
    assert point.score.lost == 0 and search.tuning.lossless(point.score)
    tried = [p.saving_ratio for p in search.explored]
    assert any(0.61 <= c < 0.65 for c in tried), "the search bisects between the last lossless and the first lossy C"
