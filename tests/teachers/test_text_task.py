"""Text target tasks: the shipped fixture, the student tokenizer, modality checks,
the shipped text zoo, and the whole CLI (cache, rank, distill, eval) on text."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from xdistill.cache import TeacherCache, cache_task
from xdistill.data import load_task
from xdistill.errors import XDistillError
from xdistill.students.tokenize import PAD_ID, UNKNOWN_ID, fit_tokenizer, split_words, tokenizer_from_meta
from xdistill.teachers import create_teacher, load_zoo

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
TEXT_TASK = FIXTURES / "text-topics"
EXAMPLE_ZOO = ROOT / "examples" / "text" / "zoo.yaml"


# --- the fixture task ---------------------------------------------------------------------------

def test_fixture_task_is_small_balanced_and_reproducible(tmp_path):
    task = load_task(TEXT_TASK)
    assert task.input == "text" and task.classes == ["sports", "cooking", "computers", "weather"]
    assert np.bincount(task.labeled.y).tolist() == [10, 10, 10, 10]
    assert len(task.unlabeled) == 400 and np.bincount(task.test.y).tolist() == [50] * 4
    assert sum(p.stat().st_size for p in TEXT_TASK.iterdir()) < 200_000
    spec = importlib.util.spec_from_file_location("make_text_topics", FIXTURES / "make_text_topics.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.write(tmp_path / "again")
    for path in TEXT_TASK.iterdir():
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name


# --- the word tokenizer -------------------------------------------------------------------------

def test_tokenizer_fits_on_labeled_and_unlabeled_only():
    task = load_task(TEXT_TASK)
    tokenizer = fit_tokenizer(task, max_length=12)
    seen = {w for t in [*task.labeled.x, *task.unlabeled.x] for w in split_words(t)}
    assert set(tokenizer.vocab[2:]) == seen and tokenizer.vocab_size == len(seen) + 2
    assert fit_tokenizer(task, max_length=12).vocab == tokenizer.vocab  # deterministic
    small = fit_tokenizer(task, max_vocab=10)
    assert small.vocab_size == 10 and small.vocab[2] == "the"  # most frequent words first


def test_encode_lowercases_truncates_pads_and_marks_unknown_words():
    task = load_task(TEXT_TASK)
    tokenizer = fit_tokenizer(task, max_length=6)
    tokens = tokenizer.encode(["The MATCH, the match!", "zyzzyva " * 10, ""])
    assert tokens.dtype == torch.long and tokens.shape == (3, 6)
    the, match = tokenizer.vocab.index("the"), tokenizer.vocab.index("match")
    assert tokens[0].tolist() == [the, match, the, match, PAD_ID, PAD_ID]
    assert tokens[1].tolist() == [UNKNOWN_ID] * 6 and tokens[2].tolist() == [PAD_ID] * 6
    assert split_words("Don't stop_now 2-1") == ["don't", "stop", "now", "2", "1"]


def test_tokenizer_round_trips_through_json():
    tokenizer = fit_tokenizer(load_task(TEXT_TASK))
    meta = json.loads(json.dumps(tokenizer.describe()))
    assert meta["vocab_size"] == tokenizer.vocab_size and meta["max_length"] == 64
    again = tokenizer_from_meta({"kind": "text", **meta})
    texts = ["Anna baked the spicy soup today.", "A storm hit the server room"]
    assert torch.equal(again.encode(texts), tokenizer.encode(texts))
    with pytest.raises(XDistillError, match="has no 'vocab'"):
        tokenizer_from_meta({"kind": "text", "max_length": 8})
    with pytest.raises(XDistillError, match="'vocab_size' is 3 but its vocabulary holds"):
        tokenizer_from_meta({**meta, "vocab_size": 3})


def test_tokenizer_refuses_image_tasks(tiny_task):
    with pytest.raises(XDistillError, match="has input 'image', not 'text'"):
        fit_tokenizer(load_task(tiny_task))


# --- modality checks ----------------------------------------------------------------------------

def _write_zoo(folder: Path, entries: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump({"teachers": entries}, sort_keys=False))
    return path


def _keyword_entry(name: str = "keywords") -> dict:
    return {"name": name, "kind": "callable", "modality": "text",
            "target": "tests.teachers.test_callable:keyword_probs", "labels": ["sport", "food", "tech"],
            "domain": "keyword lists", "architecture": "lexicon"}


def test_text_teacher_on_an_image_task_is_refused(tiny_task, tmp_path):
    teachers = load_zoo(_write_zoo(tmp_path / "zoo", [_keyword_entry()])).teachers()
    with pytest.raises(XDistillError, match=r"'keywords' \(text\) take a different input than the task \('image'\)"):
        cache_task(load_task(tiny_task), teachers, TeacherCache(tmp_path / "cache", progress=False))
    assert teachers[0].queries == 0


def test_image_teacher_on_a_text_task_is_refused(tiny_zoo, tmp_path):
    teachers = load_zoo(tiny_zoo).teachers()
    refusal = r"'t0' \(image\), 't1' \(image\) take a different input than the task \('text'\)"
    with pytest.raises(XDistillError, match=refusal):
        cache_task(load_task(TEXT_TASK), teachers, TeacherCache(tmp_path / "cache", progress=False))


# --- the shipped example zoo --------------------------------------------------------------------

def test_example_text_zoo_loads_and_its_black_box_answers():
    try:
        from xdistill.teachers.hf import bundled_minilm_path

        bundled_minilm_path()
    except XDistillError as exc:
        pytest.skip(str(exc))
    zoo = load_zoo(EXAMPLE_ZOO)
    assert zoo.names == ["minilm", "minilm-cls", "news-keywords"]
    assert {s.modality for s in zoo.specs} == {"text"}
    keywords = create_teacher(zoo.specs[2])
    probs = torch.softmax(keywords.outputs(np.array(["Storm and rain", "the chef made soup"], dtype=object)).logits, 1)
    assert probs.argmax(1).tolist() == [3, 1]  # climate, food


# --- the CLI on a text task ---------------------------------------------------------------------

def _cli(*argv: str) -> None:
    from xdistill.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    assert exited.value.code == 0, argv


def test_cli_caches_ranks_and_distills_text_teachers(tmp_path, capsys):
    pytest.importorskip("transformers")
    from tests.teachers.test_hf import write_tiny_bert

    write_tiny_bert(tmp_path / "zoo" / "tiny-bert")
    tiny = {"name": "tiny-bert", "kind": "hf", "modality": "text", "path": "tiny-bert", "max_length": 32}
    zoo = str(_write_zoo(tmp_path / "zoo", [_keyword_entry(), tiny]))
    task, cache = str(TEXT_TASK), str(tmp_path / "cache")
    total = sum(len(s) for s in load_task(TEXT_TASK).splits.values())

    _cli("cache", "--task", task, "--zoo", zoo, "--cache", cache, "--json", str(tmp_path / "cache1.json"))
    first = json.loads((tmp_path / "cache1.json").read_text())
    assert first["queries"] == {"keywords": total, "tiny-bert": total}
    _cli("cache", "--task", task, "--zoo", zoo, "--cache", cache, "--json", str(tmp_path / "cache2.json"))
    assert json.loads((tmp_path / "cache2.json").read_text())["queries"] == {}  # warm: the black box is not asked

    _cli("rank", "--task", task, "--zoo", zoo, "--cache", cache, "--out", str(tmp_path / "rank.json"))
    ranking = {t["name"]: t for t in json.loads((tmp_path / "rank.json").read_text())["teachers"]}
    assert ranking["tiny-bert"]["scores"]["logme"] is not None and ranking["tiny-bert"]["rank"] == 1
    assert ranking["keywords"]["scores"]["leep"] is not None and ranking["keywords"]["scores"]["logme"] is None

    runs = {}
    for method in ("supervised", "weighted"):
        out = tmp_path / method
        _cli("distill", "--task", task, "--zoo", zoo, "--cache", cache, "--method", method, "--student", "text-cnn",
             "--epochs", "2", "--out", str(out), "progress=false", "threads=1")
        runs[method] = json.loads((out / "metrics.json").read_text())
        assert runs[method]["cost"]["flops"] > 0 and (out / "student.safetensors").is_file()
    assert runs["weighted"]["teachers"] is not None and runs["supervised"]["teachers"] is None

    _cli("eval", str(tmp_path / "weighted"), "--task", task, "--json", str(tmp_path / "eval.json"))
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["accuracy"] == pytest.approx(runs["weighted"]["test"]["accuracy"])


def test_cli_refuses_an_image_student_on_a_text_task(tmp_path, capsys):
    from xdistill.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main(["distill", "--task", str(TEXT_TASK), "--method", "supervised", "--student", "cnn",
              "--out", str(tmp_path / "run")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "reads image inputs, but task 'text-topics' has text inputs. Choose one of: " in err
    assert "text-cnn" in err and "text-transformer" in err and "(--student NAME)" in err
