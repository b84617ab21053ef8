"""Teacher architectures of the demo world, and how each teacher is trained.

Three families, each small enough to train on two CPU cores in seconds yet at
least five times the size of the default student (about 15k parameters):

=========  ==============================================  ===========  ==========
family     layout                                          feature dim  parameters
=========  ==============================================  ===========  ==========
``cnn``    2 conv blocks (16 channels) -> dense 128        128          ~104k
``mlp``    3 dense layers of 256                           256          ~335k
``vit``    7x7 patches, 2 blocks of width 96, 4 heads      192          ~158k
=========  ==============================================  ===========  ==========

Every teacher takes the preprocessed batch ``x [N,1,28,28]`` (``(pixel/255 -
0.5) / 0.5``) and returns ``(features [N,D], logits [N,C])``, which is what the
zoo's TorchScript files answer.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from xdistill.progress import progress_bar
from xdistill.registry import Registry

INPUT_MEAN = 0.5
INPUT_STD = 0.5


@dataclass(frozen=True)
class Architecture:
    """How to build and train one family of demo teachers.

    The training settings were chosen for reasonable held-out accuracy within
    about ten seconds of one CPU core per teacher.
    """

    build: Callable[[int], nn.Module]  # number of classes -> module
    feature_dim: int  # width of the features a teacher returns
    learning_rate: float  # peak Adam learning rate of the cosine schedule; 1e-4..1e-2
    epochs: int  # passes over the source domain
    batch_size: int  # images per step; smaller gives more steps for the same work
    max_shift: int  # random shift augmentation in pixels; 0..3


ARCHITECTURES: Registry[Architecture] = Registry("demo teacher architecture")


class ConvTeacher(nn.Module):
    """Two conv-BN-ReLU-pool blocks, then a dense layer whose output is the features."""

    def __init__(self, num_classes: int, width: int = 16, feature_dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(width * 7 * 7, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


class MLPTeacher(nn.Module):
    """Three dense ReLU layers on the flattened image; the last one is the features."""

    def __init__(self, num_classes: int, width: int = 256, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = 28 * 28
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU()]
            fan_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return features, self.head(features)


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block (Dosovitskiy et al. 2021, eq. 2-3)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        n, t, _ = tokens.shape
        qkv = self.qkv(self.norm1(tokens)).reshape(n, t, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attention = (q @ k.transpose(-2, -1) * self.head_dim**-0.5).softmax(dim=-1)
        mixed = (attention @ v).transpose(1, 2).reshape(n, t, -1)
        tokens = tokens + self.proj(mixed)
        return tokens + self.mlp(self.norm2(tokens))


class ViTTeacher(nn.Module):
    """A small vision transformer; features are [class token, mean patch token]."""

    def __init__(
        self, num_classes: int, patch: int = 7, dim: int = 96, depth: int = 2, heads: int = 4
    ) -> None:
        super().__init__()
        num_patches = (28 // patch) ** 2
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, num_patches + 1, dim))
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, 2) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(2 * dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        class_token = self.class_token.expand(patches.shape[0], -1, -1)
        tokens = self.norm(self.blocks(torch.cat([class_token, patches], 1) + self.position))
        features = torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1)
        return features, self.head(features)


ARCHITECTURES.register("cnn", Architecture(ConvTeacher, 128, learning_rate=3e-3, epochs=5, batch_size=64, max_shift=2))
ARCHITECTURES.register("mlp", Architecture(MLPTeacher, 256, learning_rate=1e-3, epochs=8, batch_size=32, max_shift=1))
# Transformers learn slowly from 2,500 images: more, smaller steps and gentler shifts.
ARCHITECTURES.register("vit", Architecture(ViTTeacher, 192, learning_rate=2e-3, epochs=5, batch_size=32, max_shift=1))


def build_teacher(architecture: str, num_classes: int, seed: int) -> nn.Module:
    """A freshly initialised teacher of the named family; same seed -> same weights."""
    spec = ARCHITECTURES.get(architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(num_classes)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def preprocess(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images [N,28,28] -> the float batch [N,1,28,28] every teacher takes."""
    x = torch.as_tensor(images).float().div(255.0).unsqueeze(1)
    return (x - INPUT_MEAN) / INPUT_STD


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image [N,1,H,W] by its own random offset of up to ``max_shift`` pixels.

    Uncovered pixels take the image's corner value, the background of a
    preprocessed digit whether it is dark on light or light on dark.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, :, None]
    cols = (dx + torch.arange(w))[:, None, :]
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


@contextlib.contextmanager
def reproducible_torch(threads: int = 1) -> Iterator[None]:
    """Single-threaded deterministic kernels for the duration; restores the settings after."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)


def train_teacher(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    learning_rate: float,
    epochs: int,
    seed: int,
    batch_size: int = 64,
    max_shift: int = 2,
    progress: bool = False,
    description: str = "",
) -> nn.Module:
    """Adam with a cosine schedule and random shifts; returns ``model`` in eval mode.

    images: uint8 [N,28,28]; labels: int64 [N]. Same inputs and seed -> same weights.
    """
    x, y = preprocess(images), torch.as_tensor(labels, dtype=torch.int64)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    total_steps = epochs * steps_per_epoch
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    warmup_steps = max(1, total_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / total_steps)),
    )
    model.train()
    bar = progress_bar(total=total_steps, desc=description, disable=not progress, leave=False)
    with reproducible_torch(), bar:
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), batch_size):
                batch = order[start : start + batch_size]
                _, logits = model(random_shift(x[batch], max_shift, generator))
                loss = F.cross_entropy(logits, y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


@torch.inference_mode()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (in eval mode) on uint8 images [N,28,28]."""
    model.eval()
    x = preprocess(images)
    predictions = torch.cat([model(x[i : i + batch_size])[1].argmax(1) for i in range(0, len(x), batch_size)])
    return float((predictions.numpy() == labels).mean()) if len(labels) else float("nan")
