"""The paper's analyses as PNGs: variance distributions per layer (Figs 3–8), accuracy vs C (Fig. 9).

Variances are shown as histograms of log10(V + 1e-12) so that the specialized task's shift towards
zero (value locality) is visible across many orders of magnitude; exactly-zero variances land in the
leftmost bin.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)
import torch  # noqa: E402

from model.velcro.stats import ActivationStatistics  # noqa: E402

_FLOOR = 1e-12


def plot_variance_histograms(
    stats_by_task: Mapping[str, ActivationStatistics], out: Path, *, sites: Sequence[int] | None = None, title: str = ""
) -> Path:
    """One panel per activation output, one histogram per task (e.g. 'footwear' vs 'all')."""
    first = next(iter(stats_by_task.values()))
    sites = list(sites) if sites is not None else list(range(len(first.sites)))
    cols = min(3, len(sites))
    rows = math.ceil(len(sites) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, k in zip(axes.flat, sites):
        logs = {task: torch.log10(s.variance(k).reshape(-1) + _FLOOR) for task, s in stats_by_task.items()}
        low = min(float(v.min()) for v in logs.values())
        high = max(float(v.max()) for v in logs.values())
        for task, values in logs.items():
            ax.hist(values.numpy(), bins=60, range=(low, high + 1e-9), histtype="step", density=True, label=task)
        ax.set_title(f"layer {k}: {first.sites[k].name}", fontsize=9)
        ax.set_xlabel("log10 variance")
    for ax in list(axes.flat)[len(sites):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title or "variance of activation elements: specialized task vs all classes")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_accuracy_vs_ratio(curves: Mapping[str, dict], out: Path) -> Path:
    """Fig. 9: test accuracy vs saving ratio per task, baseline dashed."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, curve in curves.items():
        points = sorted(curve["points"], key=lambda p: p["saving_ratio"])
        line = ax.plot([p["saving_ratio"] for p in points], [p["test_accuracy"] for p in points], marker="o", label=task)
        ax.axhline(curve["baseline_test_accuracy"], color=line[0].get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("compression-saving ratio C")
    ax.set_ylabel("top-1 accuracy (test)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_accuracy_vs_mac_reduction(curves: Mapping[str, dict], out: Path) -> Path:
    """Test accuracy vs MAC reduction per task: one line per method (VELCRO, prediction, both)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(6 * len(curves), 4), squeeze=False)
    for ax, (task, curve) in zip(axes.flat, curves.items()):
        for method, points in curve["methods"].items():
            points = sorted(points, key=lambda p: p["mac_reduction"])
            ax.plot([p["mac_reduction"] for p in points], [p["test_accuracy"] for p in points], marker="o", label=method)
        ax.axhline(curve["baseline_test_accuracy"], color="grey", linestyle="--", linewidth=0.8, label="uncompressed")
        ax.set_title(task)
        ax.set_xlabel("MAC reduction of the evaluated layers")
        ax.set_ylabel("top-1 accuracy (test)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
