"""The condensation bench with condense settings of your own, beside `xdistill bench --condense`:

    PYTHONPATH=src python benchmarks/condense_bench.py --out DIR --methods dm --ipcs 10 iterations=800 init=herding

Reuses `--reuse-baselines DIR` (another bench folder with the same evaluation recipe) instead of retraining
the random-real and full-data students.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from xdistill.bench.condense import CondenseBenchConfig, run_condense_bench
from xdistill.config import parse_overrides
from xdistill.demo.condense_target import condense_target
from xdistill.demo.world import build_world
from xdistill.report.condense import condense_table, markdown_table

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", default="dm")
    parser.add_argument("--ipcs", default="1,10")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reuse-baselines", type=Path)
    parser.add_argument("settings", nargs="*", help="key=value condense settings for every method")
    args = parser.parse_args()
    if args.reuse_baselines and not (args.out / "baselines").exists():
        shutil.copytree(args.reuse_baselines / "baselines", args.out / "baselines")
    world = build_world(progress=False, log=print)
    bench = CondenseBenchConfig(methods=args.methods.split(","), ipcs=[int(i) for i in args.ipcs.split(",")],
                                seeds=args.seeds, condense=parse_overrides(args.settings), out=str(args.out))
    results = run_condense_bench(condense_target(), world.zoo_path, bench, log=print)
    print(markdown_table(*condense_table(results)))
