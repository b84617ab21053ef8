"""Random inputs for every loss, their reference values, and the stored
fixture that pins those values.

Regenerate the fixture (only when a loss's definition changes on purpose):

    .venv/bin/python -m tests.losses.cases    # from the repository root
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .reference import REFERENCES

FIXTURE = Path(__file__).parent / "fixtures" / "reference_values.npz"
FIXTURE_SEEDS = (101, 202, 303)


def random_probs(rng, rows, classes):
    logits = rng.normal(size=(rows, classes)) * rng.uniform(0.5, 3.0)
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def random_case(loss, rng):
    """{"loss", "arrays", "params"}: inputs for one call of ``loss``."""
    rows, classes = 5, 7
    arrays, params = {}, {}
    if loss in ("ce", "soft_ce", "kd", "reverse_kl", "js", "bdkd", "dkd", "taid", "sinkhorn", "sinkd", "ofa"):
        arrays["student_logits"] = rng.normal(size=(rows, classes)) * rng.uniform(0.5, 3.0)
    if loss in ("kd", "reverse_kl", "js", "bdkd", "dkd", "taid", "sinkhorn", "sinkd"):
        arrays["teacher_probs"] = random_probs(rng, rows, classes)
        params["temperature"] = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
    if loss in ("ce", "dkd", "ofa"):
        arrays["labels"] = rng.integers(0, classes, size=rows)
    if loss == "ofa":
        arrays["teacher_probs"] = random_probs(rng, rows, classes)
        arrays["exit_logits"] = rng.normal(size=(int(rng.integers(0, 4)), rows, classes)) * rng.uniform(0.5, 3.0)
        params["gamma"] = float(rng.choice([1.0, 1.5, 2.0]))
    if loss == "soft_ce":
        arrays["target_probs"] = random_probs(rng, rows, classes)
    if loss == "dkd":
        params["alpha"] = float(rng.uniform(0.5, 2.0))
        params["beta"] = float(rng.uniform(1.0, 8.0))
    if loss == "taid":
        params["t"] = float(rng.uniform(0.0, 1.0))
    if loss in ("sinkhorn", "sinkd"):
        params["epsilon"] = float(rng.choice([0.05, 0.1, 0.5]))
    if loss == "sinkd":
        params["sinkhorn_weight"] = float(rng.uniform(0.1, 2.0))
    if loss in ("feature_mse", "feature_cosine", "nd"):
        arrays["student_features"] = rng.normal(size=(rows, 3))
        arrays["teacher_features"] = rng.normal(size=(rows, 4)) * 2 + 1
        arrays["projector_weight"] = rng.normal(size=(4, 3))
        arrays["projector_bias"] = rng.normal(size=4)
    if loss == "nd":
        arrays["labels"] = rng.integers(0, 3, size=rows)
        arrays["teacher_class_means"] = rng.normal(size=(3, 4)) * 2
    if loss == "rkd":
        arrays["student_features"] = rng.normal(size=(6, 3))
        arrays["teacher_features"] = rng.normal(size=(6, 5)) * 3 + 1
        params["distance_weight"] = float(rng.uniform(1.0, 30.0))
        params["angle_weight"] = float(rng.uniform(1.0, 60.0))
    if loss == "cka":
        arrays["student_features"] = rng.normal(size=(8, 3))
        arrays["teacher_features"] = arrays["student_features"] @ rng.normal(size=(3, 5)) + rng.normal(size=(8, 5))
    if loss not in ("rkd", "cka") and rng.uniform() < 0.5:
        arrays["weight"] = rng.uniform(0.0, 2.0, size=rows)
    return {"loss": loss, "arrays": arrays, "params": params}


def reference_values(case):
    arrays = {name: value.tolist() for name, value in case["arrays"].items()}
    return REFERENCES[case["loss"]](**arrays, **case["params"])


def torch_arguments(case, requires_grad=False):
    """The arrays of ``case`` as float64 tensors (labels as int64), with the
    projector built from 'projector_weight' and 'projector_bias'."""
    arguments = {}
    for name, value in case["arrays"].items():
        tensor = torch.from_numpy(np.asarray(value))
        arguments[name] = tensor.long() if name == "labels" else tensor.double()
    if "projector_weight" in arguments:
        weight_matrix, bias = arguments.pop("projector_weight"), arguments.pop("projector_bias")
        projector = nn.Linear(weight_matrix.shape[1], weight_matrix.shape[0]).double()
        with torch.no_grad():
            projector.weight.copy_(weight_matrix)
            projector.bias.copy_(bias)
        arguments["projector"] = projector
    if requires_grad:
        for name in ("student_logits", "student_features"):
            if name in arguments:
                arguments[name].requires_grad_(True)
    return arguments


def fixture_cases():
    """The cases stored in the fixture, each with its "expected" values."""
    cases = []
    for seed in FIXTURE_SEEDS:
        for loss in sorted(REFERENCES):
            case = random_case(loss, np.random.default_rng([seed, len(cases)]))
            case["expected"] = reference_values(case)
            cases.append(case)
    return cases


def save_fixture(cases, path=FIXTURE):
    """One npz key per value: '<index>__<loss>__<arrays|params|expected>__<name>'."""
    flat = {}
    for index, case in enumerate(cases):
        for kind in ("arrays", "params", "expected"):
            for name, value in case[kind].items():
                flat[f"{index:03d}__{case['loss']}__{kind}__{name}"] = np.asarray(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **flat)


def load_fixture(path=FIXTURE):
    cases = {}
    with np.load(path) as stored:
        for key in stored.files:
            index, loss, kind, name = key.split("__")
            case = cases.setdefault(index, {"loss": loss, "arrays": {}, "params": {}, "expected": {}})
            value = stored[key]
            case[kind][name] = value if kind == "arrays" else float(value)
    return [cases[index] for index in sorted(cases)]


if __name__ == "__main__":
    save_fixture(fixture_cases())
    print(f"wrote {FIXTURE}")
