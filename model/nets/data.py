"""Data for VELCRO: specialized tasks as class subsets, and the preprocessing / validation split.

Two sources:
- Fashion-MNIST from Debian's `dataset-fashion-mnist` (offline default). The general-purpose model is
  trained on the 60k training images; tasks are drawn from the 10k test images, which it never saw.
- Any ImageNet-layout folder (`root/<wnid>/*.JPEG`) for the paper's setting. The folder must hold
  the directories of every class the model was trained on: the model's output index of a class is
  its position in the sorted directory list, as with torchvision's ImageFolder.

A task's images are split once, seeded, into three disjoint parts: preprocessing (the statistics;
default 1.5 %, the paper uses < 2 %), tuning (what a threshold search judges its candidates on) and
test (what evaluations and reports state).
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from model.errors import VelcroError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
FASHION_TASKS: dict[str, tuple[str, ...]] = {
    "footwear": ("sandal", "sneaker", "ankle boot"),
    "tops": ("t-shirt/top", "pullover", "coat", "shirt"),
    "trouser-dress": ("trouser", "dress"),
    "all": FASHION_CLASSES,
}
# The paper's Table 1 as ILSVRC-2012 WordNet IDs.
IMAGENET_TASKS: dict[str, tuple[str, ...]] = {
    "cats-2": ("n02124075", "n02123394"),  # Egyptian cat, Persian cat
    "cats-3": ("n02124075", "n02123394", "n02125311"),  # + cougar
    "cats": ("n02124075", "n02123394", "n02125311", "n02123159"),  # + tiger cat (= Cats-4)
    "dogs": ("n02100735", "n02110185", "n02102040", "n02092002"),  # English setter, Siberian husky, English springer, Scottish deerhound
    "cars": ("n02814533", "n02930766", "n03100240", "n03770679"),  # beach wagon, cab, convertible, minivan
}
IMAGENET_TASKS["cats-4"] = IMAGENET_TASKS["cats"]
DEFAULT_PREP_FRACTION = 0.015
DEFAULT_TUNE_IMAGES = 1000  # a loss of 0.5 points is 5 images: visible, and not one image's noise


@dataclass
class TaskData:
    """Images and labels of one task; labels are indices of the model's outputs."""

    name: str
    images: torch.Tensor  # Fashion-MNIST: (N, 1, 28, 28) float in [0, 1]; ImageNet: file list, loaded lazily
    labels: torch.Tensor
    classes: tuple[str, ...]


@dataclass
class Split:
    """Disjoint, sorted index sets of a task: preprocessing, tuning and test."""

    prep: torch.Tensor
    tune: torch.Tensor
    test: torch.Tensor

    @property
    def val(self) -> torch.Tensor:
        """The test images, under the name `model.deploy` uses (it splits without a tuning part)."""
        return self.test


