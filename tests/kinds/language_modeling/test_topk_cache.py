"""The top-k cache: exact id packing, the reconstruction KL against a hand computation, its size on
disk, resume after a lost or damaged shard, and reuse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xdistill.kinds import load_task
from xdistill.kinds.language_modeling import topk as topk_module
from xdistill.kinds.language_modeling.topk import TopKCache, compress, pack_ids, reconstruct, unpack_ids
from xdistill.teachers import load_zoo


@pytest.mark.parametrize(("vocab", "k"), [(2, 1), (300, 8), (2048, 32), (50257, 5), (70000, 3)])
def test_ids_round_trip_packed_to_the_vocabulary_size(vocab, k):
    bits = topk_module.id_bits(vocab)
    assert 2 ** bits >= vocab > 2 ** (bits - 1) or vocab == 2
    ids = np.random.default_rng(0).integers(0, vocab, size=(17, k))
    packed = pack_ids(ids, bits)
    assert packed.shape == (17, math.ceil(k * bits / 8)) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack_ids(packed, k, bits), ids)


def test_reconstruction_kl_matches_a_hand_computation():
    rng = np.random.default_rng(1)
    logits = torch.tensor(rng.normal(size=(3, 9)) * 2, dtype=torch.float32)
    log_probs = torch.log_softmax(logits, dim=1)
    rows = compress(log_probs, np.zeros(3, np.int64), np.array([[0, 1]] * 3), np.zeros(3, np.int64), k=3, bits=4)
    for row in range(3):
        p = log_probs[row].double().exp().numpy()
        top = np.argsort(-p)[:3]
        q = np.full(9, (1 - p[top].sum()) / 6)
        q[top] = p[top]
        expected = float(np.sum(p * np.log(p / q)))
        # the cache rounds log-probabilities to float16 (3 significant digits): KL is close, not equal
        assert float(rows["kl"][row]) == pytest.approx(expected, rel=2e-2, abs=2e-4)
    full = reconstruct(torch.from_numpy(unpack_ids(rows["ids"], 3, 4)), torch.from_numpy(rows["logp"]).float(),
                       torch.from_numpy(rows["tail_logp"]).float(), 9)
    torch.testing.assert_close(full.exp().sum(dim=1), torch.ones(3), rtol=0, atol=1e-6)


def test_cache_size_resume_and_reuse(lm_world, tmp_path, monkeypatch):
    task = load_task(lm_world.task)
    teacher = load_zoo(lm_world.zoo).teachers()[0]
    monkeypatch.setattr(topk_module, "SHARD_TOKENS", 64)  # several shards on tiny text
    cache = TopKCache(tmp_path / "cache", k=8, progress=False)
    info = cache.ensure(teacher, task.splits["train"])
    n = info["n"]
    assert n == sum(info["doc_tokens"]) and len(info["doc_tokens"]) == len(task.splits["train"])
    shards = sorted(cache.store.entry_dir(cache.key(teacher, task.splits["train"])).glob("shard-*.safetensors"))
    assert len(shards) == math.ceil(n / 64) > 2
    first = cache.load(teacher, task.splits["train"])
    assert first.ids.shape == (n, 8) and first.logp.shape == (n, 8)
    # spans cover every byte of each document, in order
    offset = 0
    for document, count in zip(task.splits["train"].documents, first.doc_tokens):
        spans = first.spans[offset:offset + count]
        assert spans[0, 0] == 0 and spans[-1, 1] == len(document.encode()) and (spans[1:, 0] == spans[:-1, 1]).all()
        offset += count

    shards[1].unlink()  # lost
    shards[2].write_bytes(shards[2].read_bytes()[:-7] + b"garbage")  # damaged
    calls = []
    original = teacher.token_logits
    teacher.token_logits = lambda ids: calls.append(len(ids)) or original(ids)
    cache.store.drop_entry_info(cache.key(teacher, task.splits["train"]))
    with pytest.warns(UserWarning, match="recomputing"):
        again = cache.ensure(teacher, task.splits["train"])
    assert calls and again["n"] == n
    second = cache.load(teacher, task.splits["train"])
    torch.testing.assert_close(second.logp, first.logp)
    torch.testing.assert_close(second.ids, first.ids)
    calls.clear()
    cache.ensure(teacher, task.splits["train"])
    assert calls == []  # a complete, verified entry is reused


def test_bytes_per_kept_entry_stay_under_5(lm_world, tmp_path):
    task = load_task(lm_world.task)
    teacher = load_zoo(lm_world.zoo).teachers()[0]
    info = TopKCache(tmp_path / "cache", k=32, progress=False).ensure(teacher, task.splits["train"])
    per_token = info["bytes_on_disk"] / info["n"]
    assert per_token / 32 <= 5
    assert info["reconstruction_kl"] >= 0 and math.isfinite(info["bits_per_byte"])
