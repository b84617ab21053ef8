"""Measure selection choices without training a student: for each demo target,
each metric's ranking, and the accuracy on the test split of the combined,
bridged teacher predictions for several weight temperatures and top-k.

    python benchmarks/selection_sweep.py [--home DIR]

Prints tables used to choose the defaults documented in docs/selection.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xdistill.cache import TeacherCache, cache_task
from xdistill.data import load_task
from xdistill.demo.world import build_world
from xdistill.select.bridge import bridge_inputs, fit_bridge
from xdistill.select.metrics import METRICS
from xdistill.select.rank import rank_teachers
from xdistill.select.weights import teacher_weights
from xdistill.train.targets import combine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the raw results as JSON")
    args = parser.parse_args()
    world = build_world(args.home, progress=False, log=lambda s: None)
    cache = TeacherCache((args.home or world.root.parent) / "cache", progress=False)
    from xdistill.teachers import load_zoo

    teachers = load_zoo(world.zoo_path).teachers()
    results = {}
    for task_name, path in world.task_paths.items():
        task = load_task(path)
        cache_task(task, teachers, cache)
        ranking = rank_teachers(task, teachers, cache, metric="logme", metrics=METRICS.names())
        per_teacher, oof = {}, {}
        for t in teachers:
            outs = {s: cache.load(t, task.splits[s]) for s in ("labeled", "unlabeled", "test")}
            x_lab = bridge_inputs(outs["labeled"].features, outs["labeled"].logits)[0]
            x_unl = bridge_inputs(outs["unlabeled"].features, outs["unlabeled"].logits)[0]
            head = fit_bridge(x_lab, task.labeled.y, task.num_classes, fit_inputs=x_unl)
            per_teacher[t.name] = head.predict_proba(bridge_inputs(outs["test"].features, outs["test"].logits)[0])
            oof[t.name] = head.cv_accuracy
        acc = {n: float((p.argmax(1) == task.test.y).mean()) for n, p in per_teacher.items()}
        rows = {"teacher_test_accuracy": acc, "bridge_cv_accuracy": oof, "metrics": {}, "weights": {}}
        for metric in METRICS.names():
            scores = {r.name: r.scores[metric] for r in ranking.teachers}
            defined = {n: s for n, s in scores.items() if s is not None}
            top = max(defined, key=defined.get)
            order = sorted(defined, key=defined.get, reverse=True)
            rows["metrics"][metric] = {"top1": top, "top1_accuracy": acc[top], "regret": max(acc.values()) - acc[top],
                                       "decoy_rank": order.index("vit-decoy") + 1 if "vit-decoy" in order else None}
            for temperature in (0.25, 0.5, 1.0, 2.0):
                for top_k in (1, 2, 3, 5, 0):
                    w = teacher_weights(scores, temperature, top_k)
                    names = [n for n in w if w[n] > 0]
                    mixed = combine(np.stack([per_teacher[n] for n in names]), "weighted", np.array([w[n] for n in names]))
                    rows["weights"][f"{metric}|T={temperature}|k={top_k}"] = float((mixed.argmax(1) == task.test.y).mean())
        results[task_name] = rows
        best = max(acc.values())
        print(f"\n== {task_name}: best single teacher {best:.3f} ({max(acc, key=acc.get)})")
        for metric, info in rows["metrics"].items():
            print(f"  {metric:<22} top1 {info['top1']:<13} acc {info['top1_accuracy']:.3f} regret {info['regret']:.3f} decoy rank {info['decoy_rank']}")
    print("\nmean over targets of mixed-target test accuracy, by metric|temperature|top_k:")
    keys = next(iter(results.values()))["weights"].keys()
    means = {k: np.mean([r["weights"][k] for r in results.values()]) for k in keys}
    for k, v in sorted(means.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {k:<40} {v:.4f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
