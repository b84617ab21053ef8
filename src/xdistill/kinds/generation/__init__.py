"""The generation kind: class-labelled real images (``train``, ``test``), a class-conditional diffusion teacher
(``kind: diffusion``), and few-step students distilled from it, scored by a Fréchet distance, precision,
recall and class consistency in the feature space of the task's own classifier.

Registered as ``generation``. Files: ``task`` (the folder format), ``flow`` (rectified flow: path, Euler
sampler, guidance), ``train_flow`` (flow-matching training), ``methods/`` (one file each), ``judge`` (the task's
classifier), ``metrics`` (the metric functions), ``scoring`` (sampling and scoring), ``grids`` (sample grids),
``run`` (distill, eval), ``verbs`` (generate). The network is the registered student ``unet``; its folder format
is ``xdistill.models.denoiser``. docs/generation.md describes the whole.
"""

from __future__ import annotations

from pathlib import Path

from xdistill.kinds.generation.methods import METHODS
from xdistill.kinds.generation.run import distill_generation, evaluate_generation, generation_config_problems, resolve_generation
from xdistill.kinds.generation.task import KIND, load_generation_task
from xdistill.kinds.generation.verbs import cache_generation, generate_images, prepare_generation
from xdistill.kinds.registry import KINDS, TaskKind
from xdistill.registry import Registry

SCORES = Registry("generation selection metric")


def owns_folder(folder: Path) -> bool:
    """A diffusion teacher folder (xdistill's denoiser or a diffusers UNet2DModel), scored and sampled like a run."""
    from xdistill.teachers.diffusion import denoiser_format

    return Path(folder).is_dir() and denoiser_format(Path(folder)) is not None


KINDS.register(KIND, TaskKind(
    summary="class-labelled images (train, test): a diffusion teacher distilled into few-step U-Net students",
    splits=("train", "test"),
    teacher_outputs={"velocity": "[n, C, H, W] float32 (computed live, never cached)"},
    headline="frechet_distance",
    lower_is_better=True,
    methods=METHODS,
    metrics=SCORES,
    load=load_generation_task,
    prepare=prepare_generation,
    distill=distill_generation,
    evaluate=evaluate_generation,
    config_problems=generation_config_problems,
    resolve=resolve_generation,
    students=lambda: ["unet"],
    losses=lambda: ["velocity_mse"],
    cache=cache_generation,
    generate=generate_images,
    owns=owns_folder,
))