# ---------------------------------------------------------------------- Fashion-MNIST
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(split: str, root: Path | str = FASHION_MNIST_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 (N, 1, 28, 28) in [0, 1], labels int64) of split `train` or `test`."""
    root = Path(root)
    prefix = {"train": "train", "test": "t10k"}[split]
    files = [root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise VelcroError(
            f"Fashion-MNIST is missing ({', '.join(missing)}); install it with `make setup` "
            "(or `sudo apt-get install dataset-fashion-mnist`)"
        )
    images = torch.from_numpy(_read_idx(files[0]).copy()).unsqueeze(1).float().div_(255)
    labels = torch.from_numpy(_read_idx(files[1]).astype(np.int64))
    return images, labels


def resolve_fashion_classes(task: str | Sequence[str]) -> tuple[int, ...]:
    """Class indices of a named task or of a list of class names / indices."""
    if isinstance(task, str):
        key = task.lower()
        if key in FASHION_TASKS:
            names: Sequence = FASHION_TASKS[key]
        else:
            names = [n.strip() for n in task.split(",") if n.strip()]
            if len(names) == 1 and names[0].lower() not in FASHION_CLASSES and not names[0].isdigit():
                raise VelcroError(
                    f"unknown task {task!r}: use one of {', '.join(FASHION_TASKS)} or a comma-separated "
                    f"list of classes from: {', '.join(FASHION_CLASSES)}"
                )
    else:
        names = task
    if not names:
        raise VelcroError(f"the task {task!r} names no class: use one of {', '.join(FASHION_TASKS)} or a "
                          f"comma-separated list of classes from: {', '.join(FASHION_CLASSES)}")
    indices = []
    for name in names:
        if isinstance(name, int) or str(name).isdigit():
            index = int(name)
            if not 0 <= index < len(FASHION_CLASSES):
                raise VelcroError(f"class index {index} is out of range: Fashion-MNIST classes are 0..9")
        elif str(name).lower() in FASHION_CLASSES:
            index = FASHION_CLASSES.index(str(name).lower())
        else:
            raise VelcroError(
                f"unknown class {name!r}: Fashion-MNIST classes are {', '.join(FASHION_CLASSES)}"
            )
        indices.append(index)
    return tuple(sorted(set(indices)))


def fashion_task(task: str | Sequence[str] = "footwear", root: Path | str = FASHION_MNIST_DIR) -> TaskData:
    """A specialized task of the offline default: the test images of its classes."""
    classes = resolve_fashion_classes(task)
    images, labels = load_fashion_mnist("test", root)
    keep = torch.isin(labels, torch.tensor(classes))
    name = task if isinstance(task, str) else ",".join(FASHION_CLASSES[c] for c in classes)
    return TaskData(name, images[keep], labels[keep], tuple(FASHION_CLASSES[c] for c in classes))


# ---------------------------------------------------------------------- ImageNet layout
def imagenet_task(root: Path | str, task: str | Sequence[str]) -> TaskData:
    """A task of an ImageNet-layout folder; `images` holds file paths (see `ImageFiles`)."""
    root = Path(root)
    if not root.is_dir():
        raise VelcroError(f"image folder {root} does not exist; give an ImageNet-layout folder (root/<wnid>/*.JPEG)")
    all_classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if isinstance(task, str) and task.lower() in IMAGENET_TASKS:
        wanted = IMAGENET_TASKS[task.lower()]
    elif isinstance(task, str):
        wanted = tuple(w.strip() for w in task.split(",") if w.strip())
    else:
        wanted = tuple(task)
    unknown = [w for w in wanted if w not in all_classes]
    if unknown:
        raise VelcroError(
            f"class(es) {', '.join(unknown)} not found in {root}: use a task name "
            f"({', '.join(IMAGENET_TASKS)}) or WordNet IDs that are directories of the folder"
        )
    files, labels = [], []
    for wnid in wanted:
        for path in sorted((root / wnid).iterdir()):
            if path.is_file():
                files.append(path)
                labels.append(all_classes.index(wnid))
    if not files:
        raise VelcroError(f"no images for {', '.join(wanted)} in {root}")
    return TaskData(str(task), ImageFiles(files), torch.tensor(labels), tuple(wanted))


class ImageFiles:
    """A list of image files that indexes like a tensor of preprocessed (3, 224, 224) images."""

    def __init__(self, files: list[Path], size: int = 224) -> None:
        from torchvision import transforms

        self.files = files
        self.transform = transforms.Compose(
            [
                transforms.Resize(int(size * 256 / 224)),
                transforms.CenterCrop(size),
                transforms.ToTensor(),
                transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._load(self.files[int(i)]) for i in index])

    def _load(self, path: Path) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB"))
        except OSError as err:  # includes PIL's UnidentifiedImageError
            raise VelcroError(f"cannot read image {path} ({err}); replace or remove the file") from None


# ---------------------------------------------------------------------- splitting
def default_tune_images(n_images: int, n_prep: int) -> int:
    """`DEFAULT_TUNE_IMAGES`, or half of what the preprocessing part leaves when the task is small."""
    return min(DEFAULT_TUNE_IMAGES, (n_images - n_prep) // 2)


def split_task(
    n_images: int, *, prep_fraction: float = DEFAULT_PREP_FRACTION, prep_images: int | None = None,
    tune_images: int | None = 0, seed: int = 0,
) -> Split:
    """Seeded disjoint split of a task's N images: preprocessing, tuning, test.

    `prep_images` (or ⌊prep_fraction·N⌋) images for the statistics, `tune_images` for a search
    (None: `default_tune_images`; 0: no tuning part), the rest for testing. One seeded permutation
    is cut in that order, so the preprocessing images do not depend on the tuning size.
    """
    if prep_images is None:
        if not 0 < prep_fraction < 1:
            raise VelcroError(f"prep fraction {prep_fraction} must be in (0, 1); the paper uses < 0.02")
        prep_images = int(prep_fraction * n_images)
    if prep_images < 2:
        raise VelcroError(
            f"{prep_images} preprocessing image(s) of {n_images}: VELCRO needs at least 2 for a variance; "
            "raise --prep-fraction or set --prep-images"
        )
    if prep_images >= n_images:
        raise VelcroError(
            f"{prep_images} preprocessing images leave none of the task's {n_images} for testing; "
            "lower --prep-images / --prep-fraction"
        )
    if tune_images is None:
        tune_images = default_tune_images(n_images, prep_images)
    if tune_images < 0:
        raise VelcroError(f"--tune-images {tune_images}: give 0 or more tuning images")
    if prep_images + tune_images >= n_images:
        raise VelcroError(
            f"{prep_images} preprocessing and {tune_images} tuning images leave none of the task's {n_images} "
            "for testing; lower --tune-images"
        )
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))
    cut = prep_images + tune_images
    return Split(
        prep=order[:prep_images].sort().values, tune=order[prep_images:cut].sort().values, test=order[cut:].sort().values
    )
