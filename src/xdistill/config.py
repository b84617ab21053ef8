"""Typed configuration: dataclasses hold every default; YAML files and
``key=value`` overrides only change fields.

Unknown keys are errors that list the valid ones; values are converted to the
field's declared type or rejected with a clear message. YAML is read with
``yaml.safe_load`` (no executable tags).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from xdistill.errors import ConfigError, join_problems
from xdistill.io import unusable_path

C = TypeVar("C")

SEED_LIMIT = 2**63  # seeds go to torch.manual_seed and numpy generators: 0 <= seed < 2**63
_DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")


def device_problems(device: str) -> list[str]:
    """'device' must be a torch device xdistill runs on."""
    if isinstance(device, str) and _DEVICE.fullmatch(device):
        return []
    return [f"'device' must be cpu, cuda or cuda:N. Got {device!r}."]


def worker_problems(name: str, value: int) -> list[str]:
    """A ``loader_workers``-like setting: -1 (choose from the data), 0 (none) or a count of worker processes."""
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        return [f"'{name}' must be -1 (choose from the data: one worker for image-folder splits), 0 (no workers) "
                f"or a number of worker processes. Got {value!r}."]
    return []


def seed_problems(**seeds: int) -> list[str]:
    return [f"'{key}' must lie in 0..2**63-1. Got {value}." for key, value in seeds.items() if not 0 <= value < SEED_LIMIT]


def load_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Read a YAML file safely, with a clear error for a missing or malformed file."""
    path = Path(path)
    reason = unusable_path(path)
    if reason:
        raise ConfigError(f"The {what} {str(path)!r} cannot be read ({reason}). Check the path.")
    if not path.is_file():
        raise ConfigError(f"The {what} '{path}' does not exist. Check the path.")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"The {what} '{path}' cannot be read ({exc.strerror or exc}).") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"The {what} '{path}' is not valid YAML: {exc}".replace("\n", " ")) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"The {what} '{path}' is not UTF-8 text.") from exc


def load_task_yaml(folder: str | Path, keys: str) -> tuple[Path, dict]:
    """A task folder's (or its task.yaml's) path and its mapping; ``keys`` names what the mapping holds, for the
    error when it is not one. Each kind checks the keys itself."""
    folder = Path(folder)
    path = folder / "task.yaml" if folder.suffix not in (".yaml", ".yml") else folder
    if not path.is_file():
        raise ConfigError(f"'{path}' does not exist. A task folder holds task.yaml.")
    raw = load_yaml(path, "task file")
    if not isinstance(raw, dict):
        raise ConfigError(f"'{path}' must be a mapping with {keys}. Got {type(raw).__name__}.")
    return path, raw


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    """Convert ``value`` to type ``tp`` or record a problem and return it unchanged."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, tp, where, problems)
    if origin is typing.Literal:
        return _convert_literal(value, tp, where, problems)
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp, where, problems)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        return _convert_sequence(value, tp, where, problems)
    if origin in (dict, Mapping) or tp is dict:
        return _convert_mapping(value, tp, where, problems)
    scalar = _SCALARS.get(tp)
    return scalar(value, where, problems) if scalar is not None else value


def _convert_union(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    for candidate in (a for a in args if a is not type(None)):
        trial: list[str] = []
        converted = _convert(value, candidate, where, trial)
        if not trial:
            return converted
    problems.append(f"'{where}' must be {' or '.join(_type_name(a) for a in args)}. Got {value!r}.")
    return value


def _convert_literal(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    args = typing.get_args(tp)
    if value not in args:
        problems.append(f"'{where}' must be one of {', '.join(repr(a) for a in args)}. Got {value!r}.")
    return value


def _convert_dataclass(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, tp):
        return value
    if not isinstance(value, Mapping):
        problems.append(f"'{where}' must be a mapping of {tp.__name__} fields. Got {value!r}.")
        return value
    return _build(tp, value, where, problems)


def _convert_sequence(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        problems.append(f"'{where}' must be a list. Got {value!r}.")
        return value
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            problems.append(f"'{where}' must have {len(args)} items. Got {len(value)}: {list(value)!r}.")
            return value
        items = [_convert(v, a, f"{where}[{i}]", problems) for i, (v, a) in enumerate(zip(value, args))]
    else:
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return tuple(items) if (origin is tuple or tp is tuple) else list(items)


def _convert_mapping(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    args = typing.get_args(tp)
    if not isinstance(value, Mapping):
        problems.append(f"'{where}' must be a mapping. Got {value!r}.")
        return value
    vt = args[1] if len(args) == 2 else Any
    return {str(k): _convert(v, vt, f"{where}.{k}", problems) for k, v in value.items()}


def _convert_bool(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    problems.append(f"'{where}' must be true or false. Got {value!r}.")
    return value


def _convert_number(kind: type, what: str) -> Callable[[Any, str, list[str]], Any]:
    """A converter to int or float that refuses booleans and, for int, fractional values."""

    def convert(value: Any, where: str, problems: list[str]) -> Any:
        if isinstance(value, bool):
            pass
        elif isinstance(value, int) or (kind is float and isinstance(value, float)):
            return kind(value)
        elif kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        elif isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                pass
        problems.append(f"'{where}' must be {what}. Got {value!r}.")
        return value

    return convert


def _convert_str(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    problems.append(f"'{where}' must be a string. Got {value!r}.")
    return value


def _convert_path(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, (str, Path)):
        return Path(value)
    problems.append(f"'{where}' must be a path. Got {value!r}.")
    return value


_SCALARS: dict[Any, Callable[[Any, str, list[str]], Any]] = {
    bool: _convert_bool, int: _convert_number(int, "an integer"), float: _convert_number(float, "a number"),
    str: _convert_str, Path: _convert_path,
}


def config_problems(obj: Any) -> list[str]:
    """A typed config's own checks of its values: its ``problems()`` method, if it has one."""
    check = getattr(obj, "problems", None)
    return list(check()) if callable(check) else []


