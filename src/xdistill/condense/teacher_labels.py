"""The zoo's target-space predictions on images that are not in the cache (condensed images).

Each teacher runs live on the images, in the task's raw layout, and its bridge head (fitted once on the
labeled split through the shared preparation path, :func:`xdistill.kinds.classification.prepare.prepare_teachers`)
maps its outputs to calibrated probabilities over the target classes.
"""

from __future__ import annotations

import numpy as np

from xdistill.data.task import Task
from xdistill.select.bridge import bridge_inputs

TEACHER_BATCH = 256


def raw_layout(images: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> the task's raw layout: [N, H, W] for one channel, else [N, H, W, C]."""
    images = np.asarray(images, dtype=np.float32)
    return images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)


def teacher_probabilities(prepared, task: Task, names: list[str], images: np.ndarray) -> np.ndarray:
    """[T, N, C] bridged probabilities of the teachers ``names`` on ``images`` [N, C, H, W] in [0, 1]."""
    raw = raw_layout(images)
    out = np.empty((len(names), len(raw), task.num_classes), dtype=np.float64)
    for t, name in enumerate(names):
        teacher, head = prepared.teacher(name), prepared.head(task, name)
        for start in range(0, len(raw), TEACHER_BATCH):
            result = teacher.outputs(raw[start:start + TEACHER_BATCH])
            features = None if result.features is None else result.features.detach().cpu().numpy()
            logits = None if result.logits is None else result.logits.detach().cpu().numpy()
            out[t, start:start + len(features if features is not None else logits)] = \
                head.predict_proba(bridge_inputs(features, logits)[0])
    return out


def normalised_rows(probs: np.ndarray) -> np.ndarray:
    """[N, C] float32 rows that sum to 1 (in float64 first, so float32 rounding stays far below 1e-3)."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """[N, C] probabilities -> rows proportional to p^(1/T) (softmax of log p / T), float32 summing to 1.
    T > 1 spreads a sharp label over the classes its teachers find similar (Hinton et al. 2015)."""
    logs = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)) / temperature
    logs -= logs.max(axis=1, keepdims=True)
    return normalised_rows(np.exp(logs))
