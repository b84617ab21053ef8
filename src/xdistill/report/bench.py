"""Bench results (``results.json``) -> summary, Markdown table and HTML report.

Every number shown is computed here from the runs recorded in the results:
per target and method the mean ± standard deviation over seeds (sample std,
ddof=1; 0 for a single seed) of the last epoch's test metrics, the average
over targets (per seed, then mean ± std over seeds) and the gaps between the
headline method and the baselines (both named in the results by the bench,
from the method registry).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xdistill.report import plots
from xdistill.report.html import HtmlPage, format_cell, mean_std_cell

TEST_METRICS = ("accuracy", "macro_f1", "ece", "nll")
AVERAGE = "average"
REPORT_NAME = "report.html"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def runs_by_target(results: dict) -> dict[str, dict[str, list[dict]]]:
    """target -> method -> runs sorted by seed, targets and methods in the results' order."""
    table: dict[str, dict[str, list[dict]]] = {t: {} for t in results.get("targets", [])}
    for run in results["runs"]:
        table.setdefault(run["task"], {}).setdefault(run["method"], []).append(run)
    order = {m: i for i, m in enumerate(results.get("methods", []))}
    for target, methods in table.items():
        table[target] = {m: sorted(runs, key=lambda r: r["seed"])
                         for m, runs in sorted(methods.items(), key=lambda kv: order.get(kv[0], len(order)))}
    return table


def methods_of(results: dict) -> list[str]:
    seen = dict.fromkeys(results.get("methods", []))
    seen.update(dict.fromkeys(r["method"] for r in results["runs"]))
    return [m for m in seen if any(r["method"] == m for r in results["runs"])]


def summarise(results: dict) -> dict[str, Any]:
    """Means, stds, averages over targets and gaps, all from ``results["runs"]``."""
    by_target = runs_by_target(results)
    per_target: dict[str, dict[str, dict]] = {}
    for target, methods in by_target.items():
        per_target[target] = {}
        for method, runs in methods.items():
            row: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
            for metric in TEST_METRICS:
                row[metric] = mean_std([r["test"][metric] for r in runs])
            for key in ("params", "flops", "cpu_latency_ms_per_sample"):
                row[key] = _mean_number([r["cost"][key] for r in runs])
            per_target[target][method] = row
    targets = [t for t in by_target if by_target[t]]
    average: dict[str, dict] = {}
    for method in methods_of(results):
        if not targets or any(method not in by_target[t] for t in targets):
            continue
        seeds = sorted(set.intersection(*[{r["seed"] for r in by_target[t][method]} for t in targets]))
        if not seeds:
            continue
        per_seed = [np.mean([next(r["test"]["accuracy"] for r in by_target[t][method] if r["seed"] == s)
                             for t in targets]) for s in seeds]
        average[method] = {"seeds": seeds, "accuracy": mean_std(per_seed)}
    spec = gap_spec(results)
    gaps: dict[str, dict[str, float | None]] = {}
    for target in targets:
        means = {m: row["accuracy"][0] for m, row in per_target[target].items()}
        gaps[target] = _gaps(means, spec, results)
    if targets:
        gaps[AVERAGE] = {name: _mean_or_none([gaps[t][name] for t in targets]) for name in spec}
    return {"metric": "accuracy", "epoch_reported": "last", "per_target": per_target, "average": average, "gaps": gaps,
            "gap_columns": list(spec)}


def gap_spec(results: dict) -> dict[str, str | None]:
    """Gap column -> the baseline it subtracts (None: the best baseline), for the results' headline method."""
    head, baselines = results.get("headline_method"), results.get("baselines") or []
    if not head:
        return {}
    return {f"{head} − best baseline": None, **{f"{head} − {b}": b for b in baselines}}


def _mean_number(values: list) -> int | float:
    """The mean, kept an int when every value is the same int (a student's params, FLOPs)."""
    if all(isinstance(v, int) for v in values) and len(set(values)) == 1:
        return values[0]
    return float(np.mean(values))


def _gaps(means: dict[str, float], spec: dict[str, str | None], results: dict) -> dict[str, float | None]:
    head = results.get("headline_method")
    out: dict[str, float | None] = {}
    for name, baseline in spec.items():
        if head not in means:
            out[name] = None
        elif baseline is None:
            present = [means[b] for b in results.get("baselines") or [] if b in means]
            out[name] = means[head] - max(present) if present else None
        else:
            out[name] = means[head] - means[baseline] if baseline in means else None
    return out