def ensure_valid(obj: C, what: str) -> C:
    """``obj`` itself when its ``problems()`` are none, else one ConfigError naming every problem."""
    problems = config_problems(obj)
    if problems:
        raise ConfigError(join_problems(problems, f"Invalid {what}"))
    return obj


def _unknown_key_problem(cls: type, key: str, fields: Sequence[str], where: str) -> str:
    prefix = f"{where}." if where else ""
    renamed = getattr(cls, "RENAMED", {}).get(key)
    if renamed is not None:
        return f"The key '{prefix}{key}' was renamed to '{prefix}{renamed}'. Use {prefix}{renamed}= instead."
    close = difflib.get_close_matches(str(key), list(fields), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"Unknown key '{prefix}{key}'.{hint} Valid keys: {', '.join(fields)}."


def _build(cls: type[C], data: Mapping[str, Any], where: str, problems: list[str]) -> C:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    problems += [_unknown_key_problem(cls, k, list(fields), where) for k in data if k not in fields]
    kwargs = {}
    for name, field in fields.items():
        sub = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], sub, problems)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            problems.append(f"Missing required key '{sub}'.")
    if problems:
        return None  # type: ignore[return-value]
    obj = cls(**kwargs)
    problems += config_problems(obj)
    return obj


def from_dict(cls: type[C], data: Mapping[str, Any] | None, what: str = "config") -> C:
    """Build dataclass ``cls`` from a mapping, reporting every problem at once."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"The {what} must be a mapping of keys to values. Got {type(data).__name__}: {data!r}.")
    problems: list[str] = []
    obj = _build(cls, data, "", problems)
    if problems:
        raise ConfigError(join_problems(problems, f"Invalid {what}"))
    return obj


def to_dict(obj: Any) -> Any:
    """A JSON/YAML-ready dict of a (nested) dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=5", "method=weighted"]`` into a nested mapping.

    Values are parsed as YAML scalars/lists (``1e-3``, ``true``, ``[1, 2]``).
    """
    nested: dict[str, Any] = {}
    problems = []
    for item in overrides:
        if "=" not in item:
            problems.append(f"Override {item!r} must look like key=value (e.g. epochs=5).")
            continue
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            problems.append(f"Override {item!r} has an empty key.")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"Override {item!r} conflicts with another override of {part!r}.")
                break
        else:
            node[parts[-1]] = value
    if problems:
        raise ConfigError(join_problems(problems, "Invalid overrides"))
    return nested


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve(cls: type[C], config_file: str | Path | None = None, overrides: Sequence[str] = (),
            base: Mapping[str, Any] | None = None, flags: Mapping[str, Any] | None = None) -> C:
    """Defaults from ``cls``, then ``base``, then the YAML file, then CLI ``flags``
    (those not None), then ``key=value`` overrides."""
    data: dict[str, Any] = dict(base or {})
    if config_file is not None:
        loaded = load_yaml(config_file, "config file")
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError(f"The config file '{config_file}' must hold a mapping of keys to values. Got {type(loaded).__name__}.")
        data = merge(data, loaded or {})
    data = merge(data, {k: v for k, v in (flags or {}).items() if v is not None})
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)
