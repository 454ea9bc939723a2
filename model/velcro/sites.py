"""Finding every activation-function output of a model, however the model calls it.

VELCRO works on activation *outputs*, not on modules: torchvision's ResNet-18 calls one `nn.ReLU`
twice per BasicBlock, GoogLeNet's `BasicConv2d` calls `F.relu` with no module at all, MobileNetV2
uses `nn.ReLU6` (which runs `F.hardtanh`), and many models activate in place. Module hooks miss or
merge such calls, so the interception here is a `TorchFunctionMode` that sees every torch function
call made during the model's forward pass. A call to an activation function is one *site*; sites are
numbered in call order, which is deterministic for a model without data-dependent control flow.

Only activations that follow a convolution count (see model/README.md, "Statistics"): an activation
is a site if a convolution ran since the previous activation. The mode also notes each
convolution's MACs, so a site knows the cost of the convolutions whose outputs map one-to-one onto
its elements (used for the MAC-weighted saving ratio).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from model.errors import VelcroError

# Activation functions by the name a site reports. nn.ReLU -> F.relu, nn.ReLU6 -> F.hardtanh.
ACTIVATION_FUNCTIONS: dict[Callable, str] = {
    F.relu: "relu",
    torch.relu: "relu",
    torch.relu_: "relu",
    torch.Tensor.relu: "relu",
    torch.Tensor.relu_: "relu",
    F.relu6: "relu6",
    F.hardtanh: "hardtanh",
    F.hardtanh_: "hardtanh",
    F.leaky_relu: "leaky_relu",
    F.elu: "elu",
    F.gelu: "gelu",
    F.silu: "silu",
    F.hardswish: "hardswish",
}
CONV_FUNCTIONS = (torch.conv1d, torch.conv2d, torch.conv3d)
ACTIVATION_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish)


@dataclass(frozen=True)
class SiteInfo:
    """One activation output: where it is called, its per-image shape and the MACs that produce it."""

    index: int
    name: str
    function: str
    shape: tuple[int, ...]  # per image, e.g. (C, H, W)
    macs: int  # per image: convolutions since the previous activation whose output shape is `shape`

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# on_site(index, output) returns the tensor the model continues with (the output itself, or a
# compressed copy); `name` and `function` describe the call for site discovery.
SiteCallback = Callable[[int, str, str, torch.Tensor, int], torch.Tensor]


class _ActivationMode(TorchFunctionMode):
    """Calls `on_site` for every activation output that follows a convolution."""

    def __init__(self, on_site: SiteCallback, names: "_ModuleNames | None") -> None:
        super().__init__()
        self.on_site = on_site
        self.names = names
        self.index = 0
        self.pending_convs: list[tuple[tuple[int, ...], int]] = []
        self.total_macs = 0  # convolution + linear MACs per image over the whole forward pass

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in CONV_FUNCTIONS:
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            per_image = tuple(out.shape[1:])
            macs = math.prod(per_image) * weight[0].numel()
            self.pending_convs.append((per_image, macs))
            self.total_macs += macs
        elif func is F.linear:
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            self.total_macs += (out.numel() // max(out.shape[0], 1)) * weight.shape[1]
        elif func in ACTIVATION_FUNCTIONS and self.pending_convs and isinstance(out, torch.Tensor):
            shape = tuple(out.shape[1:])
            macs = sum(m for s, m in self.pending_convs if s == shape)
            self.pending_convs.clear()
            function = ACTIVATION_FUNCTIONS[func]
            name, function = self.names.current(function) if self.names else ("", function)
            new = self.on_site(self.index, name, function, out, macs)
            self.index += 1
            if new is not out:
                inplace = bool(args) and args[0] is out
                out = out.copy_(new) if inplace else new
        return out


class _ModuleNames:
    """Tracks the innermost running submodule so a site gets a readable, unique name."""

    def __init__(self, model: nn.Module) -> None:
        self.stack: list[tuple[str, nn.Module]] = []
        self.seen: dict[str, int] = {}
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._push(name, module)))
            self.handles.append(module.register_forward_hook(self._pop, always_call=True))

    def _push(self, name: str, module: nn.Module):
        def hook(_module, _args):
            self.stack.append((name, module))

        return hook

    def _pop(self, _module, _args, _output):
        if self.stack:
            self.stack.pop()

    def current(self, function: str) -> tuple[str, str]:
        """(unique site name, activation name): `layer1.0.relu#2` is the second call of that module."""
        name, module = self.stack[-1] if self.stack else ("", None)
        if isinstance(module, ACTIVATION_MODULES):
            base, function = name, type(module).__name__.lower()
        else:
            base = f"{name or 'model'}:{function}"
        self.seen[base] = self.seen.get(base, 0) + 1
        return (base if self.seen[base] == 1 else f"{base}#{self.seen[base]}"), function

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@contextlib.contextmanager
def intercept(model: nn.Module, on_site: SiteCallback, *, with_names: bool = False) -> Iterator[_ActivationMode]:
    """Run `model` calls inside this context with `on_site` seeing every activation site."""
    names = _ModuleNames(model) if with_names else None
    mode = _ActivationMode(on_site, names)
    try:
        with mode:
            yield mode
    finally:
        if names:
            names.remove()


def find_sites(model: nn.Module, example: torch.Tensor) -> tuple[list[SiteInfo], int]:
    """Run one forward pass on `example` and return the sites and the model's MACs per image."""
    sites: list[SiteInfo] = []

    def record(index: int, name: str, function: str, out: torch.Tensor, macs: int) -> torch.Tensor:
        sites.append(SiteInfo(index, name, function, tuple(out.shape[1:]), macs))
        return out

    with torch.no_grad(), intercept(model, record, with_names=True) as mode:
        model(example)
    if not sites:
        raise VelcroError(
            "the model has no activation function (ReLU, ReLU6, ...) after a convolution; VELCRO "
            "compresses activation outputs, so give a CNN with activations after its convolutions"
        )
    return sites, mode.total_macs
