"""Freshly initialised networks that embed real and synthetic images for matching.

Distribution matching samples a new randomly initialised network at every iteration (Zhao & Bilen 2023,
"Dataset Condensation with Distribution Matching"): the condensed set must match the real data under
the whole family of embeddings, not one. The network is a registered student family (``convnet3`` by
default), its weights drawn from ``torch.manual_seed(seed of the iteration)``. Intermediate feature maps,
which DataDAM's attention matching needs, come from forward hooks on the network's activation modules,
never from editing its forward pass.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import Tensor, nn

from xdistill.students import build_student

IMAGE_MEAN = 0.5  # networks see (x - 0.5) / 0.5, as every xdistill student does
IMAGE_STD = 0.5


def normalise(images: Tensor) -> Tensor:
    """[0, 1] images -> the networks' input range."""
    return (images - IMAGE_MEAN) / IMAGE_STD


def random_network(family: str, input_shape: tuple[int, int, int], num_classes: int, width: int, seed: int) -> nn.Module:
    """A freshly initialised network of ``family`` (weights from ``seed``), in training mode."""
    torch.manual_seed(seed)
    knobs = {"width": width} if width else {}
    return build_student(family, tuple(input_shape), num_classes, **knobs).train()


def activation_modules(network: nn.Module) -> list[str]:
    """Module paths of the network's activations (ReLU, GELU), in forward order: its intermediate maps."""
    return [name for name, module in network.named_modules() if isinstance(module, (nn.ReLU, nn.GELU))]


@contextmanager
def intermediate_maps(network: nn.Module, paths: list[str]):
    """Capture the outputs of the modules at ``paths`` during forward passes. Yields ``take()``, which
    returns the last pass's maps ([N, C, h, w] each, in the order of ``paths``)."""
    captured: dict[str, Tensor] = {}
    modules = dict(network.named_modules())
    handles = [modules[path].register_forward_hook(lambda _m, _i, out, path=path: captured.__setitem__(path, out))
               for path in paths]

    def take() -> list[Tensor]:
        return [captured[path] for path in paths]

    try:
        yield take
    finally:
        for handle in handles:
            handle.remove()
