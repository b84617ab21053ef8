"""What a condensation method is handed: the config, the task, the real pool and the prepared teachers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from xdistill.condense.config import CondenseConfig
from xdistill.condense.pool import RealPool
from xdistill.data.task import Task


@dataclass
class CondenseContext:
    config: CondenseConfig
    task: Task
    pool: RealPool
    prepared: object | None = None  # xdistill.kinds.classification.prepare.PreparedTeachers, when a zoo was given
    log: Callable[[str], None] | None = None

    @property
    def num_classes(self) -> int:
        return self.task.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.task.input_shape)  # type: ignore[return-value]

    def rng(self, stream: int) -> np.random.Generator:
        """A numpy generator for one named use (``stream``) of this run's seed."""
        return np.random.default_rng([self.config.seed, stream])

    def generator(self, stream: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.rng(stream).integers(0, 2**62)))

    def iterations(self, default: int) -> int:
        return self.config.iterations or default

    def lr_images(self, default: float) -> float:
        return self.config.lr_images or default

    def class_major_labels(self) -> np.ndarray:
        """[C * ipc] hard labels, ``ipc`` of class 0 first, then class 1, ..."""
        return np.repeat(np.arange(self.num_classes), self.config.ipc).astype(np.int64)
