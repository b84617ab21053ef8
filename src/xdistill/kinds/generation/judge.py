"""The task's own classifier that generation metrics read: trained once on the real ``train`` split, cached.

A small CNN (two 3x3 convolution stages with batch norm and pooling, a 128-wide penultimate layer, a linear
head) trained for ``EPOCHS`` epochs with AdamW on the task's train images in [-1, 1], with small random
shifts. Its penultimate features are the space of the Fréchet distance and of precision and recall; its
predictions give class consistency; its own accuracy on the test split is reported beside them.

Cached in ``$XDISTILL_HOME/gen-judges/v<JUDGE_VERSION>-<train fingerprint>/`` (``model.safetensors`` and
``judge.json``), so every run on a task is measured by the same classifier; a changed recipe changes
``JUDGE_VERSION``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from xdistill.home import xdistill_home
from xdistill.io import atomic_write, atomic_write_json, load_weights, read_safetensors

JUDGE_VERSION = 1
EPOCHS = 12
BATCH = 128
FEATURES = 128


class DigitsClassifier(nn.Module):
    def __init__(self, channels: int, size: tuple[int, int], num_classes: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * (size[0] // 4) * (size[1] // 4), FEATURES), nn.ReLU())
        self.head = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 1) -> torch.Tensor:
    """Each image moved by up to ``pixels`` in each direction (zero padding at -1, the background)."""
    padded = F.pad(x, (pixels,) * 4, value=-1.0)
    h, w = x.shape[-2:]
    dy, dx = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
    return padded[..., dy:dy + h, dx:dx + w]


def train_judge(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int = 0, epochs: int = EPOCHS) -> DigitsClassifier:
    """A classifier of images x [N, C, H, W] in [-1, 1] with labels y [N]."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DigitsClassifier(x.shape[1], tuple(x.shape[2:]), num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * ((len(x) + BATCH - 1) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), BATCH):
            index = order[i:i + BATCH]
            loss = F.cross_entropy(model(_shift(x[index], generator)), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.inference_mode()
def judge_outputs(model: DigitsClassifier, x: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate features [N, 128] float64, predicted classes [N]) of images x [N, C, H, W] in [-1, 1]."""
    features, predicted = [], []
    for i in range(0, len(x), batch_size):
        f = model.features(x[i:i + batch_size].float())
        features.append(f.double().numpy())
        predicted.append(model.head(f).argmax(1).numpy())
    return np.concatenate(features), np.concatenate(predicted)


def judge_folder(task, home: Path | None = None) -> Path:
    return Path(home or xdistill_home()) / "gen-judges" / f"v{JUDGE_VERSION}-{task.splits['train'].fingerprint}"


def load_or_train_judge(task, home: Path | None = None, log=None) -> tuple[DigitsClassifier, dict]:
    """(the task's classifier, its record: test accuracy, epochs, version), trained on first use and cached."""
    from safetensors.torch import save_file

    from xdistill.kinds.generation.flow import to_model_space

    folder = judge_folder(task, home)
    train, test = task.splits["train"], task.splits["test"]
    x = to_model_space(train.x)
    model = DigitsClassifier(x.shape[1], tuple(x.shape[2:]), len(task.classes))
    if (folder / "judge.json").is_file() and (folder / "model.safetensors").is_file():
        load_weights(model, read_safetensors(folder / "model.safetensors", "The task classifier's weights"),
                     f"The task classifier in '{folder}'", "this task's images", "Delete the folder to retrain it.")
        return model.eval(), json.loads((folder / "judge.json").read_text())
    if log:
        log(f"training the task classifier for generation metrics on {len(train)} train images of '{task.name}'")
    model = train_judge(x, torch.as_tensor(train.y), len(task.classes))
    _, predicted = judge_outputs(model, to_model_space(test.x))
    record = {"version": JUDGE_VERSION, "epochs": EPOCHS, "train_fingerprint": train.fingerprint,
              "test_fingerprint": test.fingerprint, "test_accuracy": float((predicted == test.y).mean())}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(state, str(tmp)))
    atomic_write_json(folder / "judge.json", record)
    return model, record
