"""The algorithm on several processes: torchrun and torch.distributed.

Under `torchrun --nproc-per-node N` (one machine or several) every process (rank) holds the whole
index of a task's splits, but computes only its share. A split is cut into fixed batches of
`batch_size` images in index order, and batch b goes to rank b mod N. The batches do not depend on
N, so every forward pass sees the same images as in a single process, and the results are equal,
not just close: counts are summed across ranks as integers, and statistics are merged batch by
batch in batch order (`ActivationStatistics.observe_split`).

`Sharding` is this process's place in the run (`SINGLE` when there is no process group);
`process_group()` opens the group of a torchrun launch: gloo on CPU, nccl when CUDA is present,
with a timeout so that a rank that fails or hangs ends the run with an error instead of a hang.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist

from model.errors import VelcroError

DEFAULT_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Sharding:
    """One rank's place in a run: which batches it computes, and how results are combined."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    timeout: timedelta = DEFAULT_TIMEOUT
    group: Any = None

    @property
    def main(self) -> bool:
        """Rank 0: the only one that prints, shows progress bars and writes files."""
        return self.rank == 0

    @staticmethod
    def batches(n: int, batch_size: int) -> list[slice]:
        """Every batch of n items, in order: the same for any number of ranks."""
        if batch_size < 1:
            raise VelcroError(f"batch size {batch_size}: give at least 1 (--batch-size)")
        return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]

    def mine(self, n: int, batch_size: int) -> list[slice]:
        """This rank's batches: batch b goes to rank b mod world."""
        return self.batches(n, batch_size)[self.rank :: self.world]

    def sum(self, counts: Sequence[int]) -> list[int]:
        """Integer counts summed over every rank (exact); every rank gets the totals."""
        if self.world == 1:
            return [int(c) for c in counts]
        total = torch.tensor([int(c) for c in counts], dtype=torch.int64, device=self.device)
        with self._collective("summing counts"):
            dist.all_reduce(total, group=self.group)
        return [int(c) for c in total.tolist()]

    def gather(self, obj) -> list:
        """`obj` of every rank, in rank order (pickled: tensors arrive bit for bit)."""
        if self.world == 1:
            return [obj]
        out: list = [None] * self.world
        with self._collective("gathering statistics"):
            dist.all_gather_object(out, obj, group=self.group)
        return out

    @contextlib.contextmanager
    def _collective(self, what: str) -> Iterator[None]:
        """A failed or timed-out collective becomes one clear error instead of a gloo/nccl trace."""
        try:
            yield
        except RuntimeError as err:  # gloo and nccl report a lost peer and a timeout as RuntimeError
            raise VelcroError(
                f"{what} failed ({str(err).splitlines()[0][:200]}): another rank "
                f"failed (see its message) or did not answer within {self.timeout.total_seconds():g} s; "
                "if the ranks are only slow, raise --dist-timeout"
            ) from None


SINGLE = Sharding()


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or another launcher setting WORLD_SIZE > 1) started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextlib.contextmanager
def process_group(timeout: timedelta = DEFAULT_TIMEOUT) -> Iterator[Sharding]:
    """This process's `Sharding`: the torchrun launch's group (opened here, closed on exit), or `SINGLE`.

    The rendezvous comes from torchrun's environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
    LOCAL_RANK). The backend is nccl when CUDA is present (each rank on `cuda:LOCAL_RANK`), gloo
    otherwise. A group that is already open (a caller's own) is used as it is and left open.
    """
    if timeout.total_seconds() <= 0:
        raise VelcroError(f"--dist-timeout {timeout.total_seconds():g}: give a positive number of seconds")
    if dist.is_available() and dist.is_initialized():
        yield _current(timeout)
        return
    if not launched_by_torchrun():
        yield Sharding(timeout=timeout)
        return
    if not dist.is_available():
        raise VelcroError("this PyTorch build has no torch.distributed: run without torchrun")
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    except (RuntimeError, ValueError) as err:
        raise VelcroError(
            f"could not join the torchrun process group ({str(err).splitlines()[0][:200]}): check "
            "--rdzv-endpoint / --master-addr and that every node was started with the same --nnodes"
        ) from None
    try:
        yield _current(timeout)
    finally:
        dist.destroy_process_group()


def _current(timeout: timedelta) -> Sharding:
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    return Sharding(dist.get_rank(), dist.get_world_size(), device, timeout)
