"""Typed settings of teacher selection: the one home of their defaults.

``SelectionConfig`` groups what ranks and weights the teachers; ``RankConfig``
is the ``xdistill rank`` verb's config. Both import nothing from the stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xdistill.config import device_problems, seed_problems


@dataclass
class SelectionConfig:
    """How teachers are scored, ranked and weighted."""

    metric: str = "auto"  # the metric that ranks and weights; auto = the first of a documented order that can run
    # (gbc first: best Kendall tau on the demo targets; see docs/selection.md, "Few labels")
    metrics: list[str] = field(default_factory=list)  # metrics to report beside it; empty = every registered one
    prepare: str = "pca"  # feature normalisation before scoring: none | standardize | pca | l2
    prepare_dim: int = 32  # components kept by 'pca' (8-128)
    weight_temperature: float = 1.0  # softmax temperature over standardised scores (> 0; 1-2 measured close)
    top_k: int = 3  # teachers given weight (bounds the bridging work for large zoos); 0 = all
    # Unlabeled samples (uniform without replacement, seed 0) that feature preparation, GBC's reference and the
    # bridges' standardisation use; bounds selection's time and memory on large pools (5,000-100,000); 0 = all.
    unlabeled_sample: int = 20_000
    cache_top_k: int = 32  # language models: next-token ids the teacher cache keeps per position (8-128)

    def problems(self) -> list[str]:
        problems = []
        if self.cache_top_k < 1:
            problems.append(f"'cache_top_k' must be >= 1. Got {self.cache_top_k}.")
        if not (math.isfinite(self.weight_temperature) and self.weight_temperature > 0):
            problems.append(f"'weight_temperature' must be a finite number > 0. Got {self.weight_temperature}.")
        if self.top_k < 0:
            problems.append(f"'top_k' must be >= 0 (0 keeps every teacher). Got {self.top_k}.")
        if self.prepare_dim < 1:
            problems.append(f"'prepare_dim' must be >= 1. Got {self.prepare_dim}.")
        if self.unlabeled_sample < 0:
            problems.append(f"'unlabeled_sample' must be >= 0 (0 uses every unlabeled sample). Got {self.unlabeled_sample}.")
        return problems


_SELECTION = SelectionConfig()
UNLABELED_SAMPLE_SEED = 0  # seed of the unlabeled sample: a property of the task, the same for every teacher
AUTO_METRIC = "auto"  # rank by the first metric of xdistill.select.applicability.FALLBACK_ORDER that can run


@dataclass
class RankConfig:
    """``xdistill rank``: score, rank and weight a zoo's teachers for a task."""

    task: str = ""  # task folder
    zoo: str = ""  # zoo YAML file
    cache_dir: str = ""  # teacher-output cache; empty = $XDISTILL_HOME/cache
    teachers: list[str] = field(default_factory=list)  # subset of the zoo; empty = all
    metric: str = _SELECTION.metric  # the metric that ranks and weights
    metrics: list[str] = field(default_factory=list)  # metrics to report; empty = all registered
    prepare: str = _SELECTION.prepare  # feature normalisation before scoring: none | standardize | pca | l2
    prepare_dim: int = _SELECTION.prepare_dim  # components kept by 'pca' (8-128)
    weight_temperature: float = _SELECTION.weight_temperature  # softmax temperature of standardised scores (> 0)
    top_k: int = _SELECTION.top_k  # teachers given weight; 0 = all
    unlabeled_sample: int = _SELECTION.unlabeled_sample  # unlabeled samples selection uses (seeded); 0 = all
    cache_top_k: int = _SELECTION.cache_top_k  # language models: next-token ids cached per position (8-128)
    out: str = ""  # JSON output file
    validate: bool = False  # also distill a short-budget student per teacher and correlate
    validate_epochs: int = 20  # epochs of each validation student (shorter budgets blur the differences)
    seed: int = 0  # seed of the validation students
    device: str = "cpu"  # cpu or cuda

    @property
    def selection(self) -> SelectionConfig:
        return selection_of(self)

    def problems(self) -> list[str]:
        problems = self.selection.problems() + seed_problems(seed=self.seed) + device_problems(self.device)
        if self.validate_epochs < 1:
            problems.append(f"'validate_epochs' must be >= 1. Got {self.validate_epochs}.")
        return problems


def unlabeled_positions(n: int, size: int) -> np.ndarray:
    """Sorted positions [min(n, size)] of the unlabeled samples selection uses: all of them when
    ``size`` is 0 or at least ``n``, else ``size`` drawn uniformly without replacement with
    :data:`UNLABELED_SAMPLE_SEED`, so every teacher is scored on the same samples."""
    if size == 0 or n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(UNLABELED_SAMPLE_SEED).choice(n, size=size, replace=False))


def selection_of(config: object) -> SelectionConfig:
    """The selection settings of any config that carries SelectionConfig's fields flat."""
    return SelectionConfig(metric=config.metric, metrics=list(getattr(config, "metrics", [])), prepare=config.prepare,
                           prepare_dim=config.prepare_dim, weight_temperature=config.weight_temperature,
                           top_k=config.top_k,
                           unlabeled_sample=getattr(config, "unlabeled_sample", _SELECTION.unlabeled_sample),
                           cache_top_k=getattr(config, "cache_top_k", _SELECTION.cache_top_k))
