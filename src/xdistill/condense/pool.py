"""The real pool condensation draws on: the labeled images and, on a few-label task, unlabeled images
with the teachers' pseudo-labels.

Matching reads the pool one class mini-batch at a time (only those rows of a lazy split are read), so
memory stays that of one batch however large the pool grows. The pseudo-labeled part is used only
where the teachers' held-out labeled accuracy supports it (``pseudo_min_accuracy``), and only for
unlabeled images whose teachers' top probability reaches ``pseudo_confidence``. The accuracy that
decides is that of the labels the pool would take: over the held-out labeled images the teachers
predict at least that confidently (their out-of-fold predictions), when enough of them do
(``MIN_CONFIDENT_HELD_OUT``), else over every held-out labeled image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from xdistill.condense.config import CondenseConfig
from xdistill.data.lazy import release_pages
from xdistill.data.task import Split, Task
from xdistill.data.tensors import images_to_tensor
from xdistill.errors import XDistillError

AUTO_POOL_FACTOR = 5  # pool=auto adds the pseudo-labeled images when a class has fewer than 5 x ipc labeled ones
# Held-out labeled images predicted at pseudo_confidence or above needed to judge the pseudo-labels by them alone;
# with fewer, the accuracy over every held-out labeled image decides (a lower bar to clear is not given on few).
MIN_CONFIDENT_HELD_OUT = 10
LABELED_ONLY = "labeled images only"  # RealPool.note of a pool without pseudo-labels
REFUSED = ": "  # follows LABELED_ONLY in RealPool.note when the pseudo-labeled pool was refused, before why


@dataclass
class RealPool:
    """Real images by class: row ``row[i]`` of split ``splits[part[i]]`` with label ``label[i]``."""

    splits: list[Split]
    part: np.ndarray  # [M] which split
    row: np.ndarray  # [M] row in that split
    label: np.ndarray  # [M] class (the label, or the teachers' pseudo-label)
    num_classes: int
    pseudo: int = 0  # how many of the M are pseudo-labeled unlabeled images
    note: str = ""  # how the pool was chosen, for condense.json

    def __len__(self) -> int:
        return len(self.label)

    def members(self, c: int) -> np.ndarray:
        """Pool positions of class ``c``."""
        return np.flatnonzero(self.label == c)

    def counts(self) -> np.ndarray:
        return np.bincount(self.label, minlength=self.num_classes)

    def images(self, positions: np.ndarray) -> torch.Tensor:
        """Images [n, C, H, W] in [0, 1] at pool ``positions`` (only those rows are read)."""
        positions = np.asarray(positions, dtype=np.int64)
        out: torch.Tensor | None = None
        for p, split in enumerate(self.splits):
            mine = np.flatnonzero(self.part[positions] == p)
            if not len(mine):
                continue
            rows = self.row[positions[mine]]
            order = np.argsort(rows, kind="stable")  # sorted rows read a memory map sequentially
            block = images_to_tensor(split.x[rows[order]])
            release_pages(split.x)
            if out is None:
                out = torch.empty((len(positions), *block.shape[1:]), dtype=torch.float32)
            out[torch.as_tensor(mine[order])] = block
        assert out is not None, "images() of an empty selection"
        return out

    def sample(self, c: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` pool positions of class ``c``, without replacement when the class has enough."""
        members = self.members(c)
        return rng.choice(members, size=n, replace=len(members) < n)


def labeled_pool(task: Task) -> RealPool:
    labeled = task.labeled
    n = len(labeled)
    return RealPool([labeled], np.zeros(n, dtype=np.int64), np.arange(n), labeled.y.astype(np.int64),
                    task.num_classes, note=LABELED_ONLY)


def wants_pseudo(config: CondenseConfig, task: Task) -> bool:
    """Whether this run tries the pseudo-labeled pool (before asking whether the teachers support it)."""
    if config.pool == "pseudo":
        return True
    if config.pool == "labeled" or not config.zoo:
        return False
    counts = np.bincount(task.labeled.y, minlength=task.num_classes)
    return bool(counts.min() < AUTO_POOL_FACTOR * config.ipc)


