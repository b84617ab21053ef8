"""The reuse check of `xdistill bench --condense` on any demo target (the bench runs it on mnist-noise):

    PYTHONPATH=src python benchmarks/condense_reuse.py --out DIR --target sk-digits [--ipc 50] [--seeds 1]

Condenses the target once with the bench's settings (herding, relabel soft labels), then trains each method on the
full target and with labeled_from= the condensed set, and prints the table of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xdistill.bench.condense import reuse_check
from xdistill.cli.condense import (REUSE_CONDENSE, REUSE_CONDENSED_SETTINGS, REUSE_EPOCHS, REUSE_METHODS,
                                   REUSE_SHARED_SETTINGS)
from xdistill.demo.world import build_world
from xdistill.io import atomic_write_json
from xdistill.report.condense import markdown_table, reuse_line, reuse_table

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--target", default="mnist-noise")
    parser.add_argument("--ipc", type=int, default=REUSE_CONDENSE["ipc"])
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    world = build_world(progress=False, log=print)
    check = reuse_check(world.task_paths[args.target], world.zoo_path, REUSE_METHODS,
                        {**REUSE_CONDENSE, "ipc": args.ipc}, REUSE_EPOCHS, args.seeds,
                        condensed_settings=dict(REUSE_CONDENSED_SETTINGS),
                        shared_settings=dict(REUSE_SHARED_SETTINGS), log=print)
    reuse = check(args.out)
    atomic_write_json(args.out / "reuse.json", reuse)
    print(reuse_line(reuse))
    print(markdown_table(*reuse_table(reuse)))
