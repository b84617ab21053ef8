"""``xdistill condense``'s typed config: the one home of condensation defaults.

Iteration budgets default to what a CPU finishes in about a minute on 28x28 images; the papers'
budgets are stated beside each method in ``docs/condense.md``. Registered names (method, labels,
embedder) are checked against their registries by the condense pipeline before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from xdistill.config import device_problems, seed_problems

POOLS = ("auto", "labeled", "pseudo")  # where real images come from: see CondenseConfig.pool
INITS = ("real", "noise", "herding", "kcenter")  # how synthetic images start
FEATURE_SPACES = ("random", "teacher")  # the feature space of the coresets (herding, kcenter)
HARD_LABELS = "hard"  # 'labels' value that keeps hard labels only


@dataclass
class CondenseConfig:
    task: str = ""  # task folder holding task.yaml (an image classification task)
    zoo: str = ""  # zoo YAML file: needed by labels=relabel|committee, features=teacher and the pseudo-labeled pool
    out: str = ""  # output folder: condensed.npz, condense.json, condensed.png
    cache_dir: str = ""  # teacher-output cache; empty = $XDISTILL_HOME/cache
    teachers: list[str] = field(default_factory=list)  # subset of the zoo; empty = all
    method: str = "dm"  # how the images are made (xdistill condense --help lists the methods)
    labels: str = HARD_LABELS  # hard, or a label method (relabel, committee) adding soft labels from the zoo
    ipc: int = 10  # images per class; 1..1000
    seed: int = 0  # seeds the initial images, the random networks, the real mini-batches and augmentation
    iterations: int = 0  # matching iterations; 0 = the method's CPU default (docs/condense.md)
    lr_images: float = 0.0  # learning rate of the synthetic pixels (SGD, momentum 0.5); 0 = the method's default
    real_batch: int = 32  # real images per class in each matching iteration (the papers' 256; memory stays flat); 1..1024
    embedder: str = "convnet3"  # student family whose freshly initialised networks embed the images
    embedder_width: int = 32  # width of those networks (the papers' 128 costs about 8x on a CPU); 8..256
    augment: bool = True  # differentiable Siamese augmentation of real and synthetic batches (Zhao & Bilen 2021)
    flip: bool = False  # FYI (Son et al. 2024): match each synthetic image together with its horizontal flip
    init: str = "herding"  # synthetic images start as the herding coreset of real images (in the 'features' space;
    #                        docs/condense.md says why), the 'kcenter' coreset, random real images of their class
    #                        ('real', the papers' start) or uniform noise ('noise')
    attention_weight: float = 1.0  # datadam: weight of the attention-map term beside the embedding term; >= 0
    attention_power: int = 4  # datadam: p of the attention map sum_c |f_c|^p; 1..8
    net_steps: int = 5  # dc: updates of each random network on the synthetic set between matchings; 0..100
    features: str = "random"  # herding/kcenter: 'random' (a fresh network's embedding) or 'teacher' (best-ranked)
    label_temperature: float = 3.0  # relabel/committee: soft labels become p^(1/T), normalised; > 0 (1 keeps them)
    committee_size: int = 3  # committee: teachers that vote (the best by held-out accuracy); 1..100
    pool: str = "auto"  # auto: add pseudo-labeled unlabeled images when a class has under 5 x ipc labels and the zoo
    #                     is reliable enough; labeled: labels only; pseudo: always add them (error if unreliable)
    pseudo_min_accuracy: float = 0.9  # teachers' held-out labeled accuracy the pseudo-labeled pool needs; 0..1
    pseudo_confidence: float = 0.9  # an unlabeled image joins the pool when the teachers' top probability is this high
    device: str = "cpu"  # cpu | cuda
    threads: int = 0  # torch CPU threads; 0 = torch's default
    progress: bool = True  # show a progress bar

    def problems(self) -> list[str]:
        """Every problem with the values themselves (registered names are checked by the pipeline)."""
        problems = []
        for key, low, high in (("ipc", 1, 1000), ("real_batch", 1, 1024), ("embedder_width", 8, 256),
                               ("attention_power", 1, 8), ("net_steps", 0, 100), ("committee_size", 1, 100),
                               ("iterations", 0, 1_000_000), ("threads", 0, 1024)):
            value = getattr(self, key)
            if not low <= value <= high:
                problems.append(f"'{key}' must lie in {low}..{high}. Got {value}.")
        if not (math.isfinite(self.lr_images) and self.lr_images >= 0):
            problems.append(f"'lr_images' must be a finite number >= 0 (0 = the method's default). Got {self.lr_images}.")
        if not (math.isfinite(self.label_temperature) and self.label_temperature > 0):
            problems.append(f"'label_temperature' must be a finite number > 0. Got {self.label_temperature}.")
        if not (math.isfinite(self.attention_weight) and self.attention_weight >= 0):
            problems.append(f"'attention_weight' must be a finite number >= 0. Got {self.attention_weight}.")
        for key in ("pseudo_min_accuracy", "pseudo_confidence"):
            if not 0 <= getattr(self, key) <= 1:
                problems.append(f"'{key}' must lie in [0, 1]. Got {getattr(self, key)}.")
        for key, choices in (("pool", POOLS), ("init", INITS), ("features", FEATURE_SPACES)):
            if getattr(self, key) not in choices:
                problems.append(f"'{key}' must be one of {', '.join(choices)}. Got {getattr(self, key)!r}.")
        return problems + seed_problems(seed=self.seed) + device_problems(self.device)
