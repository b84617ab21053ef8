"""One teacher-preparation path for every verb that uses teachers.

    prepared = prepare_teachers(task, teachers, cache, SelectionConfig(), log=print)
    prepared.ranking            # scores, ranks and weights
    prepared.head(task, name)   # the teacher's label-space bridge, fitted once on first use

Caches what is missing (``views`` augmented views of the unlabeled split
too), ranks the teachers by the task kind's metrics, and bridges each teacher
a method draws on to the target labels, once: ``distill``, ``rank``,
``bench`` and the perf benchmark all go through here, and a bench shares one
preparation between every method and seed of a target. Bridge heads are
fitted with a fixed seed: they are a property of the task and the teacher,
not of one training run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from xdistill.cache.extract import TeacherCache, cache_task
from xdistill.cache.store import CachedOutputs
from xdistill.data.lazy import release_pages
from xdistill.data.task import Task
from xdistill.select.bridge import BridgeHead, BridgeSettings, bridge_inputs, fit_bridge
from xdistill.select.config import SelectionConfig, unlabeled_positions
from xdistill.select.rank import Ranking, rank_teachers
from xdistill.teachers.base import Teacher

BRIDGE_SEED = 0


@dataclass
class PreparedTeachers:
    """Cached, ranked teachers of one task, with their bridge heads as they are fitted."""

    teachers: list[Teacher]
    cache: TeacherCache
    ranking: Ranking
    heads: dict[str, BridgeHead] = field(default_factory=dict)
    unlabeled_sample: int = SelectionConfig.unlabeled_sample  # unlabeled samples the bridges standardise with; 0 = all

    def teacher(self, name: str) -> Teacher:
        return next(t for t in self.teachers if t.name == name)

    def outputs(self, task: Task, name: str, views: int = 0) -> dict[str, CachedOutputs]:
        """A teacher's cached outputs on the labeled, unlabeled and test splits and each view."""
        teacher = self.teacher(name)
        outs = {split: self.cache.load(teacher, task.splits[split]) for split in ("labeled", "unlabeled", "test")}
        for v in range(1, views + 1):
            outs[f"unlabeled@{v}"] = self.cache.load(teacher, task.unlabeled, v)
        return outs

    def predictions(self, task: Task, name: str, views: int = 0,
                    out: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The teacher's bridged target-space probabilities [N, C] (float32) on the labeled, unlabeled and
        test splits and each view, computed one cache shard at a time; written into ``out``'s arrays
        (split -> [N, C], for example rows of memory-mapped files) when given."""
        teacher, head = self.teacher(name), self.head(task, name)
        jobs = {split: (task.splits[split], 0) for split in ("labeled", "unlabeled", "test")}
        jobs.update({f"unlabeled@{v}": (task.unlabeled, v) for v in range(1, views + 1)})
        out = {} if out is None else out
        for key, (split, view) in jobs.items():
            probs = out[key] if key in out else np.empty((len(split), task.num_classes), dtype=np.float32)
            for start, stop, arrays in self.cache.iter_shards(teacher, split, view):
                probs[start:stop] = head.predict_proba(bridge_inputs(arrays.get("features"), arrays.get("logits"))[0])
                release_pages(probs)
            out[key] = probs
        return out

    def head(self, task: Task, name: str) -> BridgeHead:
        """The teacher's bridge to the target labels, fitted on the labeled split on first use."""
        if name not in self.heads:
            teacher = self.teacher(name)
            labeled = self.cache.load(teacher, task.labeled)
            unlabeled = self.cache.load_rows(teacher, task.unlabeled,
                                             unlabeled_positions(len(task.unlabeled), self.unlabeled_sample))
            x_lab, source = bridge_inputs(labeled.features, labeled.logits)
            x_unl, _ = bridge_inputs(unlabeled.features, unlabeled.logits)
            self.heads[name] = fit_bridge(x_lab, task.labeled.y, task.num_classes, source=source, fit_inputs=x_unl,
                                          settings=BridgeSettings(seed=BRIDGE_SEED))
        return self.heads[name]


def prepare_teachers(task: Task, teachers: Sequence[Teacher], cache: TeacherCache,
                     selection: SelectionConfig | None = None, views: int = 0,
                     log: Callable[[str], None] | None = None) -> PreparedTeachers:
    """Cache what is missing, then rank and weight the teachers; bridges are fitted on demand."""
    teachers = list(teachers)
    cache_task(task, teachers, cache, views=views, runtime=log)
    selection = selection or SelectionConfig()
    ranking = rank_teachers(task, teachers, cache, selection, log=log)
    return PreparedTeachers(teachers, cache, ranking, unlabeled_sample=selection.unlabeled_sample)
