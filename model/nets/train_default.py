"""Train the offline default CNN on all 10 Fashion-MNIST classes, deterministically.

    python -m model.nets.train_default [--out model/nets/checkpoints/default_cnn.pt] [--check]

Fixed seed, fixed thread count and `torch.use_deterministic_algorithms(True)`, so rerunning on the
same machine reproduces the checkpoint bit for bit; `--check` retrains into memory and compares
with the committed file. The checkpoint records its test accuracy, which a test re-measures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from model.nets.data import load_fashion_mnist
from model.nets.default_model import CHECKPOINT, DefaultCNN
from model.velcro.evaluate import accuracy

SEED = 0
THREADS = 2
EPOCHS = 1
BATCH = 128
LR = 0.01
CHECK_IMAGES = 2000  # the first test images, re-measured by the test suite


def train(progress: bool = True) -> dict:
    """Train and return the checkpoint dictionary (weights + metadata)."""
    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    images, labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    model = DefaultCNN()
    steps = EPOCHS * ((len(images) + BATCH - 1) // BATCH)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=steps)
    generator = torch.Generator().manual_seed(SEED)
    bar = tqdm(total=steps, desc="train default CNN", disable=not progress)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), BATCH):
            chosen = order[start : start + BATCH]
            loss = F.cross_entropy(model(images[chosen]), labels[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    meta = {
        "seed": SEED,
        "epochs": EPOCHS,
        "batch": BATCH,
        "threads": THREADS,
        "torch": str(torch.__version__),
        "test_accuracy": accuracy(model, test_images, test_labels),
        "check_images": CHECK_IMAGES,
        "check_accuracy": accuracy(model, test_images[:CHECK_IMAGES], test_labels[:CHECK_IMAGES]),
    }
    return {"default_cnn": model.state_dict(), "meta": meta}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CHECKPOINT)
    parser.add_argument("--check", action="store_true", help="retrain and compare with --out instead of writing it")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    checkpoint = train()
    elapsed = time.perf_counter() - started
    meta = checkpoint["meta"]
    print(f"trained in {elapsed:.0f} s: test accuracy {meta['test_accuracy']:.4f}")
    if args.check:
        saved = torch.load(args.out, map_location="cpu", weights_only=True)["default_cnn"]
        same = all(torch.equal(saved[k], v) for k, v in checkpoint["default_cnn"].items())
        print("checkpoint reproduced bit for bit" if same else f"checkpoint differs from {args.out}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
