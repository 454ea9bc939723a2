"""torch.distributed: shares of fixed batches, results equal to one process, clear errors instead of hangs.

The CLI under a real torchrun launch on the offline default is tests/nets/test_torchrun.py (slow);
here two gloo processes started by torch.multiprocessing run the library calls on a small model.
"""
from __future__ import annotations

import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
from PIL import Image

from model import cli
from model.errors import VelcroError
from model.nets.data import split_task
from model.velcro.distributed import SINGLE, Sharding, process_group
from model.velcro.evaluate import accuracy
from model.velcro.predict import predicting_model
from model.velcro.search import TuningSet
from model.velcro.stats import ActivationStatistics


def _model() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    ).eval()


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(6)
    return torch.randn(23, 3, 8, 8, generator=generator), torch.randint(0, 3, (23,), generator=generator)


def _results(sharding: Sharding) -> dict:
    """Statistics of 11 images in batches of 3 (4 batches: unequal shares), then counts on the other 12."""
    model, (images, labels) = _model(), _data()
    stats = ActivationStatistics(model).observe_split(images, torch.arange(11), batch_size=3, sharding=sharding)
    test = slice(11, 23)
    compressed = predicting_model(model, stats, [None, 0.5], [None, 0.0], "grid2")
    tuning = TuningSet(model, images[test], labels[test], batch_size=5, sharding=sharding)
    return {
        "stats": stats.state_dict(),
        "accuracy": accuracy(compressed, images[test], labels[test], batch_size=5, sharding=sharding),
        "macs": compressed.mac_report(sharding).to_dict(),
        "score": tuning.score(compressed),
    }


def _rendezvous(rank: int, world: int, port: int) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _equal_worker(rank: int, port: int, out: str) -> None:
    _rendezvous(rank, 2, port)
    with process_group(timedelta(seconds=60)) as sharding:
        assert (sharding.rank, sharding.world) == (rank, 2)
        torch.save(_results(sharding), f"{out}.{rank}")


def test_batches_go_round_robin_and_cover_everything():
    assert Sharding.batches(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    shares = [Sharding(rank=r, world=2).mine(7, 3) for r in range(2)]
    assert shares == [[slice(0, 3), slice(6, 7)], [slice(3, 6)]]
    assert Sharding(rank=2, world=3).mine(4, 2) == []  # a rank may have nothing to do
    with pytest.raises(VelcroError, match="batch size 0: give at least 1"):
        Sharding.batches(5, 0)


def test_observe_split_merges_batches_in_order():
    model, (images, _) = _model(), _data()
    split = ActivationStatistics(model).observe_split(images, torch.arange(11), batch_size=3)
    expected = ActivationStatistics(model)
    for start in range(0, 11, 3):
        part = ActivationStatistics(model)
        part.observe(images[start : min(start + 3, 11)])
        expected.merge(part)
    assert split.count == 11
    assert all(torch.equal(a, b) for a, b in zip(split.means + split.m2s, expected.means + expected.m2s))


def test_two_ranks_give_the_bits_of_one_process(tmp_path):
    out = tmp_path / "result"
    mp.start_processes(_equal_worker, args=(_free_port(), str(out)), nprocs=2, start_method="spawn")
    single = _results(SINGLE)
    for rank in range(2):
        result = torch.load(f"{out}.{rank}", weights_only=False)
        assert result["stats"]["count"] == 11
        for key in ("means", "m2s"):
            assert all(torch.equal(a, b) for a, b in zip(result["stats"][key], single["stats"][key])), (rank, key)
        assert result["accuracy"] == single["accuracy"] and result["score"] == single["score"]
        assert result["macs"] == single["macs"] and single["macs"]["images"] == 12


def _silent_worker(rank: int, port: int, out: str) -> None:
    _rendezvous(rank, 2, port)
    with process_group(timedelta(seconds=2)) as sharding:
        if rank == 1:
            time.sleep(6)  # never joins the collective; leaves after rank 0 gave up
            return
        start = time.monotonic()
        try:
            sharding.sum([1])
        except VelcroError as err:
            Path(out).write_text(f"{time.monotonic() - start:.1f}\n{err}")


def test_a_silent_rank_ends_the_run_after_the_timeout(tmp_path):
    out = tmp_path / "error"
    mp.start_processes(_silent_worker, args=(_free_port(), str(out)), nprocs=2, start_method="spawn")
    waited, message = out.read_text().split("\n", 1)
    assert float(waited) < 5
    assert message.startswith("summing counts failed (")
    assert "another rank failed (see its message) or did not answer within 2 s; if the ranks are only slow, raise --dist-timeout" in message


def _cli_worker(rank: int, port: int, argv: list[str], out: str) -> None:
    import contextlib
    import io

    _rendezvous(rank, 2, port)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(argv)
    Path(f"{out}.{rank}").write_text(f"{code}\n{err.getvalue()}")


def test_a_failing_rank_ends_the_run_with_its_error(tmp_path):
    """An unreadable image in rank 1's share: rank 1 names the file, rank 0 stops instead of waiting."""
    torch.save(_model(), tmp_path / "model.pt")
    files = []
    for wnid in ("n01", "n02", "n03"):
        (tmp_path / "data" / wnid).mkdir(parents=True)
        for i in range(3):
            files.append(tmp_path / "data" / wnid / f"{i}.png")
            Image.new("RGB", (8, 8), (40 * i, 80, 120)).save(files[-1])
    broken = files[int(split_task(9, prep_images=2, tune_images=0).prep[1])]  # batch 1 of size 1: rank 1's
    broken.write_text("not an image")
    argv = ["stats", "--model", str(tmp_path / "model.pt"), "--data", str(tmp_path / "data"), "--task", "n01,n02,n03",
            "--prep-images", "2", "--batch-size", "1", "--out", str(tmp_path / "stats.pt")]
    out = tmp_path / "result"
    mp.start_processes(_cli_worker, args=(_free_port(), argv, str(out)), nprocs=2, start_method="spawn")
    results = [Path(f"{out}.{rank}").read_text().split("\n", 1) for rank in range(2)]
    assert [code for code, _ in results] == ["2", "2"]
    errors = [err.strip().splitlines()[-1] for _, err in results]  # after rank 0's progress bar
    assert errors[1].startswith(f"velcro stats (rank 1 of 2): error: cannot read image {broken} (")
    assert errors[0].startswith("velcro stats (rank 0 of 2): error: gathering statistics failed (")
    assert errors[0].endswith("another rank failed (see its message) or did not answer within 1800 s; "
                              "if the ranks are only slow, raise --dist-timeout")
    assert not (tmp_path / "stats.pt").exists()
