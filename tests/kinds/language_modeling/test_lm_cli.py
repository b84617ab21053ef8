"""The language-modeling kind through the real CLI, on the tiny world of conftest.py."""

from __future__ import annotations

import json

import pytest

from tests.conftest import interrupt_after_checkpoint, run_cli

from .conftest import STUDENT_KNOBS

KNOBS = [f"student.knobs.{k}={v}" for k, v in STUDENT_KNOBS.items()]


def distill_args(world, method, out, *extra):
    return ["distill", "--task", str(world.task), "--zoo", str(world.zoo), "--method", method, "--out", str(out),
            "--cache", str(world.cache), "--epochs", "2", "progress=false", "lr=0.003", *extra]


def test_cache_rank_distill_eval_generate(lm_world, tmp_path, capsys):
    assert run_cli("cache", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--cache", str(lm_world.cache),
                   "cache_top_k=16", "--json", str(tmp_path / "cache.json")) == 0
    cached = json.loads((tmp_path / "cache.json").read_text())
    assert set(cached["queries"]) == {"code", "prose"}
    assert run_cli("rank", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--cache", str(lm_world.cache),
                   "--out", str(tmp_path / "rank.json")) == 0
    ranking = json.loads((tmp_path / "rank.json").read_text())
    ordered = sorted(ranking["teachers"], key=lambda t: t["rank"])
    assert ordered[0]["name"] == "code"  # the target is code-like text
    assert ordered[0]["scores"]["bits_per_byte"] < ordered[1]["scores"]["bits_per_byte"]
    assert ordered[0]["weight"] > ordered[1]["weight"] and sum(t["weight"] for t in ordered) == pytest.approx(1)

    for method in ("supervised", "nearest", "weighted"):
        out = tmp_path / method
        # weighted mixes both teachers here even where one is behind the fresh student (see test_trust.py)
        extra = {"supervised": [f"tokenizer={lm_world.tokenizer}"], "weighted": ["anneal=false"]}.get(method, [])
        assert run_cli(*distill_args(lm_world, method, out, *KNOBS, *extra, "loss=taid")) == 0, method
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["kind"] == "language-modeling" and metrics["method"] == method
        assert set(metrics["test"]) >= {"bits_per_byte", "nats_per_token", "tokens_per_second"}
        assert metrics["params"] > 0 and len(metrics["history"]) == 2 and metrics["samples"]
        assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    weighted = json.loads((tmp_path / "weighted" / "metrics.json").read_text())
    assert set(weighted["teachers"]) == {"code", "prose"}
    nearest = json.loads((tmp_path / "nearest" / "metrics.json").read_text())
    assert set(nearest["teachers"]) == {"code"}

    assert run_cli("eval", str(tmp_path / "nearest"), "--json", str(tmp_path / "eval.json")) == 0
    scored = json.loads((tmp_path / "eval.json").read_text())
    assert scored["bits_per_byte"] == pytest.approx(nearest["test"]["bits_per_byte"], rel=1e-6)

    capsys.readouterr()
    assert run_cli("generate", str(tmp_path / "nearest"), "--prompt", "def alpha", "--max-new-tokens", "5",
                   "--temperature", "0") == 0
    assert capsys.readouterr().out.startswith("def alpha")
    assert run_cli("generate", str(lm_world.root / "teachers" / "code"), "--prompt", "def", "--n", "2",
                   "--out", str(tmp_path / "samples.jsonl")) == 0
    assert len((tmp_path / "samples.jsonl").read_text().splitlines()) == 2


def test_pretrain_on_several_tasks_then_finetune(lm_world, tmp_path):
    generic = tmp_path / "generic.safetensors"
    assert run_cli("pretrain", "--task", str(lm_world.task), "--task", str(lm_world.task), "--out", str(generic),
                   "--epochs", "1", f"tokenizer={lm_world.tokenizer}", "progress=false", *KNOBS) == 0
    out = tmp_path / "finetune"
    assert run_cli("distill", "--task", str(lm_world.task), "--method", "finetune", "--out", str(out), "--epochs", "1",
                   f"init={generic}", "progress=false") == 0
    assert json.loads((out / "metrics.json").read_text())["params"] > 0
    assert run_cli("generate", str(generic), "--prompt", "x", "--max-new-tokens", "3") == 0


