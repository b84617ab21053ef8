"""A deliberately slow ``module`` teacher (zoo ``factory: tests.reliability.slow_teacher:build``):
it keeps two caching processes busy long enough to overlap, and logs every call."""

from __future__ import annotations

import os
import time

import torch
from torch import nn


class SlowNet(nn.Module):
    """forward(x [N,1,8,8]) -> (features [N,5], logits [N,3]), after sleeping ``delay`` seconds."""

    def __init__(self, delay: float, log: str) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Tanh())
        self.head = nn.Linear(5, 3)
        self.delay, self.log = delay, log

    def forward(self, x: torch.Tensor):
        time.sleep(self.delay)
        if self.log:
            with open(self.log, "a") as handle:
                handle.write(f"{os.getpid()} {time.time():.6f} {len(x)}\n")
        features = self.body(x)
        return features, self.head(features)


def build(delay: float = 0.03, log: str = "") -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the same weights, hence the same fingerprint, in every process
        return SlowNet(delay, log)
