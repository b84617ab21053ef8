"""Layout projectors (xdistill.losses.alignment): tokens from feature maps and back, the layout and the stage
each projector reads, the pool and attention projectors against per-sample loops written from their formulas,
and the attention projector's start as the linear projector, on the run's random stream."""

from __future__ import annotations

import math

import pytest
import torch

from xdistill.errors import XDistillError
from xdistill.losses import feature_mse_loss, make_projector
from xdistill.losses.alignment import (
    AttentionProjector,
    as_feature_map,
    as_tokens,
    branch_seed,
    layout,
    layout_shape,
    make_layout_projector,
    read_stage,
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


def _literal_attention(proj: AttentionProjector, rows: torch.Tensor) -> torch.Tensor:
    """out = W_f f + b_f + W_o concat_{q, h} sum_t softmax_t(q_{q,h} . k_{t,h} / sqrt(d_h)) v_{t,h} + b_o, one sample
    at a time, f the first Df numbers of the row and the tokens the next T blocks of Ds."""
    features_dim, count, dim = proj.layout_shape
    branch = proj.branch
    heads, queries = branch.heads, branch.queries.shape[0]
    dh = branch.queries.shape[1] // heads
    outs = []
    for n in range(rows.shape[0]):
        pooled = rows[n, :features_dim]
        tokens = [rows[n, features_dim + t * dim:features_dim + (t + 1) * dim] for t in range(count)]
        x = [(tok - tok.mean()) / torch.sqrt(tok.var(unbiased=False) + branch.norm.eps) * branch.norm.weight
             + branch.norm.bias + branch.position[0, t] for t, tok in enumerate(tokens)]
        keys = [branch.key.weight @ xt + branch.key.bias for xt in x]
        values = [branch.value.weight @ xt + branch.value.bias for xt in x]
        gathered = []
        for q in range(queries):
            for h in range(heads):
                part = slice(h * dh, (h + 1) * dh)
                scores = [float(branch.queries[q, part] @ k[part]) / math.sqrt(dh) for k in keys]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                gathered.append(sum(w / total * v[part] for w, v in zip(weights, values)))
        linear = proj.linear.weight @ pooled + proj.linear.bias
        outs.append(linear + branch.out.weight @ torch.cat(gathered) + branch.out.bias)
    return torch.stack(outs)


def _trained_branch(proj: AttentionProjector) -> AttentionProjector:
    """Non-trivial layer norm, position, query and output values (the output layer starts at zero)."""
    with torch.no_grad():
        proj.branch.norm.weight.uniform_(0.5, 1.5)
        proj.branch.norm.bias.uniform_(-0.3, 0.3)
        proj.branch.position.normal_(0, 0.5)
        proj.branch.queries.normal_(0, 1.0)
        proj.branch.out.weight.normal_(0, 0.3)
        proj.branch.out.bias.normal_(0, 0.3)
    return proj


@pytest.mark.parametrize(("features_dim", "stage_shape"), [(6, (3, 2, 2)), (6, (5, 6))])
def test_attention_projector_matches_its_formula(features_dim, stage_shape):
    """Pooled features of another width than the stage (a CNN's stage before the last) and of the same (a ViT)."""
    torch.manual_seed(0)
    shape = layout_shape(features_dim, stage_shape)
    proj = _trained_branch(AttentionProjector(shape, teacher_dim=4, seed=1, queries=3, width=8, heads=2).double())
    rows = layout(torch.randn(2, features_dim, dtype=torch.float64), torch.randn(2, *stage_shape, dtype=torch.float64))
    got = proj(rows)
    assert got.shape == (2, 4)
    with torch.no_grad():
        expected = _literal_attention(proj, rows)
    torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize(("features_dim", "stage_shape"), [(16, (8, 3, 3)), (8, (9, 8))])  # a CNN's, a ViT's
def test_untrained_attention_projector_is_the_linear_projector(features_dim, stage_shape):
    """The branch's output layer starts at zero, so the projector starts as the linear projector on the pooled
    features, with the weights the same seed gives ``make_projector``."""
    features, stage = torch.randn(5, features_dim), torch.randn(5, *stage_shape)
    torch.manual_seed(4)
    linear = make_projector(features_dim, 6)
    torch.manual_seed(4)
    proj = make_layout_projector("attention", layout_shape(features_dim, stage_shape), 6, seed=7)
    got = proj(layout(features, stage))
    assert got.shape == (5, 6)
    expected = features @ linear.weight.detach().T + linear.bias.detach()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)  # float32 products of width <= 16


