"""Condensation at 32x32x3 on pools of growing size: wall time and peak memory of `xdistill condense` per run.

    PYTHONPATH=src python benchmarks/condense_scale.py --out /tmp/condense-scale [--sizes 2000,20000] [--ipcs 1,10]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xdistill.bench.condense import scale_check

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--ipcs", default="1,10")
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    scale_check(args.out, [int(s) for s in args.sizes.split(",")], [int(i) for i in args.ipcs.split(",")],
                settings={"iterations": args.iterations}, log=print)
