"""How long each transferability metric takes on one teacher's outputs at a realistic size."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def synthetic_teacher(n: int, d: int, num_classes: int, source_classes: int,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features [N, D] with class structure, probabilities [N, source_classes] and labels [N]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    features = rng.standard_normal((n, d)) + 0.3 * rng.standard_normal((num_classes, d))[labels]
    logits = rng.standard_normal((n, source_classes)) + rng.standard_normal((num_classes, source_classes))[labels]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return features, probs / probs.sum(axis=1, keepdims=True), labels


def median_seconds(run: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``run`` (CPU time sums all threads)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def metric_timings(n: int = 5000, d: int = 1024, classes: int = 10, source_classes: int = 1000,
                   repeats: int = 1, preparations: bool = False) -> dict[str, tuple[float, float]]:
    """Every registered metric's (and with ``preparations`` each feature preparation's) median
    (wall, CPU) seconds on synthetic teacher outputs."""
    from xdistill.select import METRICS, compute_metric, prepare_features

    features, probs, labels = synthetic_teacher(n, d, classes, source_classes)
    runs = {name: (lambda name=name: compute_metric(name, features, probs, labels=labels)) for name in METRICS.names()}
    if preparations:
        for method in ("pca", "standardize", "l2"):
            runs[f"prepare_features {method}"] = lambda method=method: prepare_features(features, method, dim=64)
    return {name: median_seconds(run, repeats) for name, run in runs.items()}
