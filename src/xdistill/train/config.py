"""The one home of distillation defaults: ``xdistill distill``'s typed config.

It imports only other typed configs, never a stage; names that must be
registered (method, loss, student, metric) are checked against their
registries by the distill pipeline before anything heavy runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from xdistill.config import device_problems, seed_problems, worker_problems
from xdistill.select.config import SelectionConfig, selection_of

_SELECTION = SelectionConfig()
# How a multi-teacher method mixes its teachers per sample: 'gated' hands each sample the prediction of the
# teacher with the largest weight x confidence; 'average' takes the weighted mean. Averaging teachers that
# disagree gives flat targets, and students distilled from them were weaker (docs/benchmarks.md).
MIXES = ("gated", "average")
# What a teacher method shows the student in its distillation term (xdistill.kinds.classification.kd_augment):
# the weak view, mixup of two images, or the strong view of several where teacher and student disagree most.
KD_AUGMENTS = ("none", "mixup", "hard")
# How feature distillation maps the student to a teacher's cached pooled features
# (xdistill.losses.alignment): a linear map of the pooled features; the layer-normed mean of the last stage seen
# as tokens (a feature map's H*W positions, a transformer's tokens); or the linear map plus learned queries
# attending over the tokens of the stage before the last (ScaleKD-style cross-attention alignment).
PROJECTORS = ("linear", "pool", "attention")
# The student family a classification run trains when 'student.name' is empty, by the task's input.
DEFAULT_STUDENTS = {"image": "cnn", "features": "mlp", "text": "text-cnn"}


@dataclass
class StudentConfig:
    name: str = ""  # a registered student family (xdistill students); empty = the default for the task's input
    knobs: dict[str, Any] = field(default_factory=dict)  # width/depth knobs of that family


@dataclass
class DistillConfig:
    # Keys of earlier releases and their new names: an old key is an error that says what to use.
    RENAMED: ClassVar[dict[str, str]] = {"temperature": "kd_temperature"}

    task: str = ""  # task folder holding task.yaml
    zoo: str = ""  # zoo YAML file (not needed by methods without teachers)
    out: str = ""  # output folder for the student, metrics and report
    cache_dir: str = ""  # teacher-output cache; empty = $XDISTILL_HOME/cache
    teachers: list[str] = field(default_factory=list)  # subset of the zoo; empty = all
    method: str = "weighted"  # a method registered for the task's kind (xdistill distill --help lists them)
    student: StudentConfig = field(default_factory=StudentConfig)
    init: str = ""  # generic pretrained student (.safetensors, see xdistill pretrain) to start from
    labeled_from: str = ""  # a condensed folder (xdistill condense): its images are the only training data
    seed: int = 0  # seeds data order, augmentation and initialisation
    epochs: int = 30  # passes over the unlabeled pool (steps per epoch = unlabeled / unlabeled batch)
    max_steps_per_epoch: int = 0  # cap on an epoch's steps, for fixed-cost runs on large pools; 0 = a full pass
    batch_size: int = 16  # labeled samples per step (small batches: more steps for the same compute)
    unlabeled_ratio: int = 4  # unlabeled samples per labeled sample in a step (FixMatch's mu)
    lr: float = 1e-2  # peak learning rate of AdamW (linear warm-up, cosine decay to 0)
    weight_decay: float = 5e-4  # AdamW weight decay
    loss: str = "kd"  # distillation loss on logits (a registered loss that consumes student logits)
    kd_temperature: float = 1.0  # temperature of the distillation loss (bridged targets are already calibrated)
    kd_weight: float = 1.0  # weight of the distillation term before reliability scaling
    reliability: bool = True  # without anneal: scale the distillation term by the teachers' held-out labeled accuracy
    anneal: bool = True  # each epoch, weigh the teachers against the student's own held-out estimate (docs/design.md)
    anneal_margin: float = 0.05  # held-out accuracy lead of teachers (student) for full (no) distillation; 0.01..0.2
    label_mix: float = 0.5  # share of the one-hot label in a labeled sample's distillation target; 0..1
    label_weight: float = 1.0  # weight of cross-entropy on the labeled split
    self_training: bool = True  # teacher methods also add FixMatch's consistency term (student pseudo-labels)
    pool_weights: bool = True  # teacher methods down-weight unlabeled samples that look outside the label set
    feature_weight: float = 0.0  # > 0 adds feature distillation through learned projectors
    feature_loss: str = "feature_mse"  # feature loss (a registered loss that consumes student features)
    projector: str = PROJECTORS[0]  # feature_weight > 0: linear | pool | attention (see PROJECTORS)
    partner: str = ""  # collaborative: the second student's family; empty = vit beside a cnn, else cnn
    peer_weight: float = 1.0  # collaborative: weight of each student's distillation towards the other; 0..4
    fixmatch_threshold: float = 0.95  # confidence above which a pseudo-label is used (FixMatch)
    fixmatch_weight: float = 1.0  # weight of FixMatch's unlabeled term
    augment_seed: int = 0  # seed of the cached augmented views (as given to `xdistill cache`)
    views: int = 0  # cached augmented views of unlabeled samples to train on (0 = fresh weak augmentation)
    online: bool = False  # run the teachers live on every batch instead of reading the cache
    kd_augment: str = KD_AUGMENTS[0]  # teacher methods: none | mixup | hard (needs online): the distillation images
    mixup_alpha: float = 1.0  # kd_augment=mixup: each image's share lam ~ Beta(a, a); 0.2..2
    hard_candidates: int = 4  # kd_augment=hard: strong views scored per image (teacher passes per image); 2..16
    metric: str = _SELECTION.metric  # selection metric ranking and weighting the teachers
    prepare: str = _SELECTION.prepare  # feature normalisation before scoring
    prepare_dim: int = _SELECTION.prepare_dim  # PCA components kept by 'pca'
    weight_temperature: float = _SELECTION.weight_temperature  # softmax temperature over standardised scores
    top_k: int = _SELECTION.top_k  # teachers a multi-teacher method mixes (0 = all)
    unlabeled_sample: int = _SELECTION.unlabeled_sample  # unlabeled samples selection and bridges use; 0 = all
    cache_top_k: int = _SELECTION.cache_top_k  # language models: next-token ids cached per teacher position (8-128)
    tokenizer: str = ""  # language models: the student's tokenizer.json; empty = the init file's, else the top teacher's
    domain_sampling: bool = False  # language models: draw more windows from the train domains where the student trails the teachers (DDK)
    steps: int = 4  # generation: the student's sampling steps (Euler steps, one network evaluation each); 1..1024, 1-8 for students
    teacher_steps: int = 0  # generation: Euler steps of the teacher's trajectories; 0 = the method's default
    guidance: float = 0.0  # generation: classifier-free guidance scale the student reproduces; 0 = the teacher's own, 1 = none
    iterations: int = 0  # generation: optimisation steps of the student; 0 = the method's default
    cross_tokenizer_loss: str = "alm"  # language models: the loss for teachers whose tokenizer differs from the student's (alm | uld | shared_vocab)
    agreement_kd: bool = True  # language models across tokenizers: a chunk that is one token under every tokenization is distilled token-level from one teacher
    alm_temperature: float = 1.0  # language models, cross_tokenizer_loss=alm: chunk likelihoods compared as p^(1/t); 1..10
    transplant: bool = False  # language models: give teachers with another tokenizer the student's (by OMP), then 'loss' applies
    transplant_atoms: int = 8  # language models, transplant: shared tokens whose embeddings make each new token's; 1..64
    fake_updates: int = 0  # generation (dmd, sid, multi-student): fake-score updates per generator update; 0 = the method's (dmd 5, sid 1)
    gan_weight: float = 0.1  # generation (dmd, multi-student): weight of the GAN term on the fake-score features; 0 = off
    sid_alpha: float = 1.2  # generation (sid): alpha of the score-identity loss (Zhou et al. 2024 use 1.2); 0-2
    num_students: int = 2  # generation (multi-student): one-step students, each owning an even share of the classes
    mix: str = MIXES[0]  # how a multi-teacher method mixes them per sample: gated | average (see MIXES)
    device: str = "cpu"  # cpu | cuda (bf16 autocast on CUDA)
    threads: int = 0  # torch CPU threads; 0 = torch's default
    loader_workers: int = -1  # processes preparing the next batches; -1 = one for image-folder splits, else 0
    deterministic: bool = True  # deterministic algorithms (resume reproduces an uninterrupted run)
    resume: bool = False  # continue from the checkpoint in 'out'
    progress: bool = True  # show a progress bar
    eval_every: int = 1  # score the test split after every this many epochs (learning curves); 0 = only the run's final scores

    @property
    def selection(self) -> SelectionConfig:
        return selection_of(self)

    def problems(self) -> list[str]:
        """Every problem with the values themselves (registered names are checked by the pipeline)."""
        problems = []
        for key in ("epochs", "batch_size", "unlabeled_ratio"):
            if getattr(self, key) < 1:
                problems.append(f"'{key}' must be >= 1. Got {getattr(self, key)}.")
        # NaN fails every comparison and inf passes '> 0': both are refused here, not mid-training.
        for key in ("lr", "kd_temperature"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) > 0):
                problems.append(f"'{key}' must be a finite number > 0. Got {getattr(self, key)}.")
        for key in ("weight_decay", "kd_weight", "label_weight", "feature_weight", "fixmatch_weight", "peer_weight"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                problems.append(f"'{key}' must be a finite number >= 0. Got {getattr(self, key)}.")
        if not (math.isfinite(self.alm_temperature) and self.alm_temperature > 0):
            problems.append(f"'alm_temperature' must be a finite number > 0. Got {self.alm_temperature}.")
        if not 1 <= self.transplant_atoms <= 256:
            problems.append(f"'transplant_atoms' must lie in 1..256. Got {self.transplant_atoms}.")
        if not (math.isfinite(self.anneal_margin) and self.anneal_margin > 0):
            problems.append(f"'anneal_margin' must be a finite number > 0. Got {self.anneal_margin}.")
        if not 0 <= self.label_mix <= 1:
            problems.append(f"'label_mix' must lie in [0, 1]. Got {self.label_mix}.")
        if not 0 <= self.fixmatch_threshold <= 1:
            problems.append(f"'fixmatch_threshold' must lie in [0, 1]. Got {self.fixmatch_threshold}.")
        if self.views < 0:
            problems.append(f"'views' must be >= 0. Got {self.views}.")
        if self.max_steps_per_epoch < 0:
            problems.append(f"'max_steps_per_epoch' must be >= 0 (0 = a full pass). Got {self.max_steps_per_epoch}.")
        if self.kd_augment not in KD_AUGMENTS:
            problems.append(f"'kd_augment' must be one of {', '.join(KD_AUGMENTS)}. Got {self.kd_augment!r}.")
        elif self.kd_augment == "hard" and not self.online:
            problems.append("'kd_augment=hard' scores new images with the teachers, so they must run live. Pass "
                            "--online (online=true).")
        if self.kd_augment != "none" and self.feature_weight > 0:
            problems.append(f"'kd_augment={self.kd_augment}' shows the distillation term other images than the "
                            f"cached teacher features describe. Set feature_weight=0 or kd_augment=none.")
        if not (math.isfinite(self.mixup_alpha) and self.mixup_alpha > 0):
            problems.append(f"'mixup_alpha' must be a finite number > 0. Got {self.mixup_alpha}.")
        if not 2 <= self.hard_candidates <= 64:
            problems.append(f"'hard_candidates' must lie in 2..64. Got {self.hard_candidates}.")
        if self.projector not in PROJECTORS:
            problems.append(f"'projector' must be one of {', '.join(PROJECTORS)}. Got {self.projector!r}.")
        if not 1 <= self.steps <= 1024:
            problems.append(f"'steps' must lie in 1..1024. Got {self.steps}.")
        for key in ("teacher_steps", "iterations"):
            if getattr(self, key) < 0:
                problems.append(f"'{key}' must be >= 0 (0 = the method's default). Got {getattr(self, key)}.")
        if not (math.isfinite(self.guidance) and self.guidance >= 0):
            problems.append(f"'guidance' must be a finite number >= 0 (0 = the teacher's own, 1 = none). Got {self.guidance}.")
        if not 0 <= self.fake_updates <= 20:
            problems.append(f"'fake_updates' must lie in 0..20 (0 = the method's default). Got {self.fake_updates}.")
        if not (math.isfinite(self.gan_weight) and self.gan_weight >= 0):
            problems.append(f"'gan_weight' must be a finite number >= 0 (0 = no GAN term). Got {self.gan_weight}.")
        if not (math.isfinite(self.sid_alpha) and 0 <= self.sid_alpha <= 2):
            problems.append(f"'sid_alpha' must lie in [0, 2]. Got {self.sid_alpha}.")
        if self.num_students < 1:
            problems.append(f"'num_students' must be >= 1. Got {self.num_students}.")
        if self.mix not in MIXES:
            problems.append(f"'mix' must be one of {', '.join(MIXES)}. Got {self.mix!r}.")
        if not 0 <= self.threads <= 1024:
            problems.append(f"'threads' must lie in 0..1024 (0 = torch's default). Got {self.threads}.")
        if self.eval_every < 0:
            problems.append(f"'eval_every' must be >= 0 (0 = only the run's final scores). Got {self.eval_every}.")
        problems += worker_problems("loader_workers", self.loader_workers)
        problems += self.selection.problems()
        problems += seed_problems(seed=self.seed, augment_seed=self.augment_seed)
        problems += device_problems(self.device)
        return problems


@dataclass
class PretrainConfig:
    """``xdistill pretrain``: a generic student for ``finetune`` and for ``init=`` of any method."""

    task: str = ""  # a labeled task folder (its labeled split is the pool); or
    images: str = ""  # an image folder with one sub-folder of images per class
    student: StudentConfig = field(default_factory=StudentConfig)  # the family to pretrain; empty = per the input
    out: str = ""  # the .safetensors file to write
    epochs: int = 10  # passes over the pool
    batch_size: int = 128  # samples per step
    lr: float = 3e-3  # peak learning rate (cosine decay to 0)
    seed: int = 0  # seeds the order, augmentation and initialisation
    progress: bool = True  # show a progress bar
    tasks: list[str] = field(default_factory=list)  # language models: more task folders whose train text joins the pool
    tokenizer: str = ""  # language models: the student's tokenizer.json; empty = train a byte-level BPE on the pool
    vocab_size: int = 2048  # language models: ids of the tokenizer trained when 'tokenizer' is empty

    def problems(self) -> list[str]:
        problems = [f"'{k}' must be >= 1. Got {getattr(self, k)}." for k in ("epochs", "batch_size")
                    if getattr(self, k) < 1]
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"'lr' must be a finite number > 0. Got {self.lr}.")
        if bool(self.task) == bool(self.images):
            problems.append("Give exactly one of --task DIR (a labeled task folder) and --images DIR (one "
                            "sub-folder per class).")
        if not self.out:
            problems.append("No output file given. Pass --out FILE.safetensors.")
        elif not self.out.endswith(".safetensors"):
            problems.append(f"--out must name a .safetensors file. Got {self.out!r}.")
        return problems + seed_problems(seed=self.seed)
