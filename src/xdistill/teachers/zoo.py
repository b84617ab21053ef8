"""A zoo: the YAML list of candidate teachers, validated up front.

    teachers:
      - name: cnn-inverted
        kind: torchscript          # a registered teacher kind
        path: teachers/cnn-inverted.pt
        input: {size: [28, 28], channels: 1, mean: [0.5], std: [0.5]}
        labels: ["0", "1", ...]
        domain: inverted MNIST
        architecture: cnn

Keys other than the shared ones (name, kind, labels, input, domain,
architecture, modality) belong to the kind and are checked by its options
dataclass. Paths are relative to the YAML file.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdistill.config import from_dict, load_yaml
from xdistill.errors import ConfigError, XDistillError, join_problems
from xdistill.io import unusable_path
from xdistill.teachers.base import TEACHER_KINDS, InputSpec, Teacher, TeacherSpec, create_teacher

_SHARED_KEYS = ("name", "kind", "labels", "input", "domain", "architecture", "modality")
_MODALITIES = ("image", "features", "text")


@dataclass
class Zoo:
    """Validated zoo entries, in file order."""

    specs: list[TeacherSpec]
    path: Path | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def teachers(self, device: str = "cpu") -> list[Teacher]:
        """Build (without loading) every teacher, on ``device`` where the kind runs models."""
        built = []
        for spec in self.specs:
            teacher = create_teacher(spec)
            if hasattr(teacher, "device"):
                teacher.device = device
            built.append(teacher)
        return built

    def select(self, names: list[str] | None) -> "Zoo":
        if not names:
            return self
        known = {s.name: s for s in self.specs}
        problems = []
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, list(known), n=3)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                problems.append(f"Unknown teacher '{name}'.{hint} Available: {', '.join(known)}.")
        if problems:
            raise XDistillError(join_problems(problems, "Invalid teacher selection"))
        return Zoo([known[n] for n in names], self.path)


def _entry_problems(index: int, entry: Any, base_dir: Path) -> tuple[TeacherSpec | None, list[str]]:
    where = f"teachers[{index}]"
    if not isinstance(entry, Mapping):
        return None, [f"{where} must be a mapping with at least 'name' and 'kind'. Got {entry!r}."]
    name = entry.get("name")
    if isinstance(name, str) and name:
        where = f"teacher '{name}'"
    problems: list[str] = []
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where} needs a non-empty string 'name'. Got {name!r}.")
    kind_name = entry.get("kind")
    if kind_name is None:
        problems.append(f"{where} needs a 'kind' ({', '.join(TEACHER_KINDS.names())}).")
        return None, problems
    if not isinstance(kind_name, str) or kind_name not in TEACHER_KINDS:
        problems.append(f"{where}: {TEACHER_KINDS.unknown_message(str(kind_name))}")
        return None, problems
    kind = TEACHER_KINDS.get(kind_name)
    option_fields = [f.name for f in dataclasses.fields(kind.options)]
    option_data = {}
    for key, value in entry.items():
        if key in _SHARED_KEYS:
            continue
        if key in option_fields:
            option_data[key] = value
        else:
            valid = list(_SHARED_KEYS) + option_fields
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            problems.append(f"{where}: unknown key '{key}' for kind '{kind_name}'.{hint} Valid keys: {', '.join(valid)}.")
    options = None
    try:
        options = from_dict(kind.options, option_data, f"options of {where}")
    except ConfigError as exc:
        problems.append(str(exc))
    input_spec = InputSpec()
    if "input" in entry:
        try:
            input_spec = from_dict(InputSpec, entry["input"], f"'input' of {where}")
        except ConfigError as exc:
            problems.append(str(exc))
    labels = entry.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not labels or not all(isinstance(l, (str, int)) for l in labels):
            problems.append(f"{where}: 'labels' must be a non-empty list of label names. Got {labels!r}.")
            labels = None
        else:
            labels = [str(l) for l in labels]
            if len(set(labels)) != len(labels):
                problems.append(f"{where}: 'labels' repeats a name: {labels}.")
    modality = entry.get("modality", kind.modalities[0])
    if modality not in _MODALITIES:
        problems.append(f"{where}: 'modality' must be one of {', '.join(_MODALITIES)}. Got {modality!r}.")
    elif modality not in kind.modalities:
        problems.append(f"{where}: kind '{kind_name}' supports modality {', '.join(kind.modalities)}, not {modality!r}.")
    for key in ("domain", "architecture"):
        if key in entry and not isinstance(entry[key], str):
            problems.append(f"{where}: '{key}' must be a string. Got {entry[key]!r}.")
    if options is not None and hasattr(options, "path_problems"):  # a kind whose paths are not plain files
        problems += [f"{where}: {p}" for p in options.path_problems(base_dir)]
    elif options is not None:
        for key in ("path", "weights", "checkpoint"):
            value = getattr(options, key, None)
            if not (isinstance(value, str) and value):
                continue
            reason = unusable_path(base_dir / value)
            if reason:
                problems.append(f"{where}: {key} {str(base_dir / value)!r} cannot be read ({reason}).")
            elif not (base_dir / value).exists():
                problems.append(f"{where}: {key} '{base_dir / value}' does not exist. Paths are relative to the zoo file.")
    if options is not None and modality in kind.modalities and hasattr(options, "modality_problems"):
        problems += [f"{where}: {p}" for p in options.modality_problems(modality, set(entry), base_dir)]
    if problems:
        return None, problems
    spec = TeacherSpec(
        name=name, kind=kind_name, labels=labels, input=input_spec, domain=entry.get("domain", ""),
        architecture=entry.get("architecture", ""), modality=modality, options=options, base_dir=base_dir,
    )
    return spec, []


def parse_zoo(raw: Any, base_dir: Path, source: str = "zoo") -> Zoo:
    if not isinstance(raw, Mapping) or "teachers" not in raw:
        raise ConfigError(f"The {source} must be a mapping with a 'teachers' list. Got {type(raw).__name__}.")
    unknown = [k for k in raw if k != "teachers"]
    problems = [f"Unknown top-level key '{k}'. Valid keys: teachers." for k in unknown]
    entries = raw["teachers"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"'teachers' in the {source} must be a non-empty list. Got {entries!r}.")
    specs = []
    for i, entry in enumerate(entries):
        spec, found = _entry_problems(i, entry, base_dir)
        problems += found
        if spec is not None:
            specs.append(spec)
    names = [s.name for s in specs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"Teacher name '{dup}' appears more than once. Give each teacher a unique name.")
    if problems:
        raise ConfigError(join_problems(problems, f"Invalid {source}"))
    return Zoo(specs)


def load_zoo(path: str | Path) -> Zoo:
    """Read and validate a zoo YAML file, reporting every problem at once."""
    path = Path(path)
    raw = load_yaml(path, "zoo file")
    zoo = parse_zoo(raw, path.parent.resolve(), f"zoo file '{path}'")
    zoo.path = path
    return zoo


def check_modalities(zoo_teachers: list[Teacher], task_input: str) -> None:
    """Refuse teachers whose modality does not match the task's input."""
    bad = [t for t in zoo_teachers if t.modality != task_input]
    if bad:
        listed = ", ".join(f"'{t.name}' ({t.modality})" for t in bad)
        raise XDistillError(
            f"Teachers {listed} take a different input than the task ('{task_input}'). "
            "Remove them from the zoo or pick them out with --teachers."
        )
