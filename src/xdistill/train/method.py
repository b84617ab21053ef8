"""A training method: one step function plus what it needs, declared once.

Every task kind keeps its own registry of methods (the same name may exist
for several kinds, each with its own implementation). Verbs, the bench, the
report and the docs read what a method needs from its declaration instead of
listing method names:

    METHODS.register("fixmatch", Method(fixmatch_step, "FixMatch semi-supervised baseline",
                                        unlabeled=True, strong_views=True, init="optional", baseline=True))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

INIT_USES = ("none", "optional", "required")


@dataclass(frozen=True)
class Method:
    """One method of one task kind.

    step: ``(model, batch, ctx) -> {"loss": total, <term>: value, ...}``, one optimisation step's loss terms.
    choose / combine: for teacher methods, the teachers the method draws on with their mixing
    weights (``ranking -> (names, weights [T])``) and how their target-space predictions mix
    (``(probs [T, N, C], weights [T], config) -> [N, C]``), row by row: each sample's target from
    that sample's predictions only, so a large pool is combined a block of rows at a time.
    """

    step: Callable[..., dict[str, Any]]
    summary: str  # one line for the CLI help, the bench, reports and docs
    teachers: bool = False  # distills a zoo's teachers (needs --zoo)
    unlabeled: bool = False  # trains on the unlabeled split
    strong_views: bool = False  # needs a strongly augmented view of unlabeled samples
    init: Literal["none", "optional", "required"] = "optional"  # a generic pretrained student to start from
    baseline: bool = False  # a reference without teachers, that teacher methods are measured against
    options: tuple[str, ...] = ()  # config fields only this method reads (shown in its help)
    choose: Callable[..., tuple[list[str], Any]] | None = None
    combine: Callable[..., Any] | None = None
    # Replaces the student's head before training, ``head -> new head`` (dho: a supervised and a distillation head).
    student_head: Callable[[Any], Any] | None = None
    # Trains a second student (config 'partner') beside the first, in one step (collaborative).
    partner: bool = False

    def __post_init__(self) -> None:
        # A declaration error is a bug in the method's file, not a user error.
        if self.init not in INIT_USES:
            raise ValueError(f"Method init must be one of {INIT_USES}. Got {self.init!r}.")
        if self.teachers and (self.choose is None or self.combine is None):
            raise ValueError("A teacher method declares how it chooses and combines its teachers.")

    def describe(self) -> dict[str, Any]:
        """What the method needs, as the CLI, the bench and the docs show it."""
        return {"summary": self.summary, "teachers": self.teachers, "unlabeled": self.unlabeled,
                "init": self.init, "baseline": self.baseline, "options": list(self.options)}
