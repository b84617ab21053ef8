"""Where a long job reports and how it is spread over processes, shared by every stage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass
class Runtime:
    """Where a run reports and how it is spread over processes."""

    log: Callable[[str], None] | None = print  # progress lines (rank 0 only)
    rank: int = 0  # this process's rank
    world_size: int = 1  # processes training together (torchrun)
    wrap: Callable[[nn.Module], nn.Module] | None = None  # e.g. DistributedDataParallel around the forward module
    write_report: bool = True  # write report.html beside the run's metrics

    @property
    def info(self) -> Callable[[str], None] | None:
        return self.log if self.rank == 0 else None