def test_attention_branch_draws_from_its_own_seed_and_leaves_the_run_stream_alone():
    """Building the branch moves the global random stream no further than building the linear projector does,
    and its weights depend on its seed alone."""
    shape = layout_shape(8, (9, 8))
    torch.manual_seed(11)
    make_projector(8, 6)
    after_linear = torch.rand(4)
    torch.manual_seed(11)
    first = make_layout_projector("attention", shape, 6, seed=branch_seed(3, 0))
    assert torch.equal(torch.rand(4), after_linear)
    torch.manual_seed(12)  # another run stream: another linear path, the same branch
    again = make_layout_projector("attention", shape, 6, seed=branch_seed(3, 0))
    other = make_layout_projector("attention", shape, 6, seed=branch_seed(3, 1))
    assert not torch.equal(first.linear.weight, again.linear.weight)
    for name, value in first.branch.state_dict().items():
        assert torch.equal(value, again.branch.state_dict()[name]), name
    assert not torch.equal(first.branch.queries, other.branch.queries)
    assert len({branch_seed(s, i) for s in range(3) for i in range(3)}) == 9
    assert all(0 <= branch_seed(s, i) < 2 ** 63 for s in (0, 2 ** 63 - 1) for i in range(3))


def test_attention_projectors_branch_learns_from_the_first_step():
    """One optimiser step on a feature loss moves the zero-initialised output layer, which makes the branch's
    output non-zero; from the second step its keys, values, queries and position receive gradients too."""
    torch.manual_seed(5)
    stage, features, teacher = torch.randn(8, 4, 3, 3), torch.randn(8, 8), torch.randn(8, 5)
    rows = layout(features, stage)
    proj = make_layout_projector("attention", layout_shape(8, (4, 3, 3)), 5)
    optimiser = torch.optim.SGD(proj.parameters(), lr=0.1)
    grads = []
    for _ in range(2):
        optimiser.zero_grad()
        feature_mse_loss(rows, teacher, proj)["loss"].backward()
        grads.append({name: p.grad.abs().max().item() for name, p in proj.named_parameters()})
        optimiser.step()
    assert grads[0]["branch.out.weight"] > 0 and grads[0]["linear.weight"] > 0
    assert grads[0]["branch.key.weight"] == 0 and grads[0]["branch.queries"] == 0  # behind a zero layer at first
    for name in ("key.weight", "value.weight", "queries", "position", "norm.weight"):
        assert grads[1][f"branch.{name}"] > 0, name
    with torch.no_grad():
        assert proj.branch(as_tokens(stage)).abs().max() > 1e-4


def test_layout_projectors_refuse_a_layout_of_another_shape():
    proj = make_layout_projector("attention", layout_shape(4, (4, 3, 3)), 5)
    with pytest.raises(XDistillError, match=r"built for layout_shape \(4, 9, 4\) reads a layout \[N, 40\]"
                                            r" \(Df \+ T \* Ds\). Got shape \[2, 4, 3, 3\]"):
        proj(torch.randn(2, 4, 3, 3))
    with pytest.raises(XDistillError, match=r"Got shape \[2, 36\]"):
        make_layout_projector("pool", layout_shape(4, (4, 3, 3)), 5)(torch.randn(2, 36))
    with pytest.raises(XDistillError, match=r"shape \(Df, T, Ds\), each >= 1"):
        make_layout_projector("attention", (10, 4), 5)
    with pytest.raises(XDistillError, match="Unknown layout projector 'conv'"):
        make_layout_projector("conv", (3, 6, 5), 3)


