"""The language-model demo world's figures: methods x targets x seeds, rank on unseen domains, the
time of one distillation on ~200 KB, the cost of a cached KD step against a plain one, and the
cache's size and reconstruction error at several k.

    python benchmarks/lm_bench.py methods --seeds 3      # test bits per byte, every method and target
    python benchmarks/lm_bench.py probes                 # rank on text from domains the world never uses
    python benchmarks/lm_bench.py trust --seeds 3        # teacher methods with and without anneal, where no teacher fits
    python benchmarks/lm_bench.py timing                 # one nearest run on ~200 KB of target text
    python benchmarks/lm_bench.py step-ratio             # cached KD step / plain next-token step
    python benchmarks/lm_bench.py cache --k 8 32 128     # bytes per token and reconstruction KL
    python benchmarks/lm_bench.py xtok --seeds 3         # the cross-tokenizer world: methods, losses, transplant, control
    python benchmarks/lm_bench.py step-ratio --xtok      # cached cross-tokenizer (ALM) step / plain next-token step

Every command builds the world first if needed ($XDISTILL_HOME/lm-world-v<N>, and for xtok and step-ratio --xtok
$XDISTILL_HOME/lm-xtok-world-v<N>) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xdistill.demo import lm_world
from xdistill.demo.lm_world import PROBES, STUDENT_KNOBS, TARGETS, LMWorld, corpus, distill_config, split_target
from xdistill.home import xdistill_home

METHODS = ("supervised", "finetune", "nearest", "weighted")
WORLD: list[Path] = []  # --world DIR: an existing world folder instead of $XDISTILL_HOME's


def build_lm_world() -> LMWorld:
    return LMWorld(WORLD[0]) if WORLD else lm_world.build_lm_world()


def methods(args) -> None:
    from xdistill.pipeline.distill import distill

    world = build_lm_world()
    out = Path(args.out)
    table = {}
    for target in TARGETS:
        for method in METHODS:
            for seed in range(args.seeds):
                folder = out / target / f"{method}-s{seed}"
                path = folder / "metrics.json"
                if not path.is_file():
                    started = time.perf_counter()
                    distill(distill_config(world, target, method, seed, folder, cache_dir=str(out / "cache")))
                    print(f"{target} {method} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
                metrics = json.loads(path.read_text())
                table.setdefault(target, {}).setdefault(method, []).append(metrics["test"]["bits_per_byte"])
    print(f"\n| target | {' | '.join(METHODS)} | weighted vs supervised | nearest vs supervised |")
    print("|---|" + "---|" * (len(METHODS) + 2))
    verdict = True
    for target, rows in table.items():
        means = {m: statistics.mean(v) for m, v in rows.items()}
        cells = [f"{means[m]:.4f} ± {statistics.stdev(v) if len(v) > 1 else 0:.4f}" for m, v in rows.items()]
        gains = [1 - means[m] / means["supervised"] for m in ("weighted", "nearest")]
        print(f"| {target} | {' | '.join(cells)} | {gains[0]:+.1%} | {gains[1]:+.1%} |")
        verdict &= all(g >= 0.03 for g in gains) and all(means[m] < means["finetune"] for m in ("weighted", "nearest"))
    print(f"\nweighted and nearest >= 3% below supervised and below finetune on every target: {verdict}")
    Path(args.json).write_text(json.dumps(table, indent=2))


# The cross-tokenizer table's rows: (label, method, zoo, overrides). "control" distils the teacher trained on the same
# corpus with the student's tokenizer; the others distil the world's teachers, none of which shares it.
XTOK_ROWS = (
    ("supervised", "supervised", "zoo", {}),
    ("finetune", "finetune", "zoo", {}),
    ("nearest (alm)", "nearest", "zoo", {}),
    ("weighted (alm)", "weighted", "zoo", {}),
    ("control: nearest, same tokenizer", "nearest", "control", {}),
    ("nearest, uld", "nearest", "zoo", {"cross_tokenizer_loss": "uld"}),
    ("nearest, shared_vocab", "nearest", "zoo", {"cross_tokenizer_loss": "shared_vocab"}),
    ("nearest, transplant + forward_kl", "nearest", "zoo", {"transplant": True}),
    ("nearest, alm alone", "nearest", "zoo", {"agreement_kd": False}),
    ("nearest, uld alone", "nearest", "zoo", {"cross_tokenizer_loss": "uld", "agreement_kd": False}),
    # pure distillation: the cross-tokenizer loss is the only objective (no next-token cross-entropy)
    ("nearest, alm pure", "nearest", "zoo", {"agreement_kd": False, "label_weight": 0.0}),
    ("nearest, uld pure", "nearest", "zoo", {"cross_tokenizer_loss": "uld", "agreement_kd": False,
                                             "label_weight": 0.0}),
)


def xtok(args) -> None:
    """Every row of XTOK_ROWS on every target and seed in the cross-tokenizer world, each run kept under
    OUT/TARGET/ROW-sSEED; one table of test bits per byte, then the done-when checks."""
    from xdistill.demo.lm_xtok_world import build_xtok_world
    from xdistill.pipeline.distill import distill

    world = build_xtok_world()
    out = Path(args.out)
    table: dict = {}
    transplant: dict = {}
    for seed in range(args.seeds):  # seed by seed, so an early stop still has every row
        for target in args.targets:
            for label, method, zoo, overrides in XTOK_ROWS:
                if args.rows and label not in args.rows:
                    continue
                slug = label.replace(" ", "-").replace(",", "").replace(":", "").replace("(", "").replace(")", "")
                folder = out / target / f"{slug}-s{seed}"
                path = folder / "metrics.json"
                if not path.is_file():
                    started = time.perf_counter()
                    config = distill_config(world, target, method, seed, folder, cache_dir=str(out / "cache"), **overrides)
                    if zoo == "control":
                        config.zoo = str(world.control_zoo)
                    distill(config)
                    print(f"{target} {label} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
                metrics = json.loads(path.read_text())
                table.setdefault(target, {}).setdefault(label, []).append(metrics["test"]["bits_per_byte"])
                for name, record in metrics.get("transplant", {}).items():
                    transplant.setdefault((target, name), record)
    labels = [row[0] for row in XTOK_ROWS if any(row[0] in t for t in table.values())]
    print(f"\n| target | {' | '.join(labels)} |\n|---|" + "---|" * len(labels))
    for target, rows in table.items():
        cells = [f"{statistics.mean(rows[l]):.4f} ± {statistics.stdev(rows[l]) if len(rows[l]) > 1 else 0:.4f}"
                 if l in rows else "" for l in labels]
        print(f"| {target} | {' | '.join(cells)} |")
    print("\n| target | weighted vs supervised | nearest vs supervised | below finetune (weighted, nearest) | "
          "alm below uld | kept of the control's gain |\n|---|---|---|---|---|---|")
    for target, rows in table.items():
        means = {label: statistics.mean(v) for label, v in rows.items()}
        if not {"supervised", "finetune", "nearest (alm)", "weighted (alm)"} <= set(means):
            continue
        gains = [1 - means[m] / means["supervised"] for m in ("weighted (alm)", "nearest (alm)")]
        below = [means[m] < means["finetune"] for m in ("weighted (alm)", "nearest (alm)")]
        alm_uld = means["nearest (alm)"] < means["nearest, uld"] if "nearest, uld" in means else None
        for kind in ("alone", "pure"):
            if {f"nearest, alm {kind}", f"nearest, uld {kind}"} <= set(means):
                alm_uld = f"{alm_uld}; {kind}: {means[f'nearest, alm {kind}'] < means[f'nearest, uld {kind}']}"
        control = means.get("control: nearest, same tokenizer")
        kept = ((means["supervised"] - means["nearest (alm)"]) / (means["supervised"] - control)
                if control is not None else float("nan"))
        print(f"| {target} | {gains[0]:+.1%} | {gains[1]:+.1%} | {below[0]}, {below[1]} | {alm_uld} | {kept:.0%} |")
    if transplant:
        print("\n| target | teacher | shared tokens | bits per byte on the train text: own tokenizer | transplanted |"
              "\n|---|---|---|---|---|")
        for (target, name), record in sorted(transplant.items()):
            print(f"| {target} | {name} | {record['shared_tokens']} | {record['bits_per_byte_before']:.4f} | "
                  f"{record['bits_per_byte_after']:.4f} |")
    Path(args.json).write_text(json.dumps(table, indent=2))


def trust(args) -> None:
    """finetune, nearest and weighted (anneal on, the default) and nearest with anneal=false on the probes
    where no teacher fits the text, each seed's run kept under OUT/TARGET/NAME-sSEED."""
    from xdistill.pipeline.distill import distill

    world = build_lm_world()
    out = Path(args.out)
    rows = ("finetune", "nearest", "weighted", "nearest anneal=false")
    print(f"| text | {' | '.join(rows)} |\n|---|" + "---|" * len(rows))
    for target in args.targets:
        cells = []
        for row in rows:
            method, *flags = row.split()
            values = []
            for seed in range(args.seeds):
                folder = out / target / f"{row.replace(' ', '-').replace('=', '-')}-s{seed}"
                if not (folder / "metrics.json").is_file():
                    extra = {"anneal": False} if flags else {}
                    distill(distill_config(world, target, method, seed, folder, cache_dir=str(out / "cache"), **extra))
                values.append(json.loads((folder / "metrics.json").read_text())["test"]["bits_per_byte"])
            cells.append(f"{statistics.mean(values):.4f} ± {statistics.stdev(values) if len(values) > 1 else 0:.4f}")
        print(f"| {target} | {' | '.join(cells)} |", flush=True)


