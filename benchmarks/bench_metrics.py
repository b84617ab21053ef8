"""Time every transferability metric on one teacher's outputs at a realistic size.

    PYTHONPATH=src python benchmarks/bench_metrics.py [--n 5000] [--d 1024] [--classes 10] [--blas-threads 1]

Prints one line per metric: its median wall and CPU time over ``--repeats``
runs. On a machine shared with other jobs, BLAS threads wait on each other and
wall times swing widely; ``--blas-threads 1`` with the CPU column then gives
the work itself.
Targets on a 2-core machine at N=5000, D=1024, C=10: under 1 s for each
closed-form metric, under 10 s for the linear probe.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from xdistill.select import METRICS, compute_metric, prepare_features


def synthetic_teacher(n: int, d: int, num_classes: int, source_classes: int, seed: int = 0):
    """Features with class structure, probabilities over source classes, labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    features = rng.standard_normal((n, d)) + 0.3 * rng.standard_normal((num_classes, d))[labels]
    logits = rng.standard_normal((n, source_classes)) + rng.standard_normal((num_classes, source_classes))[labels]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return features, probs / probs.sum(axis=1, keepdims=True), labels


def median_seconds(run, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``run`` (CPU time sums all threads)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="samples")
    parser.add_argument("--d", type=int, default=1024, help="feature dimension")
    parser.add_argument("--classes", type=int, default=10, help="target classes")
    parser.add_argument("--source-classes", type=int, default=1000, help="teacher's own classes")
    parser.add_argument("--repeats", type=int, default=3, help="runs per metric; the median is printed")
    parser.add_argument("--blas-threads", type=int, default=None, help="limit BLAS threads (default: BLAS's own)")
    args = parser.parse_args()
    if args.blas_threads is not None:
        threadpool_limits(limits=args.blas_threads, user_api="blas")

    features, probs, labels = synthetic_teacher(args.n, args.d, args.classes, args.source_classes)
    print(f"N={args.n} D={args.d} C={args.classes} Cs={args.source_classes}, median of {args.repeats} runs")
    print(f"{'':28s} {'wall':>8s} {'cpu':>8s}")
    runs = {name: (lambda name=name: compute_metric(name, features, probs, labels=labels)) for name in METRICS.names()}
    for method in ("pca", "standardize", "l2"):
        runs[f"prepare_features {method}"] = lambda method=method: prepare_features(features, method, dim=64)
    for name, run in runs.items():
        wall, cpu = median_seconds(run, args.repeats)
        print(f"{name:28s} {wall:7.3f}s {cpu:7.3f}s")


if __name__ == "__main__":
    main()
