"""Cost of VELCRO statistics vs plain inference on the default CNN, measured in one run.

    python -m model.bench_stats [--batch 256] [--repeats 7]

Plain and statistics passes alternate on the same batch of Fashion-MNIST images (already in
memory, so no data loading is timed), and the medians are compared: interleaving keeps other load
on the machine from favouring one side.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from model.nets.data import load_fashion_mnist
from model.nets.default_model import load_default_model
from model.velcro.stats import ActivationStatistics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_default_model()
    images = load_fashion_mnist("test")[0][: args.batch]
    stats = ActivationStatistics(model)
    plain, observed = [], []
    with torch.no_grad():
        model(images)
        stats.observe(images)  # warm-up of both paths
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(images)
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            stats.observe(images)
            observed.append(time.perf_counter() - start)
    p, s = statistics.median(plain), statistics.median(observed)
    print(f"plain inference  {p * 1e3:8.1f} ms per batch of {args.batch}")
    print(f"with statistics  {s * 1e3:8.1f} ms per batch of {args.batch}")
    print(f"ratio            {s / p:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
