"""A toy task kind, registered in this one file: regression of a scalar y from feature vectors.

It exists to prove the spine carries a kind it was not written for: ``xdistill cache``, ``rank``,
``distill`` and ``eval`` run on it through the kind registry, its teachers return a named tensor of
their own (``prediction [N]``) that the cache stores as it is, it ranks teachers by its own metric
(negative mean squared error on the train split) and trains its student with the one training loop.

task.yaml:  kind: toy-regression / name / splits: {train: train.npz, test: test.npz}; each .npz holds
x [N, D] float and y [N] float. A zoo entry ``kind: toy-linear`` with ``weights: [w_1, ..., w_D]`` is a
teacher predicting x . w.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from xdistill.config import load_yaml, to_dict
from xdistill.data.splits import fingerprint_split
from xdistill.data.task import Split
from xdistill.errors import XDistillError
from xdistill.io import atomic_write, atomic_write_json, atomic_write_text
from xdistill.kinds import KINDS, TaskKind
from xdistill.registry import Registry
from xdistill.select.rank import Ranking, TeacherRanking
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherOutput
from xdistill.train.loop import TrainPlan, train_student
from xdistill.train.method import Method
from xdistill.train.run import DistillResult

KIND = "toy-regression"


@dataclass
class ToyTask:
    name: str
    splits: dict[str, Split]
    kind: str = KIND
    modality: str = "features"  # what its teachers read


def load(folder: Path) -> ToyTask:
    raw = load_yaml(Path(folder) / "task.yaml", "task file")
    problems = [f"Unknown key '{k}'." for k in raw if k not in ("kind", "name", "splits")]
    problems += [f"'splits' has no '{s}' entry." for s in ("train", "test") if s not in raw.get("splits", {})]
    if problems:
        raise XDistillError(" ".join(problems))
    splits = {}
    for name in ("train", "test"):
        with np.load(Path(folder) / raw["splits"][name], allow_pickle=False) as data:
            x, y = data["x"].astype(np.float32), data["y"].astype(np.float32)
        splits[name] = Split(name, x, y, fingerprint_split(x, y))
    return ToyTask(str(raw["name"]), splits)


# A teacher kind of its own, returning the named tensor this task kind consumes.
@dataclass
class ToyLinearOptions:
    weights: list[float] = field(default_factory=list)  # the teacher predicts x . weights


class ToyLinearTeacher:
    def __init__(self, spec) -> None:
        self.spec, self.name, self.labels, self.modality = spec, spec.name, None, spec.modality
        self.w = torch.tensor(spec.options.weights, dtype=torch.float32)

    def setup(self) -> None:
        pass

    def fingerprint(self) -> str:
        return "toy-linear|" + json.dumps(self.spec.options.weights)

    def outputs(self, batch: np.ndarray) -> TeacherOutput:
        return TeacherOutput(prediction=torch.as_tensor(batch, dtype=torch.float32) @ self.w)


TEACHER_KINDS.register("toy-linear", TeacherKind(ToyLinearOptions, ToyLinearTeacher, modalities=("features",)))


def neg_mse(prediction: np.ndarray, y: np.ndarray) -> float:
    return -float(np.mean((prediction - y) ** 2))


METRICS = Registry("toy metric")
METRICS.register("neg_mse", neg_mse)


@dataclass
class Prepared:
    teachers: list
    cache: object
    ranking: Ranking


def prepare(task, teachers, cache, selection, views=0, log=None) -> Prepared:
    from xdistill.cache import cache_task

    cache_task(task, teachers, cache, runtime=log)
    train = task.splits["train"]
    scores = {t.name: neg_mse(cache.load(t, train).arrays["prediction"], train.y) for t in teachers}
    order = sorted(scores, key=scores.get, reverse=True)
    rows = [TeacherRanking(n, "", "", {"neg_mse": scores[n]}, order.index(n) + 1, float(n == order[0]))
            for n in scores]
    return Prepared(list(teachers), cache, Ranking(task.name, "neg_mse", "none", 0, 1.0, 1, rows))


def supervised_step(model, batch, ctx):
    loss = torch.mean((model(batch["x"]).squeeze(1) - batch["y"]) ** 2)
    return {"loss": loss}


def nearest_step(model, batch, ctx):
    loss = torch.mean((model(batch["x"]).squeeze(1) - batch["teacher"]) ** 2)
    return {"loss": loss}


METHODS = Registry("toy-regression method")
METHODS.register("supervised", Method(supervised_step, "fit y", init="none", baseline=True))
METHODS.register("nearest", Method(nearest_step, "fit the best teacher's predictions", teachers=True,
                                   choose=lambda ranking: ([ranking.top], np.ones(1)),
                                   combine=lambda probs, weights, config: probs[0]))


class Context:
    step = 0
    total_steps = 1


def distill(config, task, given, runtime) -> DistillResult:
    from xdistill.cache.extract import TeacherCache
    from xdistill.teachers.zoo import load_zoo

    method = METHODS.get(config.method)
    train = task.splits["train"]
    batch = {"x": torch.as_tensor(train.x), "y": torch.as_tensor(train.y)}
    prepared = None
    if method.teachers:
        teachers = given.teachers or load_zoo(config.zoo).teachers()
        prepared = given.prepared or prepare(task, teachers, TeacherCache(config.cache_dir, progress=False), None)
        (name,), _ = method.choose(prepared.ranking)
        teacher = next(t for t in prepared.teachers if t.name == name)
        batch["teacher"] = torch.as_tensor(prepared.cache.load(teacher, train).arrays["prediction"])
    torch.manual_seed(config.seed)
    model = nn.Linear(train.x.shape[1], 1)
    plan = TrainPlan(step=method.step, context=Context(), steps_per_epoch=4, batches=lambda e, r, w: lambda s: batch)
    history = train_student(model, plan, config, None, runtime)
    test = evaluate_model(model, task.splits["test"])
    metrics = {"kind": KIND, "method": config.method, "test": test, "params": 1 + train.x.shape[1]}
    out = Path(config.out)
    atomic_write(out / "student.safetensors", lambda tmp: save_file(model.state_dict(), str(tmp)))
    atomic_write_json(out / "student.json", {"kind": KIND, "in_features": train.x.shape[1]})
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(config), sort_keys=False))
    return DistillResult(model, metrics, history, out, None if prepared is None else prepared.ranking)


def evaluate_model(model: nn.Module, split: Split) -> dict:
    with torch.no_grad():
        prediction = model(torch.as_tensor(split.x)).squeeze(1).numpy()
    return {"mse": -neg_mse(prediction, split.y), "n": len(split)}


def evaluate(run_dir: Path, task, split: str) -> dict:
    meta = json.loads((Path(run_dir) / "student.json").read_text())
    model = nn.Linear(meta["in_features"], 1)
    model.load_state_dict(load_file(str(Path(run_dir) / "student.safetensors")))
    return evaluate_model(model, task.splits[split])


def config_problems(config, task=None, teachers_given=False) -> list[str]:
    problems = [] if config.method in METHODS else [METHODS.unknown_message(config.method)]
    if config.method in METHODS and METHODS.get(config.method).teachers and not (config.zoo or teachers_given):
        problems.append(f"Method '{config.method}' needs --zoo FILE.")
    return problems


KINDS.register(KIND, TaskKind(
    summary="regression of a scalar from feature vectors (a test kind)", splits=("train", "test"),
    teacher_outputs={"prediction": "[N] float32"}, headline="mse", methods=METHODS, metrics=METRICS,
    load=load, prepare=prepare, distill=distill, evaluate=evaluate, config_problems=config_problems,
))