def test_interrupted_run_resumes_to_the_same_weights(lm_world, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from tests.conftest import Interrupt

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    args = [*KNOBS, "--epochs", "3"]
    assert run_cli(*distill_args(lm_world, "nearest", whole, *args)) == 0
    restore = interrupt_after_checkpoint(monkeypatch, 2)
    with pytest.raises(Interrupt):
        run_cli(*distill_args(lm_world, "nearest", parts, *args))
    restore()
    assert run_cli(*distill_args(lm_world, "nearest", parts, *args, "--resume")) == 0
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(parts / "model.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "supervised"], "needs the student's tokenizer"),
    (["--method", "finetune"], "init=FILE"),
    (["--method", "nearest", "loss=kl_div"], "'loss' must be one of forward_kl, reverse_kl, taid"),
    (["--method", "mixup"], "Unknown language-modeling method 'mixup'"),
])
def test_bad_configs_are_one_line_errors(lm_world, tmp_path, capsys, args, message):
    code = run_cli("distill", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--out", str(tmp_path / "r"), *args)
    assert code == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("loss", ["alm", "uld", "shared_vocab"])
def test_teachers_with_another_tokenizer_are_distilled_across_tokenizers(lm_world, tmp_path, loss):
    from xdistill.models.tokenizer import train_unigram

    other = tmp_path / "other-tokenizer.json"  # a unigram student tokenizer: no teacher shares it
    other.write_text(train_unigram(["def alpha(beta):\n    return beta + 1\n", "The text is prose."] * 20, 120).to_str())
    out = tmp_path / "r"
    assert run_cli(*distill_args(lm_world, "weighted", out, f"tokenizer={other}", f"cross_tokenizer_loss={loss}",
                                 "anneal=false", *KNOBS)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    cross = metrics["cross_tokenizer"]
    assert cross["loss"] == loss == metrics["loss"] and set(cross["other_tokenizers"]) == {"code", "prose"}
    assert 1 <= cross["student_tokens_per_chunk"] and cross["chunks"] <= cross["student_tokens"]
    assert all(0 < n <= cross["chunks"] for n in cross["aligned_openings"])
    assert all(record["train"]["kd"] > 0 for record in metrics["history"]), "the cross-tokenizer term is trained"


def test_transplant_gives_a_teacher_the_students_tokenizer(lm_world, tmp_path):
    from xdistill.kinds.language_modeling.student import build_lm_student, save_lm_file
    from xdistill.models.tokenizer import train_bpe

    tokenizer = train_bpe(["def alpha(beta):\n    return beta + 1\n", "The text is prose."] * 20, 290)
    donor = tmp_path / "donor.safetensors"
    save_lm_file(donor, build_lm_student("gpt", tokenizer, dict(STUDENT_KNOBS)), tokenizer)
    out = tmp_path / "r"
    assert run_cli(*distill_args(lm_world, "nearest", out, f"init={donor}", "transplant=true", "anneal=false",
                                 "transplant_atoms=4")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    record = metrics["transplant"]["code"]
    assert "cross_tokenizer" not in metrics and metrics["loss"] == "forward_kl"
    assert 0 < record["shared_tokens"] <= tokenizer.vocab_size
    assert record["bits_per_byte_after"] > 0 and record["bits_per_byte_before"] > 0


def test_report_compares_lm_runs_by_bits_per_byte_with_curves_and_samples(lm_world, tmp_path):
    runs = []
    for method in ("supervised", "nearest"):
        out = tmp_path / method
        # weighted mixes both teachers here even where one is behind the fresh student (see test_trust.py)
        extra = {"supervised": [f"tokenizer={lm_world.tokenizer}"], "weighted": ["anneal=false"]}.get(method, [])
        assert run_cli(*distill_args(lm_world, method, out, *KNOBS, *extra)) == 0
        runs.append(str(out))
    assert run_cli("report", *runs, "--out", str(tmp_path / "compare.html")) == 0
    html = (tmp_path / "compare.html").read_text()
    assert "(lower is better)" in html and "Learning curves" in html and "Samples" in html and "continuation" in html


def test_rank_validate_correlates_teacher_and_student_bits_per_byte(lm_world, tmp_path):
    assert run_cli("rank", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--cache", str(lm_world.cache),
                   "--validate", "validate_epochs=1", "--out", str(tmp_path / "rank.json")) == 0
    validation = json.loads((tmp_path / "rank.json").read_text())["validation"]
    assert set(validation["student_bits_per_byte"]) == {"code", "prose"}
    scores = validation["metrics"]["bits_per_byte"]
    assert -1 <= scores["kendall_tau"] <= 1 and scores["top1_regret"] >= 0


def test_mixed_tokenizers_go_with_the_lm_world_only(capsys):
    assert run_cli("demo", "--world", "images", "--tokenizers", "mixed") == 2
    assert "--tokenizers must be shared or mixed, and mixed goes with --world lm" in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize(("args", "message"), [
    (["cross_tokenizer_loss=almm"], "Unknown cross-tokenizer loss 'almm'. Did you mean 'alm'?"),
    (["transplant=true"], "'transplant' builds new token embeddings"),
    (["alm_temperature=0"], "'alm_temperature' must be a finite number > 0"),
])
def test_bad_cross_tokenizer_configs_are_one_line_errors(lm_world, tmp_path, capsys, args, message):
    code = run_cli("distill", "--task", str(lm_world.task), "--zoo", str(lm_world.zoo), "--out", str(tmp_path / "r"),
                   "--method", "nearest", *args)
    assert code == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
