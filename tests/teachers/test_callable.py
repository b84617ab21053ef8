from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from xdistill.cache import TeacherCache, cache_task
from xdistill.data import load_task
from xdistill.errors import XDistillError
from xdistill.teachers import Teacher, create_teacher, load_zoo

TEXT_TASK = Path(__file__).resolve().parents[1] / "fixtures" / "text-topics"
HERE = "tests.teachers.test_callable"
TOPIC_WORDS = (("match", "goal", "team"), ("soup", "oven", "sauce"), ("laptop", "code", "server"))


def keyword_probs(texts: list[str]) -> np.ndarray:
    """A black box over three topics: softmax of keyword counts, [N, 3]."""
    counts = np.array([[sum(w in t.lower() for w in words) for words in TOPIC_WORDS] for t in texts], dtype=float)
    scores = np.exp(counts - counts.max(axis=1, keepdims=True))
    return scores / scores.sum(axis=1, keepdims=True)


def raw_scores(batch) -> np.ndarray:
    return np.tile([2.0, -1.0, 0.5], (len(batch), 1))


def one_row_short(batch) -> np.ndarray:
    return np.full((len(batch) - 1, 3), 1 / 3)


def brightness_probs(images: np.ndarray) -> np.ndarray:
    """Images -> [P(dark), P(bright)] from the mean pixel."""
    bright = images.reshape(len(images), -1).mean(axis=1) / 255.0
    return np.stack([1 - bright, bright], axis=1)


