"""Fuzzing the configuration: zoo YAML and key=value overrides (see fuzzing.py for the properties)."""

from __future__ import annotations

import copy
import math

import torch
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from tests.reliability.files import snapshot
from tests.reliability.fuzzing import FUZZ, assert_rejected, library, paths, run_cli, scratch, text, values

# -- zoo YAML ------------------------------------------------------------------------------

ENTRY_KEYS = ["name", "kind", "labels", "input", "domain", "architecture", "modality", "path", "factory", "weights",
              "kwargs", "target", "trust"]
input_specs = st.one_of(
    values,
    st.builds(
        lambda spec, extra: {**spec, **extra},
        st.fixed_dictionaries({}, optional={
            "size": st.one_of(st.lists(st.one_of(st.integers(-2, 9), st.floats()), max_size=3), values),
            "channels": st.one_of(st.integers(-1, 4), values),
            "mean": st.one_of(st.lists(st.floats(), max_size=4), values),
            "std": st.one_of(st.lists(st.floats(), max_size=4), values),
        }),
        st.dictionaries(text, values, max_size=1),
    ),
)


@st.composite
def zoo_documents(draw, valid: dict) -> bytes:
    form = draw(st.sampled_from(["edit"] * 6 + ["replace", "text"]))
    if form == "text":
        return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass")
    if form == "replace":
        return yaml.safe_dump(draw(values), allow_unicode=True).encode()
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["entry"] * 6 + ["drop-key", "replace-entry", "duplicate", "top"]))
        entries = doc.get("teachers")
        if op == "top" or not isinstance(entries, list) or not entries:
            key = draw(st.one_of(st.just("teachers"), text))
            if draw(st.booleans()):
                doc[key] = draw(values)
            else:
                doc.pop(key, None)
            continue
        i = draw(st.integers(0, len(entries) - 1))
        if op == "replace-entry":
            entries[i] = draw(values)
        elif op == "duplicate":
            entries.append(copy.deepcopy(entries[i]))
        elif not isinstance(entries[i], dict):
            continue
        elif op == "drop-key":
            entries[i].pop(draw(st.sampled_from(ENTRY_KEYS)), None)
        else:
            key = draw(st.one_of(st.sampled_from(ENTRY_KEYS + ["input"] * 4), text))
            entries[i][key] = draw({
                "kind": st.one_of(st.sampled_from(["torchscript", "module", "onnx", "callable", "hf", "timm",
                                                   "torchscrpt", ""]), values),
                "input": input_specs,
                "path": st.one_of(paths, values),
                "labels": st.one_of(st.lists(st.one_of(text, st.integers(0, 3)), max_size=4), values),
                "modality": st.one_of(st.sampled_from(["image", "features", "text", "audio"]), values),
            }.get(key, values))
    return yaml.safe_dump(doc, allow_unicode=True).encode()


def assert_valid_zoo(zoo) -> None:
    from xdistill.teachers import create_teacher

    assert zoo.specs and len(set(zoo.names)) == len(zoo.names)
    for spec in zoo.specs:
        assert isinstance(spec.name, str) and spec.name.strip()
        spec_in = spec.input
        assert spec_in.size is None or (len(spec_in.size) == 2 and all(isinstance(v, int) and v >= 1 for v in spec_in.size))
        assert spec_in.channels in (None, 1, 3)
        assert all(math.isfinite(v) for v in spec_in.mean), spec_in
        assert all(math.isfinite(v) and v > 0 for v in spec_in.std), spec_in
        assert spec.labels is None or (spec.labels and len(set(spec.labels)) == len(spec.labels))
        create_teacher(spec)


