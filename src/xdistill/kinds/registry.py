"""Task kinds: one registry entry per kind of target task.

A kind owns what only it knows: its ``task.yaml`` keys and split names, the
teacher outputs it needs (a record of named tensors that the cache stores as
they are), its selection metrics, its methods with their defaults, the
students and losses that fit, and how a student is evaluated. The verbs
(``cache``, ``rank``, ``distill``, ``eval``) read ``kind:`` from ``task.yaml``
(``classification`` when absent) and dispatch through :data:`KINDS`, never
through a chain of ``if kind == ...``.

    @dataclass(frozen=True)
    class TaskKind: ...

    KINDS.register("my-kind", TaskKind(...))   # in the kind's own package
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdistill.config import load_yaml
from xdistill.errors import XDistillError
from xdistill.registry import Registry

DEFAULT_KIND = "classification"


@dataclass(frozen=True)
class TaskKind:
    """Everything the verbs need to know about one kind of target task.

    load(folder) -> task: read and validate a task folder of this kind (every problem at once).
    prepare(task, teachers, cache, selection, views, log) -> teachers cached and ranked: an object whose
        ``ranking`` has ``to_json()``, ``ordered()`` and ``notes`` (``rank`` prints it, ``distill`` uses it).
    distill(config, task, given, runtime) -> :class:`xdistill.train.run.DistillResult`; writes the run folder.
    evaluate(run_dir, task, split) -> ``metrics.json``-style scores under the kind's headline key.
    config_problems(config, task, teachers_given) -> every problem with a distill config for this kind.
    resolve(config, task) -> the config with the kind's task-dependent defaults filled in (what a run saves).
    A task of the kind has ``name``, ``kind``, ``modality`` (what its teachers read) and ``splits``
    (name -> split with ``name``, ``fingerprint``, ``x`` and ``len``).
    """

    summary: str  # one line for help and docs
    splits: tuple[str, ...]  # split names of task.yaml
    teacher_outputs: dict[str, str]  # named tensors a teacher returns, with their shapes
    headline: str  # the metrics.json key that summarises a run
    methods: Registry  # the kind's training methods (xdistill.train.method.Method)
    metrics: Registry  # the kind's selection metrics
    load: Callable[[Path], Any]
    prepare: Callable[..., Any]
    distill: Callable[..., Any]
    evaluate: Callable[[Path, Any, str], dict]
    config_problems: Callable[..., list[str]]
    resolve: Callable[[Any, Any], Any] = lambda config, task: config
    students: Callable[[], list[str]] = list  # student families that fit the kind
    losses: Callable[[], list[str]] = list  # losses its methods accept
    lower_is_better: bool = False  # the headline's direction (reports sort and compare by it)
    # Verbs a kind may take over; None runs the generic implementation (the classification one).
    cache: Callable[..., Any] | None = None  # (task, teachers, CacheConfig, log) -> summary dict
    validate: Callable[..., Any] | None = None  # (task, prepared, RankConfig, log) -> validation dict
    pretrain: Callable[..., Any] | None = None  # (PretrainConfig, runtime) -> path written
    pretrain_problems: Callable[..., list[str]] | None = None  # (PretrainConfig) -> problems before pretraining
    generate: Callable[..., Any] | None = None  # (source, **the kind's generate options) -> samples
    owns: Callable[[Path], bool] | None = None  # a folder of the kind that is no run (a teacher) for eval and generate


KINDS: Registry[TaskKind] = Registry("task kind")


def task_yaml(folder: str | Path) -> Path:
    path = Path(folder)
    return path if path.suffix in (".yaml", ".yml") else path / "task.yaml"


def kind_name(folder: str | Path) -> str:
    """The ``kind:`` a task folder declares (classification when absent), read without loading its splits."""
    path = task_yaml(folder)
    if not path.is_file():
        return DEFAULT_KIND  # the kind's loader reports the missing file with its own advice
    raw = load_yaml(path, "task file")
    kind = raw.get("kind", DEFAULT_KIND) if isinstance(raw, dict) else DEFAULT_KIND
    if not isinstance(kind, str) or kind not in KINDS:
        raise XDistillError(f"task.yaml '{path}': {KINDS.unknown_message(str(kind))}")
    return kind


def kind_of(task: Any) -> TaskKind:
    """The registered kind of a loaded task."""
    return KINDS.get(getattr(task, "kind", DEFAULT_KIND))


def load_task(folder: str | Path) -> Any:
    """Load a task folder of any registered kind."""
    return KINDS.get(kind_name(folder)).load(Path(folder))


def methods_markdown(kinds: list[str] | None = None) -> str:
    """The table of the task kinds' methods (default: every registered kind), from the registries;
    docs/methods.md holds the built-in kinds' table."""
    rows = ["| kind | method | what it does | teachers | unlabeled data | generic init | baseline |",
            "|---|---|---|---|---|---|---|"]
    for kind_name_ in kinds if kinds is not None else KINDS.names():
        kind = KINDS.get(kind_name_)
        for name, method in kind.methods.items():
            info = method.describe()
            options = f" (options: {', '.join(info['options'])})" if info["options"] else ""
            rows.append(f"| {kind_name_} | `{name}` | {info['summary']}{options} | {'yes' if info['teachers'] else '-'} | "
                        f"{'yes' if info['unlabeled'] else '-'} | {info['init']} | {'yes' if info['baseline'] else '-'} |")
    for kind_name_ in kinds if kinds is not None else KINDS.names():
        kind = KINDS.get(kind_name_)
        rows.append("")
        rows.append(f"{kind_name_}: students {', '.join(f'`{s}`' for s in kind.students())}; distillation losses "
                    f"{', '.join(f'`{s}`' for s in kind.losses())}; headline metric `{kind.headline}`.")
    return "\n".join(rows) + "\n"
