"""The ``diffusion`` teacher kind: a class-conditional image denoiser for the generation kind.

    - name: digits-flow
      kind: diffusion
      path: teacher                 # xdistill's denoiser folder (config.json + model.safetensors), or
                                    # a diffusers UNet2DModel folder with its scheduler config
      labels: ["0", ..., "9"]

Two folder formats load:

- xdistill's own denoiser folder (``xdistill.models.denoiser``): a rectified-flow ``unet``.
- a ``diffusers`` ``UNet2DModel`` (weights as safetensors) with its scheduler's ``scheduler_config.json``,
  either as a pipeline folder (``unet/`` and ``scheduler/``) or flat (both files in ``path``). It must be
  class-conditional through its class embedding (``num_class_embeds``); the last class index is its null class
  for classifier-free guidance unless ``null_class`` says otherwise, and ``num_classes`` is the rest. Its
  noise (epsilon), v or sample prediction at a discrete DDPM time is turned into the rectified-flow velocity
  the generation kind samples with (:class:`DiffusersDenoiser`), so every sampler and method takes it as is.

A diffusion teacher generates images; it has no classification outputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherSpec

DIFFUSERS_HINT = "pip install 'xdistill[diffusers]'"


@dataclass
class DiffusionOptions:
    path: str  # folder (relative to the zoo file): xdistill denoiser folder or diffusers UNet2DModel folder
    guidance: float = 0.0  # classifier-free guidance scale of its samples; 0 = the folder's own default (else 2)
    steps: int = 0  # Euler steps of its samples; 0 = the folder's own default (else 50)
    null_class: int = -1  # diffusers models: the class index of the unconditional embedding; -1 = the last one

    def problems(self) -> list[str]:
        problems = []
        if not (np.isfinite(self.guidance) and self.guidance >= 0):
            problems.append(f"'guidance' must be a finite number >= 0 (0 = the folder's default, 1 = none). Got {self.guidance}.")
        if self.steps < 0:
            problems.append(f"'steps' must be >= 0 (0 = the folder's default). Got {self.steps}.")
        return problems

    def path_problems(self, base_dir: Path) -> list[str]:
        folder = base_dir / self.path
        if not folder.is_dir():
            return [f"path '{folder}' is not a folder. A diffusion teacher is an xdistill denoiser folder or a "
                    "diffusers UNet2DModel folder with its scheduler config."]
        if denoiser_format(folder) is None:
            return [f"path '{folder}' holds neither an xdistill denoiser (config.json with format "
                    "'xdistill-denoiser-1' and model.safetensors) nor a diffusers UNet2DModel with "
                    "scheduler_config.json (flat, or in unet/ and scheduler/)."]
        return []


def diffusers_files(folder: Path) -> tuple[Path, Path] | None:
    """(the UNet2DModel folder, its scheduler_config.json) of a diffusers folder, pipeline or flat."""
    folder = Path(folder)
    for model, scheduler in ((folder / "unet", folder / "scheduler" / "scheduler_config.json"),
                             (folder, folder / "scheduler_config.json")):
        config = model / "config.json"
        if config.is_file() and scheduler.is_file():
            try:
                if json.loads(config.read_text()).get("_class_name") == "UNet2DModel":
                    return model, scheduler
            except (json.JSONDecodeError, OSError, AttributeError):
                return None
    return None


def denoiser_format(folder: Path) -> str | None:
    """'xdistill', 'diffusers' or None."""
    from xdistill.models.denoiser import is_denoiser_folder

    if is_denoiser_folder(folder):
        return "xdistill"
    return "diffusers" if diffusers_files(folder) is not None else None


class DiffusersDenoiser(nn.Module):
    """A diffusers ``UNet2DModel`` (DDPM time, discrete variance-preserving schedule) as a rectified-flow denoiser.

    A flow state x = (1 - t) x0 + t eps is the variance-preserving state x / s with s = sqrt((1 - t)^2 + t^2),
    whose signal-to-noise ratio (1 - t)^2 / t^2 fixes the DDPM time k, interpolated in log-SNR between the
    schedule's steps (clamped to its range). From the model's prediction at k, x0 and eps follow
    (epsilon: x0 = (x_vp - b eps) / a; v: x0 = a x_vp - b v, eps = b x_vp + a v; sample: eps = (x_vp - a x0) / b,
    with a = (1 - t) / s, b = t / s) and the velocity is eps - x0.
    """

    def __init__(self, unet, alphas_cumprod: torch.Tensor, prediction_type: str, null_class: int = -1) -> None:
        super().__init__()
        self.unet = unet.eval()
        embeds = int(unet.config.num_class_embeds or 0)
        if embeds < 2:
            raise XDistillError("The diffusers UNet2DModel is not class-conditional (its num_class_embeds is "
                                f"{unet.config.num_class_embeds}). The generation kind needs a class embedding.")
        if prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise XDistillError(f"Scheduler prediction_type must be epsilon, v_prediction or sample. Got {prediction_type!r}.")
        self.null = embeds - 1 if null_class < 0 else null_class
        self.num_classes = embeds - 1
        self.prediction_type = prediction_type
        self.input_shape = (int(unet.config.in_channels), int(unet.config.sample_size), int(unet.config.sample_size))
        bar = alphas_cumprod.double()
        self.register_buffer("log_snr", torch.log(bar / (1.0 - bar)), persistent=False)  # decreasing in k

    def ddpm_time(self, t: torch.Tensor) -> torch.Tensor:
        """The continuous DDPM time k [N] whose log-SNR is the flow state's, within the schedule."""
        t = t.double().clamp(1e-6, 1 - 1e-6)
        target = torch.log((1 - t) ** 2 / t ** 2).clamp(self.log_snr[-1], self.log_snr[0])
        ks = torch.arange(len(self.log_snr), dtype=torch.float64)
        return torch.from_numpy(np.interp(-target.numpy(), -self.log_snr.numpy(), ks.numpy()))

    def velocity(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, guidance=None) -> torch.Tensor:
        y = torch.where(y == self.num_classes, torch.full_like(y, self.null), y)
        t = t.float().clamp(1e-4, 1 - 1e-4)
        s = torch.sqrt((1 - t) ** 2 + t ** 2).view(-1, 1, 1, 1)
        a, b = (1 - t).view(-1, 1, 1, 1) / s, t.view(-1, 1, 1, 1) / s
        x_vp = x / s
        out = self.unet(x_vp, self.ddpm_time(t).float(), class_labels=y).sample
        if self.prediction_type == "epsilon":
            eps, x0 = out, (x_vp - b * out) / a
        elif self.prediction_type == "v_prediction":
            x0, eps = a * x_vp - b * out, b * x_vp + a * out
        else:
            x0, eps = out, (x_vp - a * out) / b
        return eps - x0