@pytest.mark.parametrize("features_dim", [3, 4])  # the last stage's width (every student), or another
def test_pool_projector_matches_its_formula(features_dim):
    torch.manual_seed(1)
    proj = make_layout_projector("pool", layout_shape(features_dim, (3, 2, 2)), 5).double()
    features, stage = torch.randn(2, features_dim, dtype=torch.float64), torch.randn(2, 3, 2, 2, dtype=torch.float64)
    expected = []
    for n in range(2):
        tokens = [stage[n, :, h, w] for h in range(2) for w in range(2)]
        first = features[n] if features_dim == 3 else sum(tokens) / len(tokens)
        normed = [(t - t.mean()) / torch.sqrt(t.var(unbiased=False) + proj.norm.eps) * proj.norm.weight
                  + proj.norm.bias for t in [first, *tokens]]
        expected.append(proj.linear.weight @ (sum(normed) / len(normed)) + proj.linear.bias)
    torch.testing.assert_close(proj(layout(features, stage)), torch.stack(expected), **TOL)


def test_attention_projector_sees_positions_only_through_its_position_embedding():
    """With the position embedding zeroed, the attention projector is invariant to a permutation of the
    feature map's positions (attention pools a set); a linear map of the flattened map would not be."""
    torch.manual_seed(2)
    proj = _trained_branch(make_layout_projector("attention", layout_shape(8, (4, 3, 3)), 6).double())
    with torch.no_grad():
        proj.branch.position.zero_()
    features, stage = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 4, 3, 3, dtype=torch.float64)
    order = torch.randperm(9)
    shuffled = as_feature_map(as_tokens(stage)[:, order])
    torch.testing.assert_close(proj(layout(features, stage)), proj(layout(features, shuffled)), **TOL)


def test_feature_losses_take_a_layout_through_a_layout_projector():
    torch.manual_seed(3)
    rows, teacher = layout(torch.randn(4, 5), torch.randn(4, 6, 5)), torch.randn(4, 3)
    proj = make_layout_projector("pool", (5, 6, 5), 3)
    loss = feature_mse_loss(rows, teacher, proj)["loss"]
    expected = ((proj(rows) - teacher) ** 2).mean(dim=1).mean()
    torch.testing.assert_close(loss, expected)
    wrong = make_layout_projector("attention", (5, 6, 5), 2)
    with pytest.raises(XDistillError, match=r"make_layout_projector\(kind, \(5, 6, 5\), 3\)"):
        feature_mse_loss(rows, teacher, wrong)


def test_layout_puts_the_pooled_features_first_then_the_tokens():
    features, fmap = torch.randn(2, 4), torch.randn(2, 3, 2, 2)
    rows = layout(features, fmap)
    assert rows.shape == (2, 4 + 4 * 3)
    assert torch.equal(rows[:, :4], features)
    assert torch.equal(rows[:, 4:].reshape(2, 4, 3), as_tokens(fmap))
    assert layout_shape(4, (3, 2, 2)) == (4, 4, 3) and layout_shape(5, (6, 5)) == (5, 6, 5)


def test_attention_reads_the_stage_before_the_last_and_pool_the_last():
    stages = ["first", "second", "last"]
    assert read_stage("attention", stages) == "second" and read_stage("pool", stages) == "last"
    assert read_stage("attention", ["only"]) == "only" and read_stage("pool", ["only"]) == "only"
    with pytest.raises(XDistillError, match="Unknown layout projector 'linear'"):
        read_stage("linear", stages)
    with pytest.raises(XDistillError, match="returned none"):
        read_stage("attention", [])
