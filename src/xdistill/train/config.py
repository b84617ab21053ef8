"""The one home of distillation defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from xdistill.config import device_problems, seed_problems

from xdistill.select.rank import DEFAULT_METRIC, DEFAULT_PREPARE, DEFAULT_PREPARE_DIM
from xdistill.select.weights import DEFAULT_TOP_K, DEFAULT_WEIGHT_TEMPERATURE
from xdistill.train.targets import DEFAULT_MIX, MIXES


@dataclass
class StudentConfig:
    name: str = "cnn"  # a registered student family (xdistill students)
    knobs: dict[str, Any] = field(default_factory=dict)  # width/depth knobs of that family


@dataclass
class DistillConfig:
    task: str = ""  # task folder holding task.yaml
    zoo: str = ""  # zoo YAML file (not needed by supervised, fixmatch, finetune)
    out: str = ""  # output folder for the student, metrics and report
    cache_dir: str = ""  # teacher-output cache; empty = $XDISTILL_HOME/cache
    teachers: list[str] = field(default_factory=list)  # subset of the zoo; empty = all
    method: str = "weighted"  # supervised | fixmatch | finetune | nearest | weighted | ensemble | partition
    student: StudentConfig = field(default_factory=StudentConfig)
    init: str = ""  # generic pretrained student (.safetensors) to start from; required by finetune, optional for every method
    seed: int = 0  # seeds data order, augmentation and initialisation
    epochs: int = 30  # passes over the unlabeled pool (steps per epoch = unlabeled / unlabeled batch)
    batch_size: int = 16  # labeled samples per step (small batches: more steps for the same compute)
    unlabeled_ratio: int = 4  # unlabeled samples per labeled sample in a step (FixMatch's mu)
    lr: float = 1e-2  # peak learning rate of AdamW (linear warm-up, cosine decay to 0)
    weight_decay: float = 5e-4  # AdamW weight decay
    loss: str = "kd"  # distillation loss: kd | reverse_kl | js | dkd | taid | bdkd
    temperature: float = 1.0  # temperature of the distillation loss (targets are already calibrated)
    kd_weight: float = 1.0  # weight of the distillation term before reliability scaling
    reliability: bool = True  # scale the distillation term by the teachers' held-out labeled accuracy
    label_weight: float = 1.0  # weight of cross-entropy on the labeled split
    self_training: bool = True  # teacher methods also add FixMatch's consistency term (student pseudo-labels)
    feature_weight: float = 0.0  # > 0 adds feature distillation through learned projectors
    feature_loss: str = "feature_mse"  # feature_mse | feature_cosine
    fixmatch_threshold: float = 0.95  # confidence above which a pseudo-label is used (FixMatch)
    fixmatch_weight: float = 1.0  # weight of FixMatch's unlabeled term
    augment_seed: int = 0  # seed of the cached augmented views (as given to `xdistill cache`)
    views: int = 0  # cached augmented views of unlabeled samples to train on (0 = fresh weak augmentation)
    online: bool = False  # run the teachers live on every batch instead of reading the cache
    metric: str = DEFAULT_METRIC  # selection metric ranking and weighting the teachers
    prepare: str = DEFAULT_PREPARE  # feature normalisation before scoring
    prepare_dim: int = DEFAULT_PREPARE_DIM  # PCA components kept by 'pca'
    weight_temperature: float = DEFAULT_WEIGHT_TEMPERATURE  # softmax temperature over standardised scores
    top_k: int = DEFAULT_TOP_K  # teachers mixed by 'weighted' (0 = all)
    mix: str = DEFAULT_MIX  # how 'weighted' mixes them per sample: gated (the teacher with the largest weight x confidence) | average
    device: str = "cpu"  # cpu | cuda (bf16 autocast on CUDA)
    threads: int = 0  # torch CPU threads; 0 = torch's default
    deterministic: bool = True  # deterministic algorithms (resume reproduces an uninterrupted run)
    resume: bool = False  # continue from the checkpoint in 'out'
    progress: bool = True  # show a progress bar

    def __post_init__(self) -> None:
        problems = []
        for key in ("epochs", "batch_size", "unlabeled_ratio"):
            if getattr(self, key) < 1:
                problems.append(f"'{key}' must be >= 1. Got {getattr(self, key)}.")
        # NaN fails every comparison and inf passes '> 0': both are refused here, not mid-training.
        for key in ("lr", "temperature", "weight_temperature"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                problems.append(f"'{key}' must be a finite number > 0. Got {getattr(self, key)}.")
        for key in ("weight_decay", "kd_weight", "label_weight", "feature_weight", "fixmatch_weight"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                problems.append(f"'{key}' must be a finite number >= 0. Got {getattr(self, key)}.")
        if not 0 <= self.fixmatch_threshold <= 1:
            problems.append(f"'fixmatch_threshold' must lie in [0, 1]. Got {self.fixmatch_threshold}.")
        for key in ("views", "top_k"):
            if getattr(self, key) < 0:
                problems.append(f"'{key}' must be >= 0. Got {getattr(self, key)}.")
        if self.mix not in MIXES:
            problems.append(f"'mix' must be one of {', '.join(MIXES)}. Got {self.mix!r}.")
        if self.prepare_dim < 1:
            problems.append(f"'prepare_dim' must be >= 1. Got {self.prepare_dim}.")
        if not 0 <= self.threads <= 1024:
            problems.append(f"'threads' must lie in 0..1024 (0 = torch's default). Got {self.threads}.")
        problems += seed_problems(seed=self.seed, augment_seed=self.augment_seed)
        problems += device_problems(self.device)
        if problems:
            raise ValueError(" ".join(problems))