def probes(args) -> None:
    from xdistill.pipeline.rank import run_rank
    from xdistill.select.config import RankConfig

    world = build_lm_world()
    print("| probe text | top teacher (its domain) | bits per byte of each teacher |\n|---|---|---|")
    for probe in PROBES:
        ranking, _ = run_rank(RankConfig(task=str(world.task(probe)), zoo=str(world.zoo), cache_dir=args.cache))
        ordered = ranking.ordered()
        scores = ", ".join(f"{t.name} {t.scores['bits_per_byte']:.3f}" for t in ordered)
        print(f"| {probe} | {ordered[0].name} ({ordered[0].domain}) | {scores} |")


def timing(args) -> None:
    from xdistill.kinds.language_modeling.task import write_lm_task
    from xdistill.pipeline.distill import distill

    world = build_lm_world()
    train, test = split_target(corpus("stdlib-tests"), args.train_bytes, 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        task = write_lm_task(Path(tmp) / "task", "stdlib-tests-200k", train, test)
        config = distill_config(world, "stdlib-tests", args.method, 0, Path(tmp) / "run", cache_dir=str(Path(tmp) / "cache"))
        config.task = str(task)
        started, cpu = time.perf_counter(), time.process_time()
        metrics = distill(config).metrics
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    n_bytes = sum(len(d.encode()) for d in train)
    print("| method | train text | epochs | whole run: wall (CPU) | training alone (wall) | test bits/byte |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.method} | {n_bytes / 1000:.0f} KB ({metrics['train_tokens']} tokens) | {config.epochs} | "
          f"{seconds:.0f} s ({cpu:.0f} s) | {metrics['train_seconds']:.0f} s | {metrics['test']['bits_per_byte']:.4f} |")
    print("(the whole run caches the three teachers on the new text, ranks them, trains, and scores the test text; "
          "one thread)")


def step_ratio(args) -> None:
    from xdistill.cache.extract import TeacherCache
    from xdistill.kinds import load_task
    from xdistill.kinds.language_modeling.data import token_stream, window_batches
    from xdistill.kinds.language_modeling.prepare import prepare_lm
    from xdistill.kinds.language_modeling.steps import StepContext, distill_step, next_token_step
    from xdistill.kinds.language_modeling.student import build_lm_student
    from xdistill.models.tokenizer import load_tokenizer
    from xdistill.select.config import SelectionConfig
    from xdistill.teachers import load_zoo

    torch.set_num_threads(1)
    if args.xtok:
        from xdistill.demo.lm_xtok_world import build_xtok_world
        from xdistill.kinds.language_modeling.cross_tokenizer import align_targets, cross_tokenizer_step

        world = build_xtok_world()
    else:
        world = build_lm_world()
    task = load_task(world.task("stdlib-tests"))
    cache_root = Path(args.cache) if args.cache else xdistill_home() / "cache"
    prepared = prepare_lm(task, load_zoo(world.zoo).teachers(), TeacherCache(cache_root), SelectionConfig())
    tokenizer = load_tokenizer(world.tokenizer)
    stream = token_stream(task.splits["train"].documents, tokenizer)
    top = prepared.teacher(prepared.ranking.top)
    targets = prepared.cache.load(top, task.splits["train"])
    kd_step, kd_name = distill_step, "cached KD step (forward KL, k=32) + cross-entropy"
    if args.xtok:  # the alignment is built here, once, as a run builds it before training
        built = time.perf_counter()
        targets = align_targets(stream, [targets], [top.name], [1.0], tokenizer, [top.tokenizer], "alm",
                                agreement=True)  # as a run with the defaults (agreement_kd) builds it
        print(f"alignment of {top.name}'s cached rows with the student's tokens: {time.perf_counter() - built:.2f} s "
              f"({targets.info['chunks']} chunks, {targets.info['student_tokens']} student tokens)")
        kd_step, kd_name = (cross_tokenizer_step,
                            f"cached cross-tokenizer step (alm + agreement_kd, teacher {top.name}) + cross-entropy")
    torch.manual_seed(0)
    student = build_lm_student("gpt", tokenizer, dict(STUDENT_KNOBS))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    batches = window_batches(stream, STUDENT_KNOBS["context"], 16, 0, 0)
    ctx = StepContext(targets=targets, gate=args.xtok)  # a cross-tokenizer run gates per chunk (anneal, the default)

    def run(step_fn, index):
        batch = batches(index)
        started = time.perf_counter()
        terms = step_fn(student, batch, ctx)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        return time.perf_counter() - started

    for i in range(3):  # warm-up
        run(next_token_step, i), run(kd_step, i)
    # Paired and interleaved: each KD step is timed right after a plain step on the same batch, so load from other
    # jobs falls on both alike; the figure is the median of the per-pair ratios.
    plain, kd = [], []
    for i in range(args.steps * args.repeats):
        plain.append(run(next_token_step, 10 + i))
        kd.append(run(kd_step, 10 + i))
    ratios = sorted(d / p for d, p in zip(kd, plain))
    quartiles = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
    print(f"| plain next-token step | {kd_name} | ratio (median of "
          f"{len(ratios)} paired steps) | interquartile range |\n|---|---|---|---|")
    print(f"| {statistics.median(plain) * 1000:.1f} ms | {statistics.median(kd) * 1000:.1f} ms | "
          f"{statistics.median(ratios):.3f} | {quartiles[0]:.3f}-{quartiles[1]:.3f} |")


def cache_table(args) -> None:
    from xdistill.kinds import load_task
    from xdistill.kinds.language_modeling.topk import TopKCache
    from xdistill.teachers import load_zoo

    world = build_lm_world()
    task = load_task(world.task(args.target))
    teachers = load_zoo(world.zoo).teachers()
    print("| teacher | k | bytes per token on disk | bytes per kept entry | reconstruction KL (nats/token) | "
          "teacher bits/byte |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for teacher in teachers:
            for k in args.k:
                info = TopKCache(Path(tmp) / f"k{k}", k=k, progress=False).ensure(teacher, task.splits["train"])
                per_token = info["bytes_on_disk"] / info["n"]
                print(f"| {teacher.name} | {k} | {per_token:.1f} | {per_token / k:.2f} | "
                      f"{info['reconstruction_kl']:.2e} | {info['bits_per_byte']:.4f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="", help="an existing LM world folder (default: build or reuse $XDISTILL_HOME's)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("methods")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default=str(xdistill_home() / "lm-bench-runs"))
    p.add_argument("--json", default="lm-bench.json")
    p = sub.add_parser("probes")
    p.add_argument("--cache", default="")
    p = sub.add_parser("trust")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--targets", nargs="+", default=["numpy-headers", "python-license"])
    p.add_argument("--out", default=str(xdistill_home() / "lm-bench-trust"))
    p = sub.add_parser("timing")
    p.add_argument("--train-bytes", type=int, default=200_000)
    p.add_argument("--method", default="nearest")
    p = sub.add_parser("step-ratio")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cache", default="")
    p.add_argument("--xtok", action="store_true", help="the cross-tokenizer world and step (alm)")
    p = sub.add_parser("xtok")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--targets", nargs="+", default=list(TARGETS))
    p.add_argument("--rows", nargs="*", default=[], help="only the rows of these labels (default: all)")
    p.add_argument("--out", default=str(xdistill_home() / "lm-bench-xtok"))
    p.add_argument("--json", default="lm-bench-xtok.json")
    p = sub.add_parser("cache")
    p.add_argument("--k", type=int, nargs="+", default=[8, 32, 128])
    p.add_argument("--target", default="stdlib-tests")
    args = parser.parse_args()
    if args.world:
        WORLD.append(Path(args.world))
    {"methods": methods, "trust": trust, "probes": probes, "timing": timing, "step-ratio": step_ratio, "cache": cache_table,
     "xtok": xtok}[args.command](args)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
