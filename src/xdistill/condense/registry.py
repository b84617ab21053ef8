"""The condensation methods: one registered declaration per file in :mod:`xdistill.condense.methods`.

An **image method** makes the condensed images and their hard labels from the real pool
(``make(context) -> CondensedImages``); a **label method** gives soft labels [N, C] to images already
made (``label(context, images) -> soft``). ``--method relabel`` alone relabels random real images;
``labels=relabel`` adds a label method's soft labels to any image method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xdistill.registry import Registry

ROLES = ("images", "labels")


@dataclass
class CondensedImages:
    """What an image method returns: images [N, C, H, W] float32 in [0, 1] (class-major, ``ipc`` per class),
    their hard labels [N], and what to record in condense.json (loss history, chosen pool positions)."""

    x: np.ndarray
    y: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CondenseMethod:
    """A registered condensation method."""

    role: str  # images | labels
    summary: str  # one line, shown by --help and in docs/methods.md
    citation: str  # the paper it follows
    make: Callable[..., Any]  # images: (context) -> CondensedImages; labels: (context, images [N,C,H,W]) -> soft [N, C]
    teachers: bool = False  # needs the zoo whatever the settings
    iterations: int = 0  # CPU default of 'iterations' (0: the method does not iterate)
    paper_iterations: str = ""  # the paper's budget, for the docs
    lr_images: float = 0.0  # default learning rate of the synthetic pixels (0: no pixels are learned)


CONDENSE_METHODS: Registry[CondenseMethod] = Registry("condense method")


def methods_of(role: str) -> list[str]:
    """Names of the registered methods of one role."""
    return [name for name, method in CONDENSE_METHODS.items() if method.role == role]


def condense_methods_markdown() -> str:
    """The table of condensation methods in docs/condense.md, from the registry."""
    rows = ["| method | role | what it does | needs the zoo | CPU default iterations | the paper's budget | follows |",
            "|---|---|---|---|---|---|---|"]
    for name, m in CONDENSE_METHODS.items():
        rows.append(f"| `{name}` | {m.role} | {m.summary} | {'yes' if m.teachers else 'no'} | "
                    f"{m.iterations or ''} | {m.paper_iterations} | {m.citation} |")
    return "\n".join(rows)
