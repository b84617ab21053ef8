"""``dc``: gradient matching (Zhao, Mopuri & Bilen 2021, "Dataset Condensation with Gradient Matching").

On each freshly initialised network, for ``net_steps + 1`` rounds: per class, the gradient of the
cross-entropy on the synthetic images with respect to every weight is brought towards that on a
mini-batch of real images, by the paper's layer-wise distance (eq. 10: 1 - cosine per output unit,
summed); between rounds the network takes one SGD step on the synthetic set, so later rounds match
gradients along a training trajectory. For comparison with the embedding-matching methods.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdistill.condense.context import CondenseContext
from xdistill.condense.matching import MatchBatch, run_matching
from xdistill.condense.registry import CONDENSE_METHODS, CondensedImages, CondenseMethod
from xdistill.condense.embedders import normalise

ITERATIONS = 20  # networks on a CPU; the paper uses 1,000 outer loops
LR_IMAGES = 0.1  # the paper's
NETWORK_LR = 0.01  # the paper's lr of the network between rounds


def gradient_distance(real: list[Tensor], synthetic: list[Tensor]) -> Tensor:
    """Sum over layers of sum over output units of (1 - cos(real gradient, synthetic gradient)).
    Biases and norm parameters (1-D) are skipped, as in the paper's code."""
    total = torch.zeros((), device=synthetic[0].device)
    for g_real, g_synthetic in zip(real, synthetic):
        if g_real.dim() == 1:
            continue
        a, b = g_real.flatten(1), g_synthetic.flatten(1)
        total = total + (1 - F.cosine_similarity(a, b, dim=1, eps=1e-6)).sum()
    return total


def dc_loss(network: nn.Module, batch: MatchBatch) -> Tensor:
    params = [p for p in network.parameters() if p.requires_grad]
    total = torch.zeros((), device=batch.synthetic.device)
    for c in range(batch.num_classes):
        real_rows, synthetic_rows = batch.real_labels == c, batch.synthetic_labels == c
        real_loss = F.cross_entropy(network(batch.real[real_rows]), batch.real_labels[real_rows])
        real_grads = [g.detach() for g in torch.autograd.grad(real_loss, params)]
        synthetic_loss = F.cross_entropy(network(batch.synthetic[synthetic_rows]), batch.synthetic_labels[synthetic_rows])
        synthetic_grads = torch.autograd.grad(synthetic_loss, params, create_graph=True)
        total = total + gradient_distance(real_grads, list(synthetic_grads))
    return total


def train_network_on(network: nn.Module, synthetic: Tensor, labels: Tensor) -> None:
    """One SGD step of the network on the synthetic set (the inner loop between matchings)."""
    optimiser = torch.optim.SGD(network.parameters(), lr=NETWORK_LR)
    loss = F.cross_entropy(network(normalise(synthetic)), labels.to(synthetic.device))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    optimiser.zero_grad()


def gradient_matching(ctx: CondenseContext) -> CondensedImages:
    return run_matching(ctx, dc_loss, ctx.iterations(ITERATIONS), ctx.lr_images(LR_IMAGES), "dc",
                        rounds=ctx.config.net_steps + 1, between_rounds=train_network_on, frozen_network=False)


CONDENSE_METHODS.register("dc", CondenseMethod(
    role="images", summary="gradient matching: per-class weight gradients on real and synthetic images (for comparison)",
    citation="Zhao, Mopuri & Bilen 2021, Dataset Condensation with Gradient Matching", make=gradient_matching,
    iterations=ITERATIONS, paper_iterations="1,000 outer loops x 1-50 inner steps, ConvNet width 128",
    lr_images=LR_IMAGES))
