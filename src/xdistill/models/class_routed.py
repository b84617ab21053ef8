"""A generator made of several denoisers, each owning some of the classes: a sample of class y is drawn by the
member that owns y (multi-student distillation, Song et al. 2024). It answers the denoiser interface
(``velocity``, ``num_classes``, ``input_shape``), so it samples, scores and saves like one network.

It has no unconditional (null-class) velocity, so it samples at guidance 1 only: its members fold guidance in.
"""

from __future__ import annotations

import torch
from torch import nn

from xdistill.errors import XDistillError


class ClassRouted(nn.Module):
    """Members [M] and the classes each owns (disjoint lists of labels); ``velocity`` routes rows by label."""

    def __init__(self, members: list[nn.Module], owned: list[list[int]]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.owned = [sorted(int(c) for c in classes) for classes in owned]
        self.num_classes = int(members[0].num_classes)
        self.input_shape = tuple(members[0].input_shape)
        self.guidance = None
        owner = torch.full((self.num_classes + 1,), -1, dtype=torch.long)
        for index, classes in enumerate(self.owned):
            owner[classes] = index
        self.register_buffer("owner", owner, persistent=False)

    def member_of(self, label: int) -> int:
        return int(self.owner[label])

    def velocity(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                 guidance: torch.Tensor | None = None) -> torch.Tensor:
        owner = self.owner[y]
        if (owner < 0).any():
            unowned = sorted(set(y[owner < 0].tolist()))
            raise XDistillError(f"No student of this class-routed generator owns label(s) {unowned} (null class: "
                                f"{self.num_classes}). It draws classes 0..{self.num_classes - 1} only, without "
                                "classifier-free guidance: sample it with guidance 1.")
        out = torch.empty_like(x)
        for index, member in enumerate(self.members):
            rows = owner == index
            if rows.any():
                out[rows] = member.velocity(x[rows], t[rows], y[rows])
        return out
