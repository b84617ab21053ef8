"""From a task's raw inputs to student batches: encoding, augmentation and a
deterministic sampling order.

Images are scaled to [0, 1], augmented, then normalised with mean 0.5 and
std 0.5 per channel (recorded in student.json so exported students get the
same preprocessing). Feature vectors are used as they are. A lazy split is
read per batch (only the rows of ``index``), and the pages of a memory map are
released after each read so resident memory stays that of one batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from xdistill.data.augment import augment
from xdistill.data.lazy import release_pages
from xdistill.data.task import Split
from xdistill.data.tensors import images_to_tensor

IMAGE_MEAN = 0.5
IMAGE_STD = 0.5


@dataclass(frozen=True)
class StudentInputs:
    """How one task's raw samples become student input tensors."""

    kind: str  # image | features | text
    tokenizer: object | None = None  # for text: an object with encode(texts) -> LongTensor [N, L]

    def preprocessing(self) -> dict:
        if self.kind == "image":
            return {"kind": "image", "scale": "uint8/255", "mean": IMAGE_MEAN, "std": IMAGE_STD}
        if self.kind == "text":
            return {"kind": "text", **(self.tokenizer.describe() if hasattr(self.tokenizer, "describe") else {})}
        return {"kind": "features"}

    def raw_images(self, split: Split, index: np.ndarray) -> torch.Tensor:
        """Images [B, C, H, W] in [0, 1] (before normalisation)."""
        images = images_to_tensor(split.x[index])
        release_pages(split.x)
        return images

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - IMAGE_MEAN) / IMAGE_STD

    def encode(self, split: Split, index: np.ndarray) -> torch.Tensor:
        """Clean (unaugmented) student inputs for samples ``index`` of ``split``."""
        if self.kind == "image":
            return self.normalise(self.raw_images(split, index))
        if self.kind == "text":
            return self.tokenizer.encode([str(t) for t in split.x[index]])
        vectors = torch.as_tensor(np.asarray(split.x[index], dtype=np.float32))
        release_pages(split.x)
        return vectors

    def encode_all(self, split: Split, batch_size: int = 1024) -> list[torch.Tensor]:
        return [self.encode(split, np.arange(i, min(i + batch_size, len(split)))) for i in range(0, len(split), batch_size)]

    def augmented(self, split: Split, index: np.ndarray, strength: str, seed: int, view: int = 0,
                  per_split: bool = False) -> torch.Tensor:
        """Augmented, normalised inputs. With ``per_split`` the augmentation of view
        ``view`` is the one the cache used for those sample positions."""
        if self.kind != "image":
            return self.encode(split, index)
        images = self.raw_images(split, index)
        if per_split:
            images = augment(images, strength, seed, view, indices=index, total=len(split))
        else:
            images = augment(images, strength, seed, view)
        return self.normalise(images)


def epoch_order(n: int, count: int, seed: int, epoch: int, stream: int) -> np.ndarray:
    """``count`` sample indices in 0..n-1: shuffled passes over the data, seeded by (seed, epoch, stream)."""
    rng = np.random.default_rng([seed, epoch, stream])
    passes = -(-count // n)
    return np.concatenate([rng.permutation(n) for _ in range(passes)])[:count]
