"""Time every transferability metric on one teacher's outputs at a realistic size.

    python benchmarks/bench_metrics.py [--n 5000] [--d 1024] [--classes 10] [--blas-threads 1]

Prints one line per metric: its median wall and CPU time over ``--repeats``
runs. On a machine shared with other jobs, BLAS threads wait on each other and
wall times swing widely; ``--blas-threads 1`` with the CPU column then gives
the work itself. Targets on a 2-core machine at N=5000, D=1024, C=10: under
1 s for each closed-form metric, under 10 s for the linear probe.
"""

from __future__ import annotations

import argparse

from threadpoolctl import threadpool_limits

from xdistill.bench.metric_timing import metric_timings


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
    print(f"N={args.n} D={args.d} C={args.classes} Cs={args.source_classes}, median of {args.repeats} runs")
    print(f"{'':28s} {'wall':>8s} {'cpu':>8s}")
    timings = metric_timings(args.n, args.d, args.classes, args.source_classes, args.repeats, preparations=True)
    for name, (wall, cpu) in timings.items():
        print(f"{name:28s} {wall:7.3f}s {cpu:7.3f}s")


if __name__ == "__main__":
    main()
