"""The offline default: a small general-purpose Fashion-MNIST CNN with one hardware-shaped layer.

`hw_dw` is a 16-channel depthwise 3×3 convolution (stride 1, zero padding 1, bias) followed by ReLU
on 64×64 maps: each channel is exactly one instance of the FPGA conv2d core (rtl/README.md), so the
hardware can replace this layer. The 28×28 images are upsampled to 64×64 inside the network so
every caller feeds plain Fashion-MNIST tensors.

The checkpoint in `model/nets/checkpoints/default_cnn.pt` is produced by `python -m model.nets.train_default`
(deterministic: fixed seeds, fixed thread count, deterministic algorithms).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.errors import VelcroError

CHECKPOINT = Path(__file__).with_name("checkpoints") / "default_cnn.pt"
HW_SIZE = 64  # the hardware's map height and width
HW_CHANNELS = 16  # one conv2d instance per channel


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DefaultCNN(nn.Module):
    """Fashion-MNIST classifier: stem → hw_dw (the hardware layer) → three conv stages → linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(1, HW_CHANNELS)
        self.hw_dw = nn.Conv2d(HW_CHANNELS, HW_CHANNELS, 3, stride=1, padding=1, groups=HW_CHANNELS, bias=True)
        self.hw_relu = nn.ReLU()
        self.stage1 = _conv_bn_relu(HW_CHANNELS, 48)  # 32×32
        self.stage2 = _conv_bn_relu(48, 96)  # 16×16
        self.stage3 = _conv_bn_relu(96, 128)  # 8×8
        self.fc = nn.Linear(128, num_classes)

    def upsample(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) images in [0, 1] to (N, 1, 64, 64), normalised around zero."""
        x = F.interpolate(images, size=(HW_SIZE, HW_SIZE), mode="bilinear", align_corners=False)
        return (x - 0.286) / 0.353  # Fashion-MNIST training mean and standard deviation

    def hw_input(self, images: torch.Tensor) -> torch.Tensor:
        """Input of the hardware layer: the stem's post-ReLU output, (N, 16, 64, 64)."""
        return self.stem(self.upsample(images))

    def hw_layer(self, hw_input: torch.Tensor) -> torch.Tensor:
        """The hardware layer itself: depthwise 3×3 conv + ReLU, (N, 16, 64, 64) → (N, 16, 64, 64)."""
        return self.hw_relu(self.hw_dw(hw_input))

    def from_hw_output(self, hw_output: torch.Tensor) -> torch.Tensor:
        """The rest of the network after the hardware layer: logits from its (N, 16, 64, 64) output."""
        x = self.stage1(F.max_pool2d(hw_output, 2))
        x = self.stage2(F.max_pool2d(x, 2))
        x = self.stage3(F.max_pool2d(x, 2))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.from_hw_output(self.hw_layer(self.hw_input(images)))


# Activation outputs of DefaultCNN in call order; site 1 is the hardware layer.
HW_SITE = 1


def load_default_model(path: str | Path | None = None) -> DefaultCNN:
    """The trained default CNN in eval mode (from the committed checkpoint unless `path` is given)."""
    path = Path(path) if path is not None else CHECKPOINT
    if not path.is_file():
        raise VelcroError(
            f"default model checkpoint {path} is missing; create it with `python -m model.nets.train_default` "
            "(or `make algorithm-train`)"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "default_cnn" not in checkpoint:
        raise VelcroError(f"{path} is not a default-CNN checkpoint; recreate it with `python -m model.nets.train_default`")
    model = DefaultCNN()
    model.load_state_dict(checkpoint["default_cnn"])
    return model.eval()


def checkpoint_metadata(path: str | Path | None = None) -> dict:
    """What the training script recorded next to the weights (accuracy, seed, epochs, ...)."""
    path = Path(path) if path is not None else CHECKPOINT
    return dict(torch.load(path, map_location="cpu", weights_only=True)["meta"])
