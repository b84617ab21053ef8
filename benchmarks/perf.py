"""What the teacher cache costs and saves on this machine (the same as ``xdistill bench --perf``).

    python benchmarks/perf.py [--quick] [--out DIR] [--threads N]

Prints the machine, then every comparison as a ratio of two timings made in
this one run: extraction against bare teacher passes, cached distillation
against supervised training and online teachers, each selection metric's time
at N=5,000, D=1,024, C=10, and extraction's peak memory at 10,000 and 50,000
images. Builds the digits demo world first if it is missing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from xdistill.bench.perf import run_perf
from xdistill.demo.world import build_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and epochs")
    parser.add_argument("--out", type=Path, default=None, help="also write perf.json and perf.md here")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = build_world(None, progress=False, log=print)
    first = sorted(world.task_paths)[0]
    run_perf(world.task_paths[first], world.zoo_path, out=args.out, quick=args.quick)


if __name__ == "__main__":
    main()
