"""`velcro` under a real `torchrun --nproc-per-node 2` on the offline default equals one process.

Statistics bit for bit, the JSON of eval (accuracy and MAC counts) and search (the chosen tuple)
character for character, printed once.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from model import cli

ROOT = Path(__file__).resolve().parents[2]
TASK = ["--task", "sandal,sneaker", "--prep-images", "40", "--tune-images", "200", "--test-images", "300"]


def _torchrun(argv: list[str]) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "model.cli", *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def _single(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 0
    return capsys.readouterr().out


def test_two_processes_equal_one(tmp_path, capsys):
    # statistics: 3 batches of 16, so the ranks get unequal shares (2 and 1)
    stats = ["stats", *TASK[:4], "--batch-size", "16", "--out"]
    one = json.loads(_single(capsys, [*stats, str(tmp_path / "one.pt")]))
    two = json.loads(_torchrun([*stats, str(tmp_path / "two.pt")]))
    assert two == one | {"out": str(tmp_path / "two.pt")} and one["images"] == 40
    a, b = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("one", "two"))
    assert a["count"] == b["count"] == 40 and a["sites"] == b["sites"]
    assert all(torch.equal(x, y) for key in ("means", "m2s") for x, y in zip(a[key], b[key], strict=True))

    # eval: the statistics in one batch (rank 1 observes nothing), accuracy and prediction counts summed
    evaluate = ["eval", *TASK, "--batch-size", "64", "--thresholds", "0.3,0.3,0.3,0.3", "--zp", "grid2"]
    out = _torchrun(evaluate)
    assert out == _single(capsys, evaluate)
    assert json.loads(out)["test_images"] == 300 and json.loads(out)["predicted_fraction"] > 0

    search = ["search", "--lossless", *TASK, "--batch-size", "64"]
    out = _torchrun(search)
    assert out == _single(capsys, search)
    chosen = json.loads(out)["chosen"]
    assert chosen["saving_ratio"] > 0.2 and chosen["thresholds"].startswith("-,")
