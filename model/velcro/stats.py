"""VELCRO preprocessing statistics: per-element mean B and variance V of every activation output.

Algorithm 1 (steps 1–5) sums A and A² over the preprocessing images; that loses all precision for
elements whose values barely move, which are exactly the ones VELCRO compresses. Here every site
keeps a count, a mean and M2 (sum of squared deviations) in float64 and folds each batch in with
Chan's parallel update, shifted by the running mean so constant elements stay exactly constant.
Memory is one mean and one M2 per activation element, whatever the number of images, and two
statistics objects merge exactly, so shards can run in different processes (`all_reduce`).
`observe_split` shares fixed batches out over torchrun's ranks and merges them in batch order, so
its result has the same bits for any number of processes.

Lifecycle (explicit, like torch.ao's activation sparsifier):

    stats = ActivationStatistics(model)        # finds nothing yet, attaches nothing
    stats.observe(images)                      # one batch: hooks attached for this call only
    with stats.attached(): model(x)            # or: observe inside your own loop
    stats.mean(k), stats.variance(k)           # float64, shape = site k's per-image shape
    masks = compression_masks(stats, tuple)    # model.velcro.compress
    compressed = CompressedModel(model, stats, masks)

`state_dict()` / `load_state_dict()` round-trip everything, including the site descriptions.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from tqdm import tqdm

from model.errors import VelcroError
from model.velcro.distributed import SINGLE, Sharding
from model.velcro.sites import SiteInfo, intercept

# Elements per chunk of the batch update: large enough to amortise Python overhead, small enough
# that the float64 deviations of one chunk stay in cache.
_CHUNK_ELEMENTS = 1 << 16


class ActivationStatistics:
    """Streaming per-element count / mean / M2 (float64) for every activation site of a model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.sites: list[SiteInfo] = []
        self.count = 0  # images seen; the same for every element of every site
        self.means: list[torch.Tensor] = []
        self.m2s: list[torch.Tensor] = []
        self.total_macs = 0
        self._handles: list = []
        self._staged: list[tuple[SiteInfo, torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------ observing
    def attach(self) -> "ActivationStatistics":
        """Collect statistics on every forward pass of the model until `remove()`."""
        if self._handles:
            return self
        self._handles = [
            self.model.register_forward_pre_hook(self._enter),
            self.model.register_forward_hook(self._exit, always_call=True),
        ]
        return self

    def remove(self) -> None:
        """Detach all hooks; the statistics gathered so far stay."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @contextlib.contextmanager
    def attached(self) -> Iterator["ActivationStatistics"]:
        self.attach()
        try:
            yield self
        finally:
            self.remove()

    def observe(self, images: torch.Tensor) -> None:
        """Run the model on one batch (eval mode, no grad) and fold its activations in."""
        if self.model.training:
            raise VelcroError(
                "the model is in training mode (batch-norm would use batch statistics); "
                "call model.eval() before collecting VELCRO statistics"
            )
        with torch.no_grad(), self.attached():
            self.model(images)

    def observe_batches(self, batches: Iterable, *, progress: bool = False, desc: str = "statistics") -> None:
        """Observe every batch of an iterable of images or (images, labels) pairs."""
        for batch in tqdm(batches, desc=desc, disable=not progress, leave=False):
            self.observe(batch[0] if isinstance(batch, (tuple, list)) else batch)

    def observe_split(
        self, images, indices: torch.Tensor, *, batch_size: int = 256, sharding: Sharding = SINGLE,
        progress: bool = False, desc: str = "statistics",
    ) -> "ActivationStatistics":
        """Fold in images[indices], in batches of `batch_size` shared out over the ranks of `sharding`.

        Each batch is observed on its own and the batches are merged into self in index order, so
        every rank ends with the same statistics, bit for bit the ones of a single process. `images`
        is a tensor or anything indexed by a tensor of indices (an ImageNet task's file list).
        """
        batches = sharding.batches(len(indices), batch_size)
        rounds = range(0, len(batches), sharding.world)  # round r: batch r·world + rank on each rank
        for first in tqdm(rounds, desc=desc, disable=not progress or not sharding.main, leave=False):
            part = ActivationStatistics(self.model)
            if first + sharding.rank < len(batches):
                part.observe(images[indices[batches[first + sharding.rank]]].to(sharding.device))
            for state in sharding.gather(part.state_dict()):
                received = ActivationStatistics(self.model)
                received.load_state_dict(state)
                self.merge(received)
        return self

    def _enter(self, _module, _args) -> None:
        self._staged: list[tuple[SiteInfo, torch.Tensor, torch.Tensor]] = []
        self._batch = 0
        self._stack = contextlib.ExitStack()
        self._mode = self._stack.enter_context(intercept(self.model, self._record, with_names=not self.sites))

    def _exit(self, _module, _args, _output) -> None:
        """Commit the batch only if every site was seen, so a failed batch leaves no trace."""
        self._stack.close()
        if _output is None:  # the forward pass raised (torch passes no output): drop the batch
            self._staged = []
            return
        if self.sites and len(self._staged) != len(self.sites):
            raise VelcroError(
                f"this forward pass produced {len(self._staged)} activation outputs but the statistics "
                f"were started with {len(self.sites)}; use one model with a fixed structure (no "
                "data-dependent branches) for all preprocessing batches"
            )
        if not self._staged:
            return  # the forward pass failed before the first site, or the model has none
        if not self.sites:
            self.sites = [site for site, _, _ in self._staged]
            self.total_macs = self._mode.total_macs
        self.means = [mean for _, mean, _ in self._staged]
        self.m2s = [m2 for _, _, m2 in self._staged]
        self.count += self._batch
        self._staged = []

    def _record(self, index: int, name: str, function: str, out: torch.Tensor, macs: int) -> torch.Tensor:
        shape = tuple(out.shape[1:])
        if not self.sites:
            site = SiteInfo(index, name, function, shape, macs)
        elif index >= len(self.sites) or self.sites[index].shape != shape:
            raise VelcroError(
                f"activation output {index} has per-image shape {shape}, which differs from the "
                "statistics gathered so far; use the same input size for every preprocessing batch"
            )
        else:
            site = self.sites[index]
        self._batch = out.shape[0]
        mean, m2 = self._fold(index, site, out.detach().cpu())  # float64 bookkeeping stays on the CPU
        self._staged.append((site, mean, m2))
        return out

    # ------------------------------------------------------------------ the update
    def _fold(self, index: int, site: SiteInfo, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New (mean, M2) of site `index` after this batch, computed in float64 chunk by chunk."""
        batch = out.shape[0]
        flat = out.reshape(batch, math.prod(site.shape))
        if not batch:  # an empty batch adds no image: the statistics stay as they are
            if self.count:
                return self.means[index], self.m2s[index]
            return torch.zeros(flat.shape[1], dtype=torch.float64), torch.zeros(flat.shape[1], dtype=torch.float64)
        if self.count:
            shift, m2 = self.means[index], self.m2s[index]
        else:  # first batch: shift by the first image; its values are exact in float64
            shift, m2 = flat[0].to(torch.float64), torch.zeros(flat.shape[1], dtype=torch.float64)
        sums = torch.empty_like(shift)
        squares = torch.empty_like(shift)
        ones = torch.ones(batch, dtype=torch.float64)
        step = max(1, _CHUNK_ELEMENTS // batch)
        buffer = torch.empty(batch, min(step, flat.shape[1]), dtype=torch.float64)
        for start in range(0, flat.shape[1], step):
            stop = min(start + step, flat.shape[1])
            dev = buffer[:, : stop - start]
            torch.sub(flat[:, start:stop], shift[start:stop], out=dev)
            torch.mv(dev.t(), ones, out=sums[start:stop])  # column sums through BLAS
            dev.mul_(dev)
            torch.mv(dev.t(), ones, out=squares[start:stop])
        if not torch.isfinite(sums).all():
            bad = "NaN" if torch.isnan(sums).any() else "infinite"
            raise VelcroError(
                f"activation output {index} ({site.name or site.function}) has {bad} values; check the "
                "input normalisation and the model weights, then observe again (this batch was not counted)"
            )
        # Chan's update with the running mean as shift: mean += S/n, M2 += Q - S²/n.
        count = self.count + batch
        return shift + sums / count, m2 + (squares - sums * sums / count).clamp_(min=0)

    # ------------------------------------------------------------------ results
    def _require(self, images: int = 1) -> None:
        if not self.sites:
            raise VelcroError("no statistics yet: observe preprocessing images first (observe(images))")
        if self.count < images:
            raise VelcroError(
                f"VELCRO needs at least {images} preprocessing images for a variance, got {self.count}; "
                "give more preprocessing images (e.g. a larger --prep-fraction or --prep-images)"
            )

    def mean(self, index: int) -> torch.Tensor:
        """Per-element arithmetic mean B[k] (float64, site k's per-image shape)."""
        self._require(1)
        return self.means[index].view(self.sites[index].shape)

    def variance(self, index: int) -> torch.Tensor:
        """Per-element population variance V[k] (Eq. 1; float64, site k's per-image shape)."""
        self._require(2)
        return (self.m2s[index] / self.count).view(self.sites[index].shape)

    # ------------------------------------------------------------------ merging
    def merge(self, other: "ActivationStatistics") -> "ActivationStatistics":
        """Fold another statistics object of the same model in (Chan et al.); returns self."""
        if not other.count:  # no images (never observed, or only empty batches): nothing to fold in
            return self
        if not self.sites:
            self._load(other.state_dict())
            return self
        if [s.shape for s in self.sites] != [s.shape for s in other.sites]:
            raise VelcroError(
                "cannot merge statistics of different models or input sizes; gather both with the same "
                "model and the same image size"
            )
        n_a, n_b = self.count, other.count
        n = n_a + n_b
        for k in range(len(self.sites)):
            delta = other.means[k] - self.means[k]
            self.means[k] = self.means[k] + delta * (n_b / n)
            self.m2s[k] = self.m2s[k] + other.m2s[k] + delta * delta * (n_a * n_b / n)
        self.count = n
        return self

    def all_reduce(self, group=None) -> "ActivationStatistics":
        """Merge the statistics of every process of `group` (torch.distributed); every rank gets the total.

        Means and M2 are gathered and folded in rank order, so every rank computes the same result.
        """
        self._require(1)
        world = dist.get_world_size(group)
        counts = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
        dist.all_gather(counts, torch.tensor([self.count], dtype=torch.int64), group=group)
        gathered = []
        for tensors in (self.means, self.m2s):
            per_rank = [[torch.empty_like(t) for t in tensors] for _ in range(world)]
            for k, t in enumerate(tensors):
                dist.all_gather([per_rank[r][k] for r in range(world)], t.contiguous(), group=group)
            gathered.append(per_rank)
        total = None
        for rank in range(world):
            part = ActivationStatistics(self.model)
            part.sites, part.total_macs, part.count = list(self.sites), self.total_macs, int(counts[rank])
            part.means, part.m2s = gathered[0][rank], gathered[1][rank]
            total = part if total is None else total.merge(part)
        self.count, self.means, self.m2s = total.count, total.means, total.m2s
        return self

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        return {
            "count": self.count,
            "total_macs": self.total_macs,
            "sites": [(s.index, s.name, s.function, s.shape, s.macs) for s in self.sites],
            "means": [t.clone() for t in self.means],
            "m2s": [t.clone() for t in self.m2s],
        }

    def load_state_dict(self, state: dict) -> None:
        self._load(state)

    def _load(self, state: dict) -> None:
        self.count = int(state["count"])
        self.total_macs = int(state["total_macs"])
        self.sites = [SiteInfo(i, n, f, tuple(shape), m) for i, n, f, shape, m in state["sites"]]
        self.means = [t.clone().to(torch.float64) for t in state["means"]]
        self.m2s = [t.clone().to(torch.float64) for t in state["m2s"]]
