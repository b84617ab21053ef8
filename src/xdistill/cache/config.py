"""Configuration of a caching run."""

from __future__ import annotations

from dataclasses import dataclass, field

from xdistill.config import device_problems, seed_problems, worker_problems


@dataclass
class CacheConfig:
    task: str = ""  # task folder (holding task.yaml)
    zoo: str = ""  # zoo YAML file
    cache_dir: str = ""  # where outputs are stored; empty = $XDISTILL_HOME/cache
    teachers: list[str] = field(default_factory=list)  # subset of the zoo by name; empty = all
    views: int = 0  # augmented views of each unlabeled sample to cache (0-8 typical)
    augment_seed: int = 0  # seed of the augmented views
    batch_size: int = 256  # samples per teacher forward pass (32-1024)
    shard_size: int = 4096  # samples per safetensors shard (bounds extraction memory)
    device: str = "cpu"  # cpu or cuda
    loader_workers: int = -1  # processes reading the next input batches; -1 = one for image-folder splits, else 0
    cache_top_k: int = 32  # language models: next-token ids kept per teacher position (8-128)

    def problems(self) -> list[str]:
        problems = seed_problems(augment_seed=self.augment_seed) + device_problems(self.device)
        problems += worker_problems("loader_workers", self.loader_workers)
        if self.cache_top_k < 1:
            problems.append(f"'cache_top_k' must be >= 1. Got {self.cache_top_k}.")
        if self.views < 0:
            problems.append(f"'views' must be >= 0. Got {self.views}.")
        if self.batch_size < 1 or self.shard_size < 1:
            problems.append(f"'batch_size' and 'shard_size' must be >= 1. Got {self.batch_size} and {self.shard_size}.")
        return problems
