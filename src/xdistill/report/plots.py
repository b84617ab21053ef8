"""Report figures as PNG bytes (matplotlib, Agg backend, nothing shown on screen).

Each function takes plain numbers already taken from a run's ``metrics.json``
or a bench's ``results.json`` and returns the figure encoded as PNG, ready to
be embedded in an HTML report.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

DPI = 96


def figure_png(fig) -> bytes:
    """Encode a figure as PNG and free it.

    Margins are set by hand (see ``_grid``): a layout engine would double the
    drawing time, and a bench report draws a figure per run.
    """
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _grid(panels: int, columns: int = 3, size: tuple[float, float] = (4.2, 3.2), left: float = 0.8):
    """A figure of ``panels`` axes, ``size`` inches each, ``left`` inches of margin for tick labels."""
    columns = max(1, min(columns, panels))
    rows = math.ceil(panels / columns)
    width, height = size[0] * columns, size[1] * rows + 0.5
    fig, axes = plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - 0.2 / width, bottom=0.6 / height, top=1 - 0.6 / height,
                        wspace=0.25 + left / size[0], hspace=0.9 / size[1])
    flat = axes.ravel()
    for ax in flat[panels:]:
        ax.set_visible(False)
    return fig, flat[:panels]


def learning_curves(runs: Mapping[str, Sequence[dict]], title: str = "", metric: str = "accuracy") -> bytes:
    """Training loss terms and a test metric (``metric``, accuracy by default) per epoch.

    runs: label -> curves, each curve a list of epoch records
    ``{"epoch": int, "train": {term: float}, "test": {"accuracy": float, ...}}``
    (the ``curves`` of a run's metrics). With one run every loss term is drawn;
    with several, only each run's total ``loss``.
    """
    fig, (loss_ax, acc_ax) = _grid(2, 2, (5.0, 3.4))
    single = len(runs) == 1
    for label, curve in runs.items():
        epochs = [r["epoch"] for r in curve]
        terms = sorted({k for r in curve for k in r.get("train", {})}) if single else ["loss"]
        for term in terms:
            values = [r.get("train", {}).get(term, np.nan) for r in curve]
            loss_ax.plot(epochs, values, marker="o", markersize=3, label=term if single else label)
        accuracy = [(r.get("test") or {}).get(metric, np.nan) for r in curve]
        acc_ax.plot(epochs, accuracy, marker="o", markersize=3, label=label)
    loss_ax.set(xlabel="epoch", ylabel="training loss (mean over steps)",
                title="training loss terms" if single else "training loss")
    shown = metric.replace("_", " ")
    acc_ax.set(xlabel="epoch", ylabel=f"test {shown}", title=f"test {shown}")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return figure_png(fig)


def accuracy_bars(table: Mapping[str, Mapping[str, tuple[float, float]]], methods: Sequence[str],
                  title: str = "Test accuracy per target (mean ± std over seeds)") -> bytes:
    """Grouped bars: one group per target, one bar per method, error bars = std over seeds.

    table: target -> method -> (mean, std).
    """
    targets = list(table)
    fig, (ax,) = _grid(1, 1, (max(6.0, 1.2 * len(targets) * max(1, len(methods)) * 0.45 + 2), 3.8))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(targets))
    for i, method in enumerate(methods):
        means = [table[t].get(method, (np.nan, 0.0))[0] for t in targets]
        stds = [table[t].get(method, (np.nan, 0.0))[1] for t in targets]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=method)
    ax.set_xticks(x, targets)
    ax.set(ylabel="test accuracy", title=title, ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, max(1, len(methods))))
    return figure_png(fig)


def accuracy_vs_cost(points: Sequence[dict], title: str = "Accuracy against student cost") -> bytes:
    """Two panels: accuracy against parameters and against CPU latency per sample.

    points: dicts with ``label``, ``accuracy``, ``params`` and ``latency_ms``.
    """
    fig, (params_ax, latency_ax) = _grid(2, 2, (5.0, 3.6))
    labels = sorted({p["label"] for p in points})
    for label in labels:
        mine = [p for p in points if p["label"] == label]
        params_ax.scatter([p["params"] for p in mine], [p["accuracy"] for p in mine], label=label, s=18)
        latency_ax.scatter([p["latency_ms"] for p in mine], [p["accuracy"] for p in mine], label=label, s=18)
    params_ax.set(xlabel="student parameters", ylabel="test accuracy")
    latency_ax.set(xlabel="CPU latency per sample (ms)", ylabel="test accuracy")
    if all(p["params"] > 0 for p in points) and points:
        params_ax.set_xscale("log")
    for ax in (params_ax, latency_ax):
        ax.grid(alpha=0.3)
        if labels:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return figure_png(fig)


def metric_scatter(scores: Mapping[str, Mapping[str, float | None]], accuracy: Mapping[str, float],
                   quality: Mapping[str, dict] | None = None, title: str = "") -> bytes:
    """One panel per selection metric: each teacher's score against the accuracy of
    the student distilled from it alone.

    scores: metric -> teacher -> score (None where undefined); accuracy: teacher -> accuracy;
    quality: metric -> ``selection_quality`` result (its Kendall tau goes in the panel title).
    """
    metrics = list(scores)
    fig, axes = _grid(max(1, len(metrics)), 3, (3.6, 3.0))
    for ax, metric in zip(axes, metrics):
        names = [n for n, s in scores[metric].items() if s is not None and math.isfinite(s) and n in accuracy]
        ax.scatter([scores[metric][n] for n in names], [accuracy[n] for n in names], s=18)
        for n in names:
            ax.annotate(n, (scores[metric][n], accuracy[n]), fontsize=6, alpha=0.7)
        tau = ((quality or {}).get(metric) or {}).get("kendall_tau")
        ax.set_title(metric + (f" (tau {tau:.2f})" if tau is not None else ""), fontsize=9)
        ax.set_xlabel("score", fontsize=8)
        ax.set_ylabel("distilled accuracy", fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return figure_png(fig)


def teacher_weights(weights: Mapping[str, Mapping[str, float]],
                    title: str = "Teacher weights per target") -> bytes:
    """One panel per target: each teacher's similarity weight in 'weighted'.

    weights: target -> teacher -> weight.
    """
    targets = list(weights)
    longest = max((len(n) for w in weights.values() for n in w), default=4)
    fig, axes = _grid(max(1, len(targets)), 3, (4.2, 3.2), left=0.3 + 0.065 * longest)
    for ax, target in zip(axes, targets):
        names = sorted(weights[target], key=lambda n: -weights[target][n])
        ax.barh(names[::-1], [weights[target][n] for n in names[::-1]])
        ax.set(xlabel="weight", title=target, xlim=(0, 1))
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title)
    return figure_png(fig)


def per_class_bars(runs: Mapping[str, Sequence[float | None]], title: str = "Test accuracy per class") -> bytes:
    """Grouped bars: one group per class, one bar per run, the legend to the right.

    runs: label -> per-class accuracy (the ``test.per_class_accuracy`` of a run's
    metrics; None where the test split has no sample of that class).
    """
    labels = list(runs)
    classes = max((len(v) for v in runs.values()), default=0)
    legend_width = 0.3 + 0.065 * max((len(label) for label in labels), default=0)
    plot_width = min(9.0, max(4.5, 0.25 * classes * max(1, len(labels)) + 1.5))
    fig, (ax,) = _grid(1, 1, (plot_width + legend_width, 3.6))
    fig.subplots_adjust(right=plot_width / (plot_width + legend_width))
    width = 0.8 / max(1, len(labels))
    x = np.arange(classes)
    for i, label in enumerate(labels):
        values = [np.nan if v is None else v for v in runs[label]] + [np.nan] * (classes - len(runs[label]))
        ax.bar(x + (i - (len(labels) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, [str(c) for c in range(classes)])
    ax.set(xlabel="class", ylabel="test accuracy", title=title, ylim=(0, 1))
    ax.grid(axis="y", alpha=0.3)
    if labels:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return figure_png(fig)


def calibration_bars(runs: Mapping[str, Mapping[str, float | None]],
                     title: str = "Calibration on the test split (lower is better)") -> bytes:
    """Two panels of bars, one bar per run: expected calibration error and negative log-likelihood.

    runs: label -> ``{"ece": float, "nll": float}``.
    """
    labels = list(runs)
    fig, axes = _grid(2, 2, (5.0, 3.4), left=0.6)
    for ax, key, name in zip(axes, ("ece", "nll"), ("ECE", "NLL (nats)")):
        values = [np.nan if runs[label].get(key) is None else runs[label][key] for label in labels]
        ax.bar(np.arange(len(labels)), values, color=[f"C{i % 10}" for i in range(len(labels))])
        ax.set_xticks(np.arange(len(labels)), labels, rotation=20, ha="right", fontsize=7)
        ax.set(ylabel=name, title=name)
        ax.grid(axis="y", alpha=0.3)
    fig.subplots_adjust(bottom=0.3)
    fig.suptitle(title)
    return figure_png(fig)


def reliability_diagram(runs: Mapping[str, Mapping[str, Sequence[float]]],
                        title: str = "Reliability on the test split") -> bytes:
    """Accuracy against mean confidence per confidence bin, one line per run, beside the diagonal.

    runs: label -> ``{"confidence": [B], "accuracy": [B]}``, the non-empty bins of a run's
    ``test.reliability``.
    """
    fig, (ax,) = _grid(1, 1, (5.0, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
    for label, bins in runs.items():
        ax.plot(bins["confidence"], bins["accuracy"], marker="o", markersize=3, label=label)
    ax.set(xlabel="mean confidence in bin", ylabel="accuracy in bin", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return figure_png(fig)


def quality_against_cost(lines: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str) -> bytes:
    """One line per model through its (cost, quality) points, cost on a log axis (image generators: Fréchet
    distance against network evaluations per sample)."""
    fig, (ax,) = _grid(1, size=(5.5, 3.6))
    for label, points in lines.items():
        points = sorted(points)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return figure_png(fig)
