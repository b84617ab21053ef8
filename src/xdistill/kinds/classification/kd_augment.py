"""Augmentations of the distillation term's unlabeled images (config ``kd_augment``).

Distillation can show the student images nobody labelled and no teacher was
cached on, as long as a teacher answers for them:

- ``mixup`` (Zhang et al. 2018, used for distillation by Beyer et al. 2022,
  "Knowledge distillation: A good teacher is patient and consistent"): each
  unlabeled image is mixed with another of the batch, ``x = lam x_i +
  (1 - lam) x_j``, ``lam ~ Beta(mixup_alpha, mixup_alpha)`` per sample. With
  ``online=true`` the teachers see the mixed image. Without it, the target is
  the same mix of the two images' cached targets, ``lam t_i + (1 - lam) t_j``:
  a cheaper approximation, since a teacher's prediction on a mixed image is
  not the mix of its predictions (docs/benchmarks.md measures the two).
- ``hard`` (after Nix et al. 2023, "HARD: Hard Augmentations for Robust
  Distillation"): of ``hard_candidates`` strong augmentations of each image,
  the student learns from the one where teacher and student disagree most,
  ``argmax_k KL(p_teacher(x_k) || p_student(x_k))``. The paper learns an
  augmentation model to maximise that disagreement; here it is a best-of-K
  search over the strong augmentations FixMatch already uses, scored by a
  gradient-free pass of the student and a live pass of the teachers on every
  candidate, so it needs ``online=true``.

The augmented images replace the weak view in the distillation term only:
the weak view still gives the student's pseudo-labels and the per-sample
choice between teachers and student, which reads the cached targets of the
unaugmented images, so a teacher runs once per augmented image and no more.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

MIXUP_STREAM = 21  # random stream of the mixup draws, apart from the augmentations' streams
HARD_VIEW_OFFSET = 100  # hard candidates use the strong augmentation's views 100, 101, ...


def mixup(raw: Tensor, seed: int, alpha: float) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """(mixed images [U, C, H, W], partner index [U], lam [U]) from images raw [U, C, H, W] in [0, 1]: each image
    mixed with a partner drawn by a permutation of the batch, deterministically from ``seed``."""
    rng = np.random.default_rng([seed, MIXUP_STREAM])
    partner = rng.permutation(len(raw))
    lam = rng.beta(alpha, alpha, size=len(raw))
    weights = torch.as_tensor(lam, dtype=raw.dtype).view(-1, *([1] * (raw.ndim - 1)))
    return weights * raw + (1 - weights) * raw[partner], partner, lam


def mixed_targets(targets: np.ndarray, partner: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """[U, C] the cached approximation of a teacher's prediction on mixed images: lam t_i + (1 - lam) t_partner(i)."""
    return (lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]).astype(np.float32)


def hardest(student_probs: Tensor, teacher_probs: Tensor) -> Tensor:
    """[U] the candidate k maximising KL(teacher || student) per sample, from probabilities [K, U, C] each."""
    tiny = torch.finfo(teacher_probs.dtype).tiny
    kl = (teacher_probs * (teacher_probs.clamp_min(tiny).log() - student_probs.clamp_min(tiny).log())).sum(dim=2)
    return kl.argmax(dim=0)
