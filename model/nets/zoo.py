"""The models VELCRO runs on: the papers' torchvision CNNs, a user's file, or the default CNN.

VELCRO's paper uses ResNet-18, GoogLeNet and MobileNetV2; the zero-value prediction paper uses
AlexNet, VGG-16 and ResNet-18.

Nothing is ever downloaded: torchvision architectures are built with `weights=None` and filled
from a state-dict file the user already has (e.g. torchvision's own `resnet18-f37072fd.pth`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torchvision

from model.errors import VelcroError
from model.nets.default_model import load_default_model

PAPER_MODELS: dict[str, Callable[[], nn.Module]] = {
    "resnet18": lambda: torchvision.models.resnet18(weights=None),
    "googlenet": lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(weights=None),
    "alexnet": lambda: torchvision.models.alexnet(weights=None),
    "vgg16": lambda: torchvision.models.vgg16(weights=None),
}


def build_model(name_or_file: str, weights: str | Path | None = None) -> nn.Module:
    """A model in eval mode: `default`, a paper model name (random init or `weights`), or a saved module file.

    A file is either a whole pickled `nn.Module` (torch.save(model)) or a checkpoint of the default CNN.
    """
    if name_or_file == "default":
        return load_default_model(weights)
    if name_or_file in PAPER_MODELS:
        model = PAPER_MODELS[name_or_file]()
        if weights is not None:
            state = _load(weights)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            # torchvision's GoogLeNet checkpoints carry aux classifiers that aux_logits=False drops
            state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                raise VelcroError(
                    f"weights file {weights} does not fit torchvision's {name_or_file}: {str(err).splitlines()[0]}; "
                    f"give a state dict saved from torchvision.models.{name_or_file}"
                ) from None
        return model.eval()
    path = Path(name_or_file)
    if path.suffix in (".pt", ".pth") or path.exists():
        obj = _load(path, full=True)
        if isinstance(obj, nn.Module):
            return obj.eval()
        if isinstance(obj, dict) and "default_cnn" in obj:
            return load_default_model(path)
        raise VelcroError(
            f"{path} holds a {type(obj).__name__}, not a model; save the whole module with "
            "torch.save(model, path), or use a model name with --weights for a state dict"
        )
    raise VelcroError(
        f"unknown model {name_or_file!r}: use default, {', '.join(PAPER_MODELS)}, or a file saved with torch.save(model)"
    )


def _load(path: str | Path, *, full: bool = False):
    path = Path(path)
    if not path.is_file():
        raise VelcroError(f"weights file {path} does not exist; give the path of a local file (nothing is downloaded)")
    try:
        return torch.load(path, map_location="cpu", weights_only=not full)
    except Exception as err:  # torch raises several unrelated types for unreadable files
        raise VelcroError(f"cannot read {path} as a PyTorch file ({type(err).__name__}: {err}); check the path") from None