class WritesMarker:
    """Unpickling this object creates a file: proof that a pickle ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


def _zoo(folder, entries):
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump({"teachers": entries}))
    return load_zoo(path)


def _teacher(folder, **entry):
    return create_teacher(_zoo(folder, [{"name": "bb", "kind": "callable", **entry}]).specs[0])


def test_probabilities_become_logits_whose_softmax_gives_them_back(tmp_path):
    teacher = _teacher(tmp_path, modality="text", target=f"{HERE}:keyword_probs", labels=["sport", "food", "tech"])
    assert isinstance(teacher, Teacher)
    texts = np.array(["the team scored a goal", "soup in the oven", "nothing here"], dtype=object)
    out = teacher.outputs(texts)
    assert out.features is None and out.logits.dtype == torch.float32 and out.logits.shape == (3, 3)
    np.testing.assert_allclose(torch.softmax(out.logits, dim=1).numpy(), keyword_probs(list(texts)), atol=1e-6)
    assert teacher.queries == 3
    teacher.outputs(texts[:2])
    assert teacher.queries == 5


def test_zero_probabilities_stay_finite(tmp_path):
    teacher = _teacher(tmp_path, modality="features", target=f"{HERE}:brightness_probs")
    out = teacher.outputs(np.zeros((2, 4), np.float32))  # P(bright) = 0 exactly
    assert torch.isfinite(out.logits).all()
    np.testing.assert_allclose(torch.softmax(out.logits, dim=1).numpy(), [[1, 0], [1, 0]], atol=1e-9)


def test_image_black_box_gets_the_raw_images(tmp_path):
    teacher = _teacher(tmp_path, modality="image", target=f"{HERE}:brightness_probs", labels=["dark", "bright"])
    images = np.stack([np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)])
    probs = torch.softmax(teacher.outputs(images).logits, dim=1).numpy()
    np.testing.assert_allclose(probs, [[1, 0], [0, 1]], atol=1e-9)


def test_unnormalised_scores_are_refused_with_a_softmax_hint(tmp_path):
    teacher = _teacher(tmp_path, modality="features", target=f"{HERE}:raw_scores")
    with pytest.raises(XDistillError, match=r"must return probabilities .* row 0 sums to 1\.5.*apply a softmax"):
        teacher.outputs(np.zeros((2, 3), np.float32))


def test_wrong_number_of_rows_is_refused(tmp_path):
    teacher = _teacher(tmp_path, modality="features", target=f"{HERE}:one_row_short")
    with pytest.raises(XDistillError, match="returned 3 rows of probabilities for a batch of 4 samples"):
        teacher.outputs(np.zeros((4, 3), np.float32))


def test_columns_must_match_declared_labels(tmp_path):
    teacher = _teacher(tmp_path, modality="text", target=f"{HERE}:keyword_probs", labels=["a", "b"])
    with pytest.raises(XDistillError, match="returned 3 probabilities per sample but its zoo entry declares 2 labels"):
        teacher.outputs(np.array(["x"], dtype=object))


def test_bad_targets_are_clear_errors(tmp_path):
    for target, message in (("no_colon", "must look like 'package.module:function'"),
                            ("tests.teachers.no_such_module:f", "cannot import 'tests.teachers.no_such_module'"),
                            (f"{HERE}:missing", "has no 'missing'"),
                            (f"{HERE}:HERE", "is a str, not a function")):
        with pytest.raises(XDistillError, match=message):
            _teacher(tmp_path, modality="text", target=target).setup()


def test_target_or_path_exactly_one(tmp_path):
    (tmp_path / "m.pkl").write_bytes(b"")
    with pytest.raises(XDistillError, match="exactly one of 'target'"):
        _zoo(tmp_path, [{"name": "bb", "kind": "callable"}])
    with pytest.raises(XDistillError, match="exactly one of 'target'"):
        _zoo(tmp_path, [{"name": "bb", "kind": "callable", "target": f"{HERE}:raw_scores", "path": "m.pkl",
                         "trust": True}])


def test_untrusted_pickle_is_refused_without_being_loaded(tmp_path):
    marker = tmp_path / "payload-ran"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(WritesMarker(str(marker))))
    refusal = r"Refusing to unpickle 'model.pkl'.*runs whatever code it holds.*'trust: true'"
    with pytest.raises(XDistillError, match=refusal):
        _zoo(tmp_path, [{"name": "bb", "kind": "callable", "modality": "features", "path": "model.pkl"}])
    assert not marker.exists()
    # A zoo built with trust and switched off in code is refused too, before reading the file.
    teacher = _teacher(tmp_path, modality="features", path="model.pkl", trust=True)
    teacher.options.trust = False
    with pytest.raises(XDistillError, match="refusing to unpickle"):
        teacher.setup()
    assert not marker.exists()
    # The payload is real: trusting the file runs it.
    with pytest.raises(XDistillError, match="has no predict_proba"):
        _teacher(tmp_path, modality="features", path="model.pkl", trust=True).setup()
    assert marker.exists()


def test_trusted_estimator_answers_with_its_classes(tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.where(x[:, 0] > 0, "pos", "neg")
    model = LogisticRegression().fit(x, y)
    joblib.dump(model, tmp_path / "lr.joblib")
    teacher = _teacher(tmp_path, modality="features", path="lr.joblib", trust=True)
    out = teacher.outputs(x[:5])
    assert teacher.labels == ["neg", "pos"]
    np.testing.assert_allclose(torch.softmax(out.logits.double(), dim=1).numpy(), model.predict_proba(x[:5]), atol=1e-6)


def test_fingerprints(tmp_path):
    entry = {"modality": "text", "target": f"{HERE}:keyword_probs"}
    base = _teacher(tmp_path, **entry).fingerprint()
    assert _teacher(tmp_path, **entry).fingerprint() == base
    assert _teacher(tmp_path, **entry, version="2").fingerprint() != base
    assert _teacher(tmp_path, modality="text", target=f"{HERE}:raw_scores").fingerprint() != base
    import joblib
    from sklearn.dummy import DummyClassifier

    joblib.dump(DummyClassifier().fit([[0], [1]], [0, 1]), tmp_path / "d.joblib")
    before = _teacher(tmp_path, modality="features", path="d.joblib", trust=True).fingerprint()
    joblib.dump(DummyClassifier(strategy="uniform").fit([[0], [1]], [0, 1]), tmp_path / "d.joblib")
    assert _teacher(tmp_path, modality="features", path="d.joblib", trust=True).fingerprint() != before


def test_warm_cache_makes_zero_queries(tmp_path):
    task = load_task(TEXT_TASK)
    entry = {"name": "bb", "kind": "callable", "modality": "text", "target": f"{HERE}:keyword_probs"}
    cache = TeacherCache(tmp_path / "cache", progress=False)
    first = _zoo(tmp_path, [entry]).teachers()
    summary = cache_task(task, first, cache)
    total = sum(len(s) for s in task.splits.values())
    assert first[0].queries == total and summary.queries == {"bb": total}
    again = _zoo(tmp_path, [entry]).teachers()
    summary = cache_task(task, again, cache)
    assert again[0].queries == 0 and summary.queries == {} and summary.reused == {"bb": total}
    runs = cache.store.read_manifest()["runs"]
    assert [run["queries"] for run in runs] == [{"bb": total}, {}]
    bumped = _zoo(tmp_path, [{**entry, "version": "2"}]).teachers()  # the model behind the API changed
    cache_task(task, bumped, cache)
    assert bumped[0].queries == total
