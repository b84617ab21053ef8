"""Exit branches for One-for-All distillation (Hao et al. 2023, the ``ofa`` loss).

After each of the student's intermediate stages (every stage of ``forward_stages`` but the last, whose
features the student's own head reads), a small branch maps the stage's features into the target's label
space, so the teacher's predictions supervise the student at every depth:

- a feature map [N, C, H, W] (conv stages): 1x1 convolution to ``width`` channels, batch norm, ReLU,
  global average pooling, a linear layer to the classes;
- tokens [N, T, D] (transformer and mixer blocks): layer norm, mean over the tokens, a linear layer to
  ``width``, GELU, a linear layer to the classes.

The branches are trained beside the student (a :class:`xdistill.train.loop.TrainPlan` module, so they are
checkpointed and resumed) and are not part of the exported student.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from xdistill.students import student_stages

EXIT_WIDTH = 64  # hidden width of an exit branch


def exit_branch(shape: tuple[int, ...], num_classes: int, width: int = EXIT_WIDTH) -> nn.Module:
    """One branch for features of one sample's ``shape`` ((C, H, W) or (T, D))."""
    if len(shape) == 3:
        return nn.Sequential(nn.Conv2d(shape[0], width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
    return nn.Sequential(TokenMean(shape[-1]), nn.Linear(shape[-1], width), nn.GELU(), nn.Linear(width, num_classes))


class TokenMean(nn.Module):
    """[N, T, D] -> layer norm, then the mean over the T tokens -> [N, D]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.norm(tokens).mean(dim=1)


class ExitBranches(nn.Module):
    """One branch per intermediate stage of a student: stages [S + 1 tensors] -> S logits [N, C]."""

    def __init__(self, shapes: list[tuple[int, ...]], num_classes: int, width: int = EXIT_WIDTH) -> None:
        super().__init__()
        self.branches = nn.ModuleList(exit_branch(shape, num_classes, width) for shape in shapes)

    def forward(self, stages: list[Tensor]) -> list[Tensor]:
        return [branch(features) for branch, features in zip(self.branches, stages)]


def stage_shapes(student: nn.Module) -> list[tuple[int, ...]]:
    """One sample's shape of each of the student's stages ((C, H, W) or (T, D)), from one pass over a blank input."""
    was_training = student.training
    student.eval()
    with torch.no_grad():
        stages = student_stages(student, torch.zeros(1, *student.input_shape))
    student.train(was_training)
    return [tuple(s.shape[1:]) for s in stages]


def exit_branches(student: nn.Module, num_classes: int, width: int = EXIT_WIDTH) -> ExitBranches:
    """Branches for every stage of ``student`` but the last."""
    return ExitBranches(stage_shapes(student)[:-1], num_classes, width)


__all__ = ["EXIT_WIDTH", "ExitBranches", "exit_branch", "exit_branches", "stage_shapes"]
