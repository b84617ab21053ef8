"""``kind: hf`` with ``task: causal-lm``: a tiny transformers GPT-2 built and saved here (nothing is
downloaded), scored by bits per byte as the model computes it directly, ranked beside gpt teachers
whose tokenizer differs, and skipped by ``weighted`` for that reason."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from tests.conftest import run_cli
from tests.kinds.language_modeling.conftest import STUDENT_KNOBS, build_world
from xdistill.kinds import load_task
from xdistill.kinds.language_modeling.scoring import score_text
from xdistill.models.tokenizer import BOS, train_bpe
from xdistill.teachers import create_teacher, load_zoo

transformers = pytest.importorskip("transformers")


def write_tiny_gpt2(folder, texts):
    tokenizer = train_bpe(texts, 280)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer.tokenizer, bos_token=BOS)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=16, n_layer=1, n_head=2,
                                     bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.bos_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def lm_world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("lm-world"))


@pytest.fixture(scope="module")
def hf_world(lm_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    task = load_task(lm_world.task)
    write_tiny_gpt2(root / "tiny-gpt2", ["a few words of other text", "and a second line"] * 4)
    zoo = yaml.safe_load(lm_world.zoo.read_text())
    for entry in zoo["teachers"]:
        entry["path"] = str(lm_world.root / entry["path"])
    zoo["teachers"].append({"name": "tiny-gpt2", "kind": "hf", "task": "causal-lm", "path": "tiny-gpt2",
                            "max_length": 48, "domain": "random weights"})
    (root / "zoo.yaml").write_text(yaml.safe_dump(zoo))
    return root, task


def test_bits_per_byte_match_the_model_run_directly(hf_world):
    root, task = hf_world
    teacher = next(t for t in load_zoo(root / "zoo.yaml").teachers() if t.name == "tiny-gpt2")
    assert teacher.language_model and teacher.context == 48 and teacher.vocab_size == 280
    documents = ["short text", "another short document with é"]
    score = score_text(teacher, documents)
    model = transformers.GPT2LMHeadModel.from_pretrained(root / "tiny-gpt2").eval()
    tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(root / "tiny-gpt2")
    nats = 0.0
    for document in documents:
        ids = [tokenizer.bos_token_id] + tokenizer(document, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        nats -= sum(float(log_probs[i, ids[i + 1]]) for i in range(len(ids) - 1))
    n_bytes = sum(len(d.encode()) for d in documents)
    assert score.bits_per_byte == pytest.approx(nats / math.log(2) / n_bytes, rel=1e-5)  # float32 forward pass


def test_spans_are_byte_offsets_of_the_text(hf_world):
    root, _ = hf_world
    teacher = next(t for t in load_zoo(root / "zoo.yaml").teachers() if t.name == "tiny-gpt2")
    text = "é words ✓"
    ids, spans = teacher.tokenizer.encode(text)
    assert spans[-1, 1] == len(text.encode()) and len(ids) == len(spans)


def test_rank_puts_teachers_with_different_tokenizers_on_one_scale_and_weighted_distils_them_all(
        hf_world, lm_world, tmp_path):
    root, _ = hf_world
    assert run_cli("rank", "--task", str(lm_world.task), "--zoo", str(root / "zoo.yaml"), "--cache",
                   str(tmp_path / "cache"), "--out", str(tmp_path / "rank.json"), "top_k=0") == 0
    ranking = {t["name"]: t for t in json.loads((tmp_path / "rank.json").read_text())["teachers"]}
    assert set(ranking) == {"code", "prose", "tiny-gpt2"}
    assert ranking["code"]["rank"] == 1 and ranking["tiny-gpt2"]["scores"]["bits_per_byte"] > 0
    out = tmp_path / "weighted"
    assert run_cli("distill", "--task", str(lm_world.task), "--zoo", str(root / "zoo.yaml"), "--method", "weighted",
                   "--out", str(out), "--cache", str(tmp_path / "cache"), "--epochs", "1", "top_k=0", "progress=false",
                   "anneal=false",  # keep every teacher, even one behind the fresh student
                   "cross_tokenizer_loss=shared_vocab",  # reads the hf tokenizer's spelling of each id
                   *[f"student.knobs.{k}={v}" for k, v in STUDENT_KNOBS.items()]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["teachers"]) == {"code", "prose", "tiny-gpt2"}
    assert metrics["cross_tokenizer"]["other_tokenizers"] == ["tiny-gpt2"]
    assert metrics["cross_tokenizer"]["chunks"] > 0 and metrics["history"][0]["train"]["kd"] > 0


def test_causal_lm_entry_builds_a_language_model_teacher(hf_world):
    root, _ = hf_world
    spec = next(s for s in load_zoo(root / "zoo.yaml").specs if s.name == "tiny-gpt2")
    teacher = create_teacher(spec)
    ids = torch.tensor([[teacher.tokenizer.bos_id, 5, 6]])
    assert teacher.token_logits(ids).shape == (1, 3, 280)
