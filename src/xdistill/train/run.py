"""What a distillation run is given and what it returns, for every task kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from xdistill.train.loop import History


@dataclass
class DistillInputs:
    """What a caller may hand a run instead of letting it load or build it.

    task: a loaded task (else ``config.task`` is loaded); teachers: built teachers (else ``config.zoo``);
    student: a module to train (else one is built from ``config.student``); prepared: teachers already
    cached and ranked by the kind's preparation (a bench shares one per target).
    """

    task: Any = None
    teachers: list | None = None
    student: nn.Module | None = None
    prepared: Any = None


@dataclass
class DistillResult:
    student: nn.Module
    metrics: dict[str, Any]
    history: History
    out: Path | None = None
    ranking: Any = None
    targets: Any = None
