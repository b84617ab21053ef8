"""Layout projectors (xdistill.losses.alignment): tokens from feature maps and back, and the pool and
attention projectors against per-sample loops written from their formulas, and the attention projector's
start as the linear projector."""

from __future__ import annotations

import math

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.losses import feature_mse_loss, make_projector
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


def _literal_attention(proj: AttentionProjector, layout: torch.Tensor) -> torch.Tensor:
    """out = W_f f + b_f + W_o concat_{q, h} sum_t softmax_t(q_{q,h} . k_{t,h} / sqrt(d_h)) v_{t,h} + b_o, one sample
    at a time, f the first token and the sum over the others."""
    heads, queries = proj.heads, proj.queries.shape[0]
    width = proj.queries.shape[1]
    dh = width // heads
    outs = []
    for n in range(layout.shape[0]):
        pooled, tokens = layout[n, 0], layout[n, 1:]
        x = [torch.nn.functional.layer_norm(tok, tok.shape, proj.norm.weight, proj.norm.bias, proj.norm.eps)
             + proj.position[0, t] for t, tok in enumerate(tokens)]
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
        linear = proj.linear.weight @ pooled + proj.linear.bias
        outs.append(linear + proj.out.weight @ torch.cat(gathered) + proj.out.bias)
    return torch.stack(outs)


def _trained_branch(proj: AttentionProjector) -> AttentionProjector:
    """Non-trivial layer norm, position, query and output values (the output layer starts at zero)."""
    with torch.no_grad():
        proj.norm.weight.uniform_(0.5, 1.5)
        proj.norm.bias.uniform_(-0.3, 0.3)
        proj.position.normal_(0, 0.5)
        proj.queries.normal_(0, 1.0)
        proj.out.weight.normal_(0, 0.3)
        proj.out.bias.normal_(0, 0.3)
    return proj


@pytest.mark.parametrize("stage_shape", [(3, 2, 2), (5, 6)])
def test_attention_projector_matches_its_formula(stage_shape):
    torch.manual_seed(0)
    tokens, dim = token_shape(stage_shape)
    proj = _trained_branch(AttentionProjector(tokens, dim, teacher_dim=4, queries=3, width=8, heads=2).double())
    layout = layout_tokens(torch.randn(2, dim, dtype=torch.float64), torch.randn(2, *stage_shape, dtype=torch.float64))
    got = proj(layout)
    assert got.shape == (2, 4)
    with torch.no_grad():
        expected = _literal_attention(proj, layout)
    torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize("stage_shape", [(8, 3, 3), (9, 8)])  # a CNN's map (C, H, W), a ViT's tokens (T, D)
def test_untrained_attention_projector_is_the_linear_projector(stage_shape):
    """The branch's output layer starts at zero, so the projector starts as the linear projector on the pooled
    features, with the weights the same seed gives ``make_projector``."""
    _, dim = token_shape(stage_shape)
    features, stage = torch.randn(5, dim), torch.randn(5, *stage_shape)
    torch.manual_seed(4)
    linear = make_projector(dim, 6)
    torch.manual_seed(4)
    proj = make_layout_projector("attention", layout_shape(stage_shape), 6)
    got = proj(layout_tokens(features, stage))
    assert got.shape == (5, 6)
    expected = features @ linear.weight.detach().T + linear.bias.detach()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)  # float32 products of width <= 9


def test_attention_projectors_branch_learns_from_the_first_step():
    """One optimiser step on a feature loss moves the zero-initialised output layer, which makes the branch's
    output non-zero; from the second step its keys, values, queries and position receive gradients too."""
    torch.manual_seed(5)
    stage, features, teacher = torch.randn(8, 4, 3, 3), torch.randn(8, 4), torch.randn(8, 5)
    layout = layout_tokens(features, stage)
    proj = make_layout_projector("attention", layout_shape((4, 3, 3)), 5)
    optimiser = torch.optim.SGD(proj.parameters(), lr=0.1)
    grads = []
    for _ in range(2):
        optimiser.zero_grad()
        feature_mse_loss(layout, teacher, proj)["loss"].backward()
        grads.append({name: p.grad.abs().max().item() for name, p in proj.named_parameters()})
        optimiser.step()
    assert grads[0]["out.weight"] > 0 and grads[0]["linear.weight"] > 0
    assert grads[0]["key.weight"] == 0 and grads[0]["queries"] == 0  # behind a zero layer at the first step
    for name in ("key.weight", "value.weight", "queries", "position", "norm.weight"):
        assert grads[1][name] > 0, name
    with torch.no_grad():
        assert proj.branch(layout[:, 1:]).abs().max() > 1e-4


def test_attention_projector_refuses_a_stage_without_its_pooled_token():
    proj = make_layout_projector("attention", layout_shape((4, 3, 3)), 5)
    with pytest.raises(XDistillError, match=r"layout tokens \[N, 1 \+ T, D\] with T = 9. Got shape \[2, 4, 3, 3\]"):
        proj(torch.randn(2, 4, 3, 3))
    with pytest.raises(XDistillError, match=r"shape \(1 \+ T, D\), T >= 1"):
        make_layout_projector("attention", (4, 3, 3), 5)


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
    proj = _trained_branch(make_layout_projector("attention", layout_shape((4, 3, 3)), 6).double())
    with torch.no_grad():
        proj.position.zero_()
    features, stage = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, 3, 3, dtype=torch.float64)
    order = torch.randperm(9)
    shuffled = as_feature_map(as_tokens(stage)[:, order])
    torch.testing.assert_close(proj(layout_tokens(features, stage)), proj(layout_tokens(features, shuffled)), **TOL)


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
    with pytest.raises(XDistillError, match=r"make_layout_projector\(kind, layout_shape\(\(6, 2, 2\)\), 3\)"):
        feature_mse_loss(torch.randn(4, 6, 2, 2), teacher, make_layout_projector("pool", layout_shape((6, 2, 2)), 2))
    with pytest.raises(XDistillError, match="Unknown layout projector 'conv'"):
        make_layout_projector("conv", (6, 5), 3)


def test_layout_tokens_put_the_pooled_features_first():
    features, fmap = torch.randn(2, 3), torch.randn(2, 3, 2, 2)
    tokens = layout_tokens(features, fmap)
    assert tokens.shape == (2, 5, 3)
    assert torch.equal(tokens[:, 0], features) and torch.equal(tokens[:, 1:], as_tokens(fmap))
    assert layout_shape((3, 2, 2)) == (5, 3) and layout_shape((6, 5)) == (7, 5)
    # pooled features of another width than the stage: the mean of the stage's tokens stands in for them
    other = layout_tokens(torch.randn(2, 4), fmap)
    assert torch.equal(other[:, 1:], as_tokens(fmap))
    torch.testing.assert_close(other[:, 0], fmap.mean(dim=(2, 3)), rtol=1e-6, atol=1e-7)