def load_diffusers(folder: Path, null_class: int = -1) -> DiffusersDenoiser:
    try:
        from diffusers import DDPMScheduler, UNet2DModel
    except ImportError:
        raise XDistillError(f"Loading a diffusers teacher needs the diffusers package. Install it with: {DIFFUSERS_HINT}.") from None
    model_dir, scheduler_path = diffusers_files(folder)
    try:
        unet = UNet2DModel.from_pretrained(str(model_dir), use_safetensors=True)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise XDistillError(f"'{model_dir}' could not be read as a diffusers UNet2DModel with safetensors weights "
                            f"({exc}). Save it with save_pretrained(..., safe_serialization=True).") from exc
    config = json.loads(scheduler_path.read_text())
    scheduler = DDPMScheduler.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    return DiffusersDenoiser(unet, scheduler.alphas_cumprod, config.get("prediction_type", "epsilon"), null_class)


class DiffusionTeacher:
    """A zoo's diffusion teacher: ``setup()`` loads ``denoiser`` (velocity, num_classes, input_shape)."""

    modality = "image"

    def __init__(self, spec: TeacherSpec) -> None:
        self.spec, self.name, self.labels = spec, spec.name, spec.labels
        self.domain, self.architecture = spec.domain, spec.architecture
        self.folder = spec.base_dir / spec.options.path
        self.denoiser = None
        self.guidance, self.steps = spec.options.guidance, spec.options.steps

    def setup(self) -> None:
        if self.denoiser is not None:
            return
        self.denoiser, defaults = load_denoiser_any(self.folder, self.spec.options.null_class)
        self.guidance = self.guidance or float(defaults.get("guidance", 2.0))
        self.steps = self.steps or int(defaults.get("steps", 50))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(p for p in self.folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(self.folder)).encode())
            digest.update(path.read_bytes())
        return "diffusion-" + digest.hexdigest()[:32]

    def outputs(self, batch):
        raise XDistillError(f"Teacher '{self.name}' is a diffusion model: it generates images and has no "
                            "classification outputs. Use it with a task of kind generation.")


def load_denoiser_any(folder: Path, null_class: int = -1):
    """(denoiser in eval mode, its sampling defaults) of an xdistill or a diffusers folder."""
    from xdistill.models.denoiser import load_denoiser

    found = denoiser_format(folder)
    if found == "xdistill":
        network, config = load_denoiser(folder)
        return network, config
    if found == "diffusers":
        return load_diffusers(folder, null_class).requires_grad_(False), {}
    raise XDistillError(f"'{folder}' holds neither an xdistill denoiser nor a diffusers UNet2DModel with its "
                        "scheduler config.")


TEACHER_KINDS.register("diffusion", TeacherKind(options=DiffusionOptions, build=DiffusionTeacher, modalities=("image",)))
