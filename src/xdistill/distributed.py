"""Scaling out on PyTorch's own engine: ``torch.distributed`` launched by torchrun.

``torchrun --nproc_per_node=N -m xdistill cache|distill ...`` sets RANK,
WORLD_SIZE and the rendezvous variables; :func:`distributed_context` joins the
process group (gloo on CPU, NCCL on CUDA) and leaves it on exit. Without those
variables it is a no-op single-process context. ``--nproc N`` on the CLI
re-launches the same command under torchrun.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from xdistill.errors import XDistillError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def active(self) -> bool:
        return self.world_size > 1


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


@contextlib.contextmanager
def distributed_context(device: str = "cpu", timeout_s: float = 300.0) -> Iterator[DistContext]:
    """Join the torchrun process group if launched by torchrun, else yield a 1-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        yield DistContext(device=device)
        return
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise XDistillError("device 'cuda' was asked for but CUDA is not available. Use device=cpu.")
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    try:
        yield DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)
    finally:
        dist.destroy_process_group()


def launch_torchrun(verb: str, argv: list[str], nproc: int) -> int:
    """Re-run ``xdistill <argv>`` (minus ``--nproc``) under ``torchrun --nproc_per_node nproc``."""
    args = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "xdistill", *args]
    completed = subprocess.run(cmd, check=False)
    if completed.returncode != 0:
        raise XDistillError(
            f"The {nproc}-process '{verb}' run failed (exit code {completed.returncode}); see the messages above. "
            "Fix the cause and run again with --resume (distill) or the same command (cache) to continue."
        )
    return 0
