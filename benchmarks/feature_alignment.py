"""Feature distillation across architectures: the linear projector against the layout projectors
(xdistill.losses.alignment) from the demo zoo's CNN teachers into a ViT (or any) student.

    python benchmarks/feature_alignment.py [--students vit] [--projectors linear,attention] [--seeds 3] [--epochs 8]

The teachers are the demo zoo's entries declared `architecture: cnn` (a zoo file of just them is written
beside the results); every target of the demo suite; method `weighted` with `feature_weight=1`, one bench row
per projector, through the matrix (`xdistill.bench.matrix`), so the table and heat-map land in
$XDISTILL_HOME/bench/feature-alignment/ (matrix.md, report.html). Runs are read back when rerun.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from xdistill.bench.matrix import run_matrix
from xdistill.bench.suite import BenchConfig
from xdistill.demo.suite import demo_suite
from xdistill.home import xdistill_home
from xdistill.io import atomic_write_text
from xdistill.report.matrix import markdown_matrix


def architecture_zoo(zoo: Path, architecture: str, out: Path) -> Path:
    """A zoo file holding the entries of ``zoo`` declared ``architecture``, with their paths made absolute."""
    raw = yaml.safe_load(zoo.read_text())
    kept = [{**entry, "path": str((zoo.parent / entry["path"]).resolve())} for entry in raw["teachers"]
            if entry.get("architecture") == architecture]
    path = out / f"zoo-{architecture}.yaml"
    atomic_write_text(path, yaml.safe_dump({"teachers": kept}, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", default="vit")
    parser.add_argument("--projectors", default="linear,attention")
    parser.add_argument("--teachers", default="cnn", help="the zoo's 'architecture' to distill from")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--feature-weight", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or xdistill_home() / "bench" / "feature-alignment"
    targets, cache = demo_suite(log=print)
    zoo = architecture_zoo(Path(targets[0].zoo), args.teachers, out)
    targets = [dataclasses.replace(t, zoo=zoo) for t in targets]
    methods = [f"weighted+feature_weight={args.feature_weight:g}+projector={p.strip()}"
               for p in args.projectors.split(",") if p.strip()]
    bench = BenchConfig(seeds=args.seeds, methods=methods, epochs=args.epochs, out=str(out), cache_dir=str(cache),
                        suite="feature-alignment", students=[s.strip() for s in args.students.split(",")])
    print(markdown_matrix(run_matrix(targets, bench)))


if __name__ == "__main__":
    main()
