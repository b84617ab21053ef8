"""Measure selection choices on the demo world without training a student.

    python benchmarks/selection_sweep.py [--home DIR] [--out FILE.json]

Prints, per demo target, each metric's top teacher, its regret and the decoy's
rank, then the mean over targets of the mixed-target test accuracy by
metric|temperature|top_k (the tables behind docs/selection.md's defaults).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xdistill.bench.selection_sweep import mean_over_targets, sweep_target
from xdistill.cache import TeacherCache
from xdistill.demo.world import build_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the raw results as JSON")
    args = parser.parse_args()
    world = build_world(args.home, progress=False, log=lambda s: None)
    cache = TeacherCache((args.home or world.root.parent) / "cache", progress=False)
    results = {}
    for task_name, path in world.task_paths.items():
        rows = results[task_name] = sweep_target(path, world.zoo_path, cache, decoy="vit-decoy")
        acc = rows["teacher_test_accuracy"]
        print(f"\n== {task_name}: best single teacher {max(acc.values()):.3f} ({max(acc, key=acc.get)})")
        for metric, info in rows["metrics"].items():
            print(f"  {metric:<22} top1 {info['top1']:<13} acc {info['top1_accuracy']:.3f} "
                  f"regret {info['regret']:.3f} decoy rank {info['decoy_rank']}")
    print("\nmean over targets of mixed-target test accuracy, by metric|temperature|top_k:")
    for key, value in list(mean_over_targets(results).items())[:25]:
        print(f"  {key:<40} {value:.4f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