def pseudo_label_accuracy(task: Task, prepared, targets, config: CondenseConfig) -> tuple[float | None, str]:
    """The held-out labeled accuracy that decides the pseudo-labeled pool (see the module), and what it was
    measured on. ``targets`` are the ``weighted`` method's (``build_targets``) on ``prepared`` teachers."""
    from xdistill.kinds.classification.methods import METHODS
    from xdistill.kinds.classification.targets import confident_held_out_accuracy
    from xdistill.train.config import DistillConfig

    oof = [prepared.head(task, name).oof_probs for name in targets.names]
    accuracy, count = confident_held_out_accuracy(oof, METHODS.get(targets.method), targets.weights, DistillConfig(),
                                                  task.labeled.y, config.pseudo_confidence)
    if accuracy is not None and count >= MIN_CONFIDENT_HELD_OUT:
        return accuracy, f"on the {count} held-out labeled images they predict with confidence >= {config.pseudo_confidence}"
    return targets.reliability, (f"on every held-out labeled image (only {count} predicted with confidence >= "
                                 f"{config.pseudo_confidence}, fewer than {MIN_CONFIDENT_HELD_OUT})")


def with_pseudo_labels(pool: RealPool, task: Task, config: CondenseConfig, probabilities: np.ndarray,
                       held_out_accuracy: float | None, log: Callable[[str], None] | None,
                       measured_on: str = "") -> RealPool:
    """The pool plus the unlabeled images whose teachers' predictions [U, C] are confident, when the teachers'
    held-out labeled accuracy (``measured_on``, see :func:`pseudo_label_accuracy`) reaches ``pseudo_min_accuracy``;
    otherwise the pool unchanged (pool=auto) or an error (pool=pseudo)."""
    accuracy = "unknown (one label per class)" if held_out_accuracy is None else f"{held_out_accuracy:.3f}"
    accuracy += f" {measured_on}" if measured_on else ""
    if held_out_accuracy is None or held_out_accuracy < config.pseudo_min_accuracy:
        why = (f"the teachers' held-out labeled accuracy is {accuracy}, below pseudo_min_accuracy="
               f"{config.pseudo_min_accuracy}")
        if config.pool == "pseudo":
            raise XDistillError(f"pool=pseudo needs teachers whose pseudo-labels can be trusted, but {why}. "
                                "Use pool=labeled (or lower pseudo_min_accuracy at your own risk).")
        if log is not None:
            log(f"condense: labeled images only: {why}")
        pool.note = f"{LABELED_ONLY}{REFUSED}{why}"
        return pool
    confidence = probabilities.max(axis=1)
    chosen = np.flatnonzero(confidence >= config.pseudo_confidence)
    labels = probabilities[chosen].argmax(axis=1).astype(np.int64)
    note = (f"{len(pool)} labeled + {len(chosen)} unlabeled images pseudo-labeled by the teachers with confidence >= "
            f"{config.pseudo_confidence} (held-out accuracy {accuracy})")
    if log is not None:
        log(f"condense: {note}")
    return RealPool([*pool.splits, task.unlabeled], np.concatenate([pool.part, np.ones(len(chosen), np.int64)]),
                    np.concatenate([pool.row, chosen]), np.concatenate([pool.label, labels]), pool.num_classes,
                    pseudo=len(chosen), note=note)


def pool_problems(pool: RealPool, task: Task, ipc: int) -> list[str]:
    """A problem for every class with fewer pool images than ``ipc``."""
    counts = pool.counts()
    short = [f"'{task.classes[c]}' has {counts[c]}" for c in range(pool.num_classes) if counts[c] < ipc]
    if not short:
        return []
    refused = pool.note.startswith(LABELED_ONLY + REFUSED)  # the zoo was given, but its pseudo-labels not trusted
    fix = ("" if pool.pseudo else
           f"; the teachers' pseudo-labels were not used ({pool.note[len(LABELED_ONLY + REFUSED):]})" if refused else
           ", or pass --zoo so that unlabeled images with the teachers' pseudo-labels can join the pool "
           "(pool=auto|pseudo)")
    return [f"ipc={ipc} needs {ipc} real images of every class, but {', '.join(short[:5])}"
            f"{' ...' if len(short) > 5 else ''}. Lower --ipc to at most {counts.min()}{fix}."]
