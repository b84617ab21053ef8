"""``xdistill demo``: build the digits demo world, then run the pipeline on
each of its target tasks: cache the teachers, rank them, distill a student
with ``weighted`` and train the baselines with the same student and budget.

Finished runs are kept under the output folder and reused when their config
is unchanged, so a second ``xdistill demo`` only prints the results.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from xdistill.config import to_dict
from xdistill.home import xdistill_home
from xdistill.train.config import DistillConfig, StudentConfig

DEMO_METHODS = ("supervised", "fixmatch", "finetune", "weighted")
GENERIC_STUDENT_FILE = "generic-student-{name}.safetensors"


def ensure_generic_student(world, student: StudentConfig, progress: bool = True,
                           log: Callable[[str], None] | None = print) -> Path:
    """The generic pretrained student for 'finetune', trained once on the world's pooled source domains."""
    from xdistill.train.pretrain import pretrain_generic

    path = world.root / GENERIC_STUDENT_FILE.format(name=student.name)
    if not path.is_file():
        with np.load(world.generic_data_path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
        pretrain_generic(student, x, y, path, progress=progress, log=log)
    return path


def demo_config(task_dir: Path, zoo: Path, out: Path, method: str, init: Path, quick: bool, seed: int = 0,
                cache_dir: str = "") -> DistillConfig:
    """Every method but 'supervised' (labeled data only, from scratch) starts from the generic
    pretrained student, so the baselines get the same initialisation as distillation."""
    return DistillConfig(task=str(task_dir), zoo=str(zoo), out=str(out), method=method, seed=seed,
                         init="" if method == "supervised" else str(init), epochs=8 if quick else 30,
                         cache_dir=cache_dir)


def run_or_reuse(config: DistillConfig, log: Callable[[str], None] | None) -> dict:
    """Run a distillation unless ``config.out`` already holds a finished run of the same config."""
    import json

    from xdistill.pipeline.distill import distill

    out = Path(config.out)
    wanted = yaml.safe_dump(to_dict(config), sort_keys=False)
    if (out / "metrics.json").is_file() and (out / "config.yaml").is_file() and (out / "config.yaml").read_text() == wanted:
        return json.loads((out / "metrics.json").read_text())
    if out.exists():
        shutil.rmtree(out)
    return distill(config, log=log).metrics


def run_demo(export: Path | None = None, home: Path | None = None, out: Path | None = None, quick: bool = False,
             log: Callable[[str], None] = print, methods: tuple[str, ...] = DEMO_METHODS) -> dict:
    from xdistill.cli.output import print_table
    from xdistill.demo.world import build_world, export_world

    if export is not None:
        export_world(Path(export), home=home, log=log)
        return {}
    world = build_world(home, log=log)
    out = Path(out) if out is not None else xdistill_home() / "demo-runs"
    init = ensure_generic_student(world, StudentConfig(), log=log)
    results: dict[str, dict[str, dict]] = {}
    task_names = list(world.task_paths)[:1] if quick else list(world.task_paths)
    for task_name in task_names:
        log(f"== target task {task_name} ==")
        results[task_name] = {}
        for method in methods:
            cfg = demo_config(world.task_paths[task_name], world.zoo_path, out / task_name / method, method, init, quick,
                              cache_dir=str((Path(home) if home else xdistill_home()) / "cache"))
            results[task_name][method] = run_or_reuse(cfg, log)
        weighted = results[task_name].get("weighted") or {}
        rows = [[m, r["test"]["accuracy"], r["test"]["macro_f1"], r["test"]["ece"], r["cost"]["params"]]
                for m, r in results[task_name].items()]
        teachers = (weighted.get("teachers") or {}).get("teachers", {})
        for name, info in teachers.items():
            rows.append([f"teacher {name} (weight {info['weight']:.2f}, bridged)", info.get("test_accuracy"), None, None, None])
        if "teacher_targets_test_accuracy" in weighted:
            rows.append(["weighted teacher targets", weighted["teacher_targets_test_accuracy"], None, None, None])
        print_table(f"{task_name}: test accuracy (last epoch, seed 0)", ["method", "accuracy", "macro F1", "ECE", "params"], rows)
    if len(results) > 1:
        print_summary(results)
    log(f"runs and reports are in {out}")
    return results


def summary_rows(results: dict[str, dict[str, dict]]) -> tuple[list[str], list[list]]:
    """Test accuracy per method and target with the average over targets, then, for every
    baseline, how many points 'weighted' is ahead of it on each target and on average."""
    targets = list(results)
    methods = [m for m in results[targets[0]] if all(m in results[t] for t in targets)]
    accuracy = {m: [results[t][m]["test"]["accuracy"] for t in targets] for m in methods}
    rows = [[m, *acc, float(np.mean(acc))] for m, acc in accuracy.items()]
    if "weighted" in accuracy:
        for baseline in (m for m in methods if m != "weighted"):
            gaps = [100 * (w - b) for w, b in zip(accuracy["weighted"], accuracy[baseline])]
            rows.append([f"weighted - {baseline} (points)", *gaps, float(np.mean(gaps))])
    return ["method", *targets, "average"], rows


def print_summary(results: dict[str, dict[str, dict]]) -> None:
    from xdistill.cli.output import print_table

    header, rows = summary_rows(results)
    print_table("All targets: test accuracy (last epoch, seed 0), same student and budget for every method", header, rows)