VALID_ZOO = {"teachers": [
    {"name": f"t{i}", "kind": "torchscript", "path": f"t{i}.pt",
     "input": {"size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.5]},
     "labels": [f"l{j}" for j in range(3 + i)], "domain": f"domain {i}", "architecture": "mlp"}
    for i in range(2)]}


def _zoo_with(**changes) -> bytes:
    doc = copy.deepcopy(VALID_ZOO)
    doc["teachers"][0].update(changes)
    return yaml.safe_dump(doc).encode()


@FUZZ
@given(document=zoo_documents(VALID_ZOO))
@example(document=_zoo_with(kind=[]))  # unhashable: 'in' on the registry raised TypeError
@example(document=_zoo_with(path="x" * 300 + ".pt"))
@example(document=_zoo_with(input={"std": [float("nan")]}))  # accepted, then every output was NaN
@example(document=_zoo_with(input={"mean": [float("inf")], "size": [8, 8]}))
@example(document=_zoo_with(**{"\n": 1}))
def test_fuzzed_zoo(valid_inputs, document):
    from xdistill.teachers import load_zoo

    assert yaml.safe_load((valid_inputs["zoo"] / "zoo.yaml").read_text()) == VALID_ZOO  # the fixture did not drift
    with scratch(valid_inputs, "zoo") as folder:
        zoo_dir, cache = folder / "zoo", folder / "cache"
        (zoo_dir / "zoo.yaml").write_bytes(document)
        before = snapshot(zoo_dir)
        zoo, error = library(lambda: load_zoo(zoo_dir / "zoo.yaml"))
        if error is None:
            assert_valid_zoo(zoo)
            return
        assert_rejected(*run_cli("cache", "--task", str(valid_inputs["task"]), "--zoo", str(zoo_dir / "zoo.yaml"),
                                 "--cache", str(cache)))
        assert not cache.exists() and snapshot(zoo_dir) == before


# -- key=value overrides -------------------------------------------------------------------
# An item starting with '-' is parsed as an option: an unknown one is a one-line usage error
# (exit status 2, no traceback; see test_unknown_option_is_a_usage_error).

# Paths and --resume are left out: they point the run at other files, which the other properties cover.
OVERRIDE_KEYS = ["method", "seed", "epochs", "batch_size", "unlabeled_ratio", "lr", "weight_decay", "loss",
                 "kd_temperature", "kd_weight", "reliability", "anneal", "anneal_margin", "label_mix", "label_weight",
                 "feature_weight", "feature_loss",
                 "fixmatch_threshold", "fixmatch_weight", "augment_seed", "views", "online", "metric", "prepare",
                 "prepare_dim", "weight_temperature", "top_k", "device", "threads", "deterministic", "progress",
                 "teachers", "student", "student.name", "student.knobs", "student.width", "train.epochs", "epoch", "mix"]
raw_values = st.one_of(
    st.sampled_from(["", "1", "0", "-1", "3", "1e-3", "1e309", "-1e309", "nan", ".nan", ".inf", "-.inf", "true", "no",
                     "null", "~", "[1, 2]", "[]", "{a: 1}", "{}", "0x10", "1_000", "2**70", "99999999999999999999999",
                     "cnn", "mlp", "cpu", "cuda", "cuda:0", "mps", "weighted", "supervised", "kd", "logme", "pca",
                     "&a [*a]", "!!python/object/apply:os.system ['true']", "!!binary aGk=", "'quoted'", ": :", "[",
                     "{", "\t", "é", "2020-01-01"]),
    st.integers(-2**70, 2**70).map(str),
    st.floats().map(repr),
    text,
)
numbers = st.one_of(
    st.integers(-3, 3), st.sampled_from([2**31, 2**63, 2**64, -2**63, 10**30]), st.floats(),
    st.sampled_from([".inf", "-.inf", ".nan", "1e309", "-0.0", "5e-324"]),
).map(str)
numeric_override = st.builds(lambda k, v: f"{k}={v}", st.sampled_from(OVERRIDE_KEYS), numbers)
overrides = st.lists(
    st.one_of(
        numeric_override, numeric_override,
        st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(OVERRIDE_KEYS), text), raw_values),
        text,  # no '=' at all, most of the time
    ),
    min_size=1, max_size=3,
).filter(lambda items: not any(item.startswith("-") for item in items))  # those are options, not overrides


def assert_valid_distill_config(cfg) -> None:
    """Every numeric field finite and inside the range its comment documents."""
    for key in ("lr", "kd_temperature", "weight_temperature", "anneal_margin"):
        assert math.isfinite(getattr(cfg, key)) and getattr(cfg, key) > 0, (key, getattr(cfg, key))
    assert 0 <= cfg.label_mix <= 1
    for key in ("weight_decay", "kd_weight", "label_weight", "feature_weight", "fixmatch_weight"):
        assert math.isfinite(getattr(cfg, key)) and getattr(cfg, key) >= 0, (key, getattr(cfg, key))
    assert 0 <= cfg.fixmatch_threshold <= 1
    for key in ("epochs", "batch_size", "unlabeled_ratio", "prepare_dim"):
        assert getattr(cfg, key) >= 1, key
    for key in ("seed", "augment_seed"):
        assert 0 <= getattr(cfg, key) < 2**63, key
    assert cfg.views >= 0 and cfg.top_k >= 0 and 0 <= cfg.threads <= 1024
    torch.device(cfg.device)  # a device torch understands


@FUZZ
@given(items=overrides)
@example(items=["\n"])  # a line break inside the one-line message
@example(items=["threads=-1"])
@example(items=["student.knobs.width=&a [*a]"])
def test_fuzzed_overrides(valid_inputs, items):
    from xdistill.cache import CacheConfig
    from xdistill.config import resolve
    from xdistill.pipeline.distill import config_problems
    from xdistill.train.config import DistillConfig

    cfg, error = library(lambda: resolve(DistillConfig, None, items, base={"task": "t", "out": "o", "method": "supervised"}))
    if cfg is not None and not config_problems(cfg):
        assert_valid_distill_config(cfg)
    library(lambda: resolve(CacheConfig, None, items))
    with scratch(valid_inputs, "task") as folder:
        out = folder / "out"
        out.mkdir()
        # Holding a run's checkpoint, 'out' turns away a valid config too: nothing long ever starts.
        (out / "checkpoint.safetensors").write_bytes(b"placeholder")
        before = snapshot(out)
        assert_rejected(*run_cli("distill", "--task", str(folder / "task"), "--method", "supervised", "--out", str(out),
                                 "progress=false", *items))
        assert snapshot(out) == before


@FUZZ
@given(item=numeric_override)
@example(item="lr=.inf")
@example(item="weight_decay=.nan")
@example(item="seed=-1")  # numpy refuses negative seeds mid-training
@example(item="threads=-2")  # torch.set_num_threads raised RuntimeError
@example(item="device=gpu")
@example(item="top_k=-1")
def test_fuzzed_numeric_override_is_refused_or_in_range(item):
    """One well-formed override at a time, so that a bad value is not hidden behind another problem."""
    from xdistill.config import resolve
    from xdistill.pipeline.distill import config_problems
    from xdistill.train.config import DistillConfig

    cfg, _ = library(lambda: resolve(DistillConfig, None, [item], base={"task": "t", "out": "o", "method": "supervised"}))
    if cfg is not None and not config_problems(cfg):
        assert_valid_distill_config(cfg)


def test_unknown_option_is_a_usage_error(valid_inputs, tmp_path):
    code, err = run_cli("distill", "--task", str(valid_inputs["task"]), "--out", str(tmp_path / "o"), "-=1")
    assert code == 2 and "Traceback" not in err and "No such option" in err
    assert not (tmp_path / "o").exists()