def _mean_or_none(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def _seed_note(results: dict) -> str:
    seeds = sorted({r["seed"] for r in results["runs"]})
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def accuracy_rows(results: dict, summary: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the headline table: method x (targets, average), 'mean ± std'."""
    targets = list(summary["per_target"])
    columns = ["method", *targets] + ([AVERAGE] if len(targets) > 1 else [])
    rows = []
    for method in methods_of(results):
        row = [method]
        for target in targets:
            cell = summary["per_target"][target].get(method)
            row.append(mean_std_cell(*cell["accuracy"]) if cell else "-")
        if len(targets) > 1:
            cell = summary["average"].get(method)
            row.append(mean_std_cell(*cell["accuracy"]) if cell else "-")
        rows.append(row)
    return columns, rows


def gap_rows(summary: dict) -> tuple[list[str], list[list[Any]]]:
    names = summary.get("gap_columns") or []
    columns = ["target", *names]
    rows = [[target, *[gaps.get(name) for name in names]] for target, gaps in summary["gaps"].items()
            if any(v is not None for v in gaps.values())]
    return columns, rows


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(v if isinstance(v, str) else format_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_tables(results: dict, summary: dict | None = None) -> str:
    """The bench's tables in Markdown: accuracy per target and method, then the gaps."""
    summary = summary or summarise(results)
    text = [f"### Test accuracy at the last epoch (mean ± std over {_seed_note(results)}; "
            f"{results.get('epochs', '?')} epochs)", ""]
    text += [_markdown(*accuracy_rows(results, summary)), ""]
    if len(summary["per_target"]) > 1:
        text += ["The average is taken over targets for each seed, then mean ± std over seeds.", ""]
    columns, rows = gap_rows(summary)
    if rows:
        text += ["### Gaps in mean test accuracy (last epoch)", "",
                 "Best baseline: the best of " + ", ".join(results.get("baselines") or []) + " present on each target; "
                 "the average row is the mean of the per-target gaps.", "", _markdown(columns, rows), ""]
    return "\n".join(text)


def _mean_curve(runs: list[dict]) -> list[dict]:
    """Per epoch, the mean over seeds of the total training loss and the test accuracy."""
    epochs = min(len(r.get("curves") or []) for r in runs)
    out = []
    for i in range(epochs):
        records = [r["curves"][i] for r in runs]
        out.append({"epoch": records[0]["epoch"],
                    "train": {"loss": float(np.mean([rec["train"].get("loss", math.nan) for rec in records]))},
                    "test": {"accuracy": float(np.mean([(rec.get("test") or {}).get("accuracy", math.nan)
                                                        for rec in records]))}})
    return out


def teacher_weight_rows(results: dict) -> list[dict]:
    """target, teacher, weight and bridged test accuracy from each target's first run of the headline method."""
    rows = []
    for target, methods in runs_by_target(results).items():
        runs = methods.get(results.get("headline_method")) or []
        if not runs or not runs[0].get("teachers"):
            continue
        for name, info in runs[0]["teachers"].items():
            rows.append({"target": target, "teacher": name, "weight": info.get("weight"),
                         "bridged test accuracy": info.get("test_accuracy"), "seed": runs[0]["seed"]})
    return rows


def pool_weight_rows(results: dict) -> list[dict]:
    """target, method, seed and the pool weights of every run whose pool looked polluted or is marked."""
    rows = []
    for run in results["runs"]:
        pool = run.get("pool_weights") or {}
        if pool.get("polluted") or "mean_weight_outside" in pool:
            rows.append({"target": run["task"], "method": run["method"], "seed": run["seed"],
                         "polluted": pool.get("polluted"), "mean weight": pool.get("mean_weight"),
                         "in-class": pool.get("mean_weight_in_class"), "outside": pool.get("mean_weight_outside")})
    return rows


def _setup_section(page: HtmlPage, results: dict, summary: dict, methods: list[str]) -> None:
    """What was run: the suite, targets, methods (as their declarations describe them), seeds and budget."""
    page.heading("Setup")
    page.key_values({"suite": results.get("suite"), "targets": ", ".join(summary["per_target"]),
                     "methods": ", ".join(methods), "seeds": _seed_note(results), "epochs": results.get("epochs"),
                     "epoch reported": "last", "runs": len(results["runs"]), "xdistill": results.get("xdistill")},
                    table_id="setup")
    page.paragraph("Every figure is the last epoch's test metric; ± is the sample standard deviation over seeds.",
                   note=True)
    described = results.get("method_descriptions") or {}
    if described:
        page.table(["method", "what it does", "teachers", "unlabeled data", "generic init", "baseline"],
                   [[m, d["summary"], "yes" if d["teachers"] else "-", "yes" if d["unlabeled"] else "-", d["init"],
                     "yes" if d["baseline"] else "-"] for m, d in described.items()],
                   caption="The methods, as their declarations describe them", table_id="methods")


def write_bench_report(out_dir: Path, results: dict, summary: dict | None = None) -> Path:
    """Write ``out_dir/report.html`` for a bench; return its path."""
    summary = summary or summarise(results)
    by_target = runs_by_target(results)
    methods = methods_of(results)
    page = HtmlPage(f"xdistill bench: {results.get('suite', '')}")
    _setup_section(page, results, summary, methods)

    page.heading("Accuracy per target and method")
    page.table(*accuracy_rows(results, summary), caption="Test accuracy (mean ± std over seeds)", table_id="accuracy")
    bars = {t: {m: tuple(row["accuracy"]) for m, row in rows.items()} for t, rows in summary["per_target"].items()}
    page.image(plots.accuracy_bars(bars, methods), "test accuracy per target and method")
    columns, rows = gap_rows(summary)
    if rows:
        page.table(columns, rows, caption="Gaps in mean test accuracy; the average row is the mean of the "
                   "per-target gaps", table_id="gaps")
    details = [[t, m, len(row["seeds"]), *[mean_std_cell(*row[k]) for k in TEST_METRICS],
                row["params"], row["flops"], row["cpu_latency_ms_per_sample"]]
               for t, rows_ in summary["per_target"].items() for m, row in rows_.items()]
    page.table(["target", "method", "seeds", "accuracy", "macro F1", "ECE", "NLL", "params", "FLOPs",
                "CPU ms/sample"], details, caption="Test metrics (mean ± std over seeds) and student cost (mean)",
               table_id="details")

    page.heading("Accuracy against student cost")
    points = [{"label": r["method"], "accuracy": r["test"]["accuracy"], "params": r["cost"]["params"],
               "latency_ms": r["cost"]["cpu_latency_ms_per_sample"]} for r in results["runs"]]
    page.image(plots.accuracy_vs_cost(points), "test accuracy against parameters and CPU latency")

    weight_rows = teacher_weight_rows(results)
    if weight_rows:
        page.heading("Teacher weights per target")
        page.table_from_dicts(weight_rows, caption=f"Teachers mixed by '{results.get('headline_method')}' and their bridged test accuracy",
                              table_id="teacher-weights")
        weights: dict[str, dict[str, float]] = {}
        for row in weight_rows:
            weights.setdefault(row["target"], {})[row["teacher"]] = row["weight"] or 0.0
        page.image(plots.teacher_weights(weights), "teacher weights per target")

    pool_rows = pool_weight_rows(results)
    if pool_rows:
        page.heading("Unlabeled pool weights")
        page.table_from_dicts(pool_rows, caption="Mean weight teacher methods gave the unlabeled pool's samples, by "
                              "side where the task marks them (unlabeled-outside.npy; never read by training)",
                              table_id="pool-weights")

    validation = results.get("validation") or {}
    if validation:
        page.heading("Selection metrics against distilled accuracy")
        for target, found in validation.items():
            quality = found["metrics"]
            page.table(["metric", "kendall tau", "spearman rho", "top-1 regret", "top-1 teacher"],
                       [[m, q.get("kendall_tau"), q.get("spearman_rho"), q.get("top1_regret"), q.get("top1")]
                        for m, q in quality.items()],
                       caption=f"{target}: how well each metric's score predicts the accuracy of a student "
                               f"distilled from each teacher alone ({found.get('epochs')} epochs)",
                       table_id=f"validation-{target}")
            ranking = (results.get("rankings") or {}).get(target) or {}
            scores = {m: {t["name"]: t["scores"].get(m) for t in ranking.get("teachers", [])} for m in quality}
            page.image(plots.metric_scatter(scores, found["accuracy"], quality, target), f"{target}: score vs accuracy")

    page.heading("Learning curves")
    for target, methods_runs in by_target.items():
        curves = {m: _mean_curve(runs) for m, runs in methods_runs.items() if all(r.get("curves") for r in runs)}
        if curves:
            page.image(plots.learning_curves(curves, f"{target} (mean over seeds)"), f"{target}: learning curves")
    return page.write(Path(out_dir) / REPORT_NAME)
