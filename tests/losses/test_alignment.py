"""Layout projectors (xdistill.losses.alignment): tokens from feature maps and back, and the pool and
attention projectors against per-sample loops written from their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.losses import feature_mse_loss
from xdistill.losses.alignment import (
    AttentionProjector,
    PoolProjector,
    as_feature_map,
    as_tokens,
    layout_shape,
    layout_tokens,
    make_layout_projector,
    token_shape,
)

# float64 throughout: a few hundred products and one softmax per weight, well inside 1e-10.
TOL = {"rtol": 1e-10, "atol": 1e-12}


def test_feature_map_becomes_row_major_tokens_and_back():
    fmap = torch.arange(2 * 3 * 2 * 4, dtype=torch.float64).reshape(2, 3, 2, 4)
    tokens = as_tokens(fmap)
    assert tokens.shape == (2, 8, 3)
    # token (h, w) of sample n is the C-vector fmap[n, :, h, w]
    for n in range(2):
        for h in range(2):
            for w in range(4):
                assert torch.equal(tokens[n, h * 4 + w], fmap[n, :, h, w])
    back = as_feature_map(tokens)
    assert back.shape == (2, 3, 2, 4)
    assert torch.equal(back, fmap)
    seq = torch.randn(2, 5, 7)
    assert as_tokens(seq) is seq
    assert token_shape((3, 2, 4)) == (8, 3) and token_shape((5, 7)) == (5, 7)


def test_a_stage_of_another_rank_is_refused_by_name():
    with pytest.raises(XDistillError, match=r"\[N, C, H, W\] or tokens \[N, T, D\]. Got shape \[2, 3\]"):
        as_tokens(torch.zeros(2, 3))


def _literal_attention(proj: AttentionProjector, stage: torch.Tensor) -> torch.Tensor:
    """out = W_o concat_{q, h} sum_t softmax_t(q_{q,h} . k_{t,h} / sqrt(d_h)) v_{t,h} + b_o, one sample at a time."""
    tokens = as_tokens(stage)
    heads, queries = proj.heads, proj.queries.shape[0]
    width = proj.queries.shape[1]
    dh = width // heads
    outs = []
    for n in range(tokens.shape[0]):
        x = [torch.nn.functional.layer_norm(tok, tok.shape, proj.norm.weight, proj.norm.bias, proj.norm.eps)
             + proj.position[0, t] for t, tok in enumerate(tokens[n])]
        keys = [proj.key.weight @ xt + proj.key.bias for xt in x]
        values = [proj.value.weight @ xt + proj.value.bias for xt in x]
        gathered = []
        for q in range(queries):
            for h in range(heads):
                part = slice(h * dh, (h + 1) * dh)
                scores = [float(proj.queries[q, part] @ k[part]) / math.sqrt(dh) for k in keys]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                gathered.append(sum(w / total * v[part] for w, v in zip(weights, values)))
        outs.append(proj.out.weight @ torch.cat(gathered) + proj.out.bias)
    return torch.stack(outs)


@pytest.mark.parametrize("stage_shape", [(3, 2, 2), (5, 6)])
def test_attention_projector_matches_its_formula(stage_shape):
    torch.manual_seed(0)
    tokens, dim = token_shape(stage_shape)
    proj = AttentionProjector(tokens, dim, teacher_dim=4, queries=3, width=8, heads=2).double()
    with torch.no_grad():  # non-trivial layer norm, position and query values
        proj.norm.weight.uniform_(0.5, 1.5)
        proj.norm.bias.uniform_(-0.3, 0.3)
        proj.position.normal_(0, 0.5)
        proj.queries.normal_(0, 1.0)
    stage = torch.randn(2, *stage_shape, dtype=torch.float64)
    got = proj(stage)
    assert got.shape == (2, 4)
    with torch.no_grad():
        expected = _literal_attention(proj, stage)
    torch.testing.assert_close(got, expected, **TOL)


def test_pool_projector_matches_its_formula():
    torch.manual_seed(1)
    proj = PoolProjector(3, 5).double()
    stage = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    expected = []
    for n in range(2):
        tokens = [stage[n, :, h, w] for h in range(2) for w in range(2)]
        normed = [(t - t.mean()) / torch.sqrt(t.var(unbiased=False) + proj.norm.eps) * proj.norm.weight
                  + proj.norm.bias for t in tokens]
        expected.append(proj.linear.weight @ (sum(normed) / len(normed)) + proj.linear.bias)
    torch.testing.assert_close(proj(stage), torch.stack(expected), **TOL)


def test_attention_projector_sees_positions_only_through_its_position_embedding():
    """With the position embedding zeroed, the attention projector is invariant to a permutation of the
    feature map's positions (attention pools a set); a linear map of the flattened map would not be."""
    torch.manual_seed(2)
    proj = make_layout_projector("attention", (4, 3, 3), 6).double()
    with torch.no_grad():
        proj.position.zero_()
    stage = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    order = torch.randperm(9)
    shuffled = as_feature_map(as_tokens(stage)[:, order])
    torch.testing.assert_close(proj(stage), proj(shuffled), **TOL)


def test_feature_losses_take_a_stage_through_a_layout_projector():
    torch.manual_seed(3)
    stage, teacher = torch.randn(4, 6, 5), torch.randn(4, 3)
    proj = make_layout_projector("pool", (6, 5), 3)
    loss = feature_mse_loss(stage, teacher, proj)["loss"]
    expected = ((proj(stage) - teacher) ** 2).mean(dim=1).mean()
    torch.testing.assert_close(loss, expected)
    wrong = make_layout_projector("pool", (6, 5), 2)
    with pytest.raises(XDistillError, match=r"make_layout_projector\(kind, \(6, 5\), 3\)"):
        feature_mse_loss(stage, teacher, wrong)
    with pytest.raises(XDistillError, match="Unknown layout projector 'conv'"):
        make_layout_projector("conv", (6, 5), 3)


def test_layout_tokens_put_the_pooled_features_first():
    features, fmap = torch.randn(2, 3), torch.randn(2, 3, 2, 2)
    tokens = layout_tokens(features, fmap)
    assert tokens.shape == (2, 5, 3)
    assert torch.equal(tokens[:, 0], features) and torch.equal(tokens[:, 1:], as_tokens(fmap))
    assert layout_shape((3, 2, 2), 3) == (5, 3)
    # a stage of another width than the features: its tokens alone
    assert torch.equal(layout_tokens(torch.randn(2, 4), fmap), as_tokens(fmap))
    assert layout_shape((3, 2, 2), 4) == (4, 3)
