"""``datadam``: attention matching (Sajedi et al. 2023, "DataDAM: Efficient Dataset Distillation with
Attention Matching").

Beside distribution matching's final embeddings (the MMD term), the spatial attention maps of the
network's intermediate layers are matched: for a feature map f [N, C, h, w], a(f) = sum_c |f_c|^p
flattened to [N, h*w] and L2-normalised per image (eq. 2 of the paper); per class, the mean map of the
real images and that of the synthetic ones are compared by squared distance, summed over layers and
classes (the SAM term). Loss = MMD + attention_weight * SAM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xdistill.condense.context import CondenseContext
from xdistill.condense.embedders import activation_modules, intermediate_maps
from xdistill.condense.matching import MatchBatch, class_means, run_matching
from xdistill.condense.methods.dm import embedding_distance
from xdistill.condense.registry import CONDENSE_METHODS, CondensedImages, CondenseMethod

ITERATIONS = 200  # CPU default; the paper runs 8,000-20,000
LR_IMAGES = 0.1  # as dm


def attention_map(features: Tensor, power: int) -> Tensor:
    """[N, C, h, w] -> [N, h*w]: sum_c |f_c|^p, L2-normalised per image."""
    return F.normalize(features.abs().pow(power).sum(dim=1).flatten(1), dim=1)


def attention_distance(real_maps: list[Tensor], real_labels: Tensor, synthetic_maps: list[Tensor],
                       synthetic_labels: Tensor, num_classes: int, power: int) -> Tensor:
    """sum over layers and classes of || mean a(real of c) - mean a(synthetic of c) ||^2."""
    total = torch.zeros((), device=synthetic_maps[0].device)
    for real, synthetic in zip(real_maps, synthetic_maps):
        difference = (class_means(attention_map(real, power), real_labels, num_classes)
                      - class_means(attention_map(synthetic, power), synthetic_labels, num_classes))
        total = total + (difference ** 2).sum()
    return total


def datadam_loss(weight: float, power: int):
    def loss(network: nn.Module, batch: MatchBatch) -> Tensor:
        layers = activation_modules(network)[:-1]  # the intermediate layers; the last one feeds the embedding
        with intermediate_maps(network, layers) as take:
            with torch.no_grad():
                real = network.forward_features(batch.real)
                real_maps = take()
            synthetic = network.forward_features(batch.synthetic)
            synthetic_maps = take()
        mmd = embedding_distance(real, batch.real_labels, synthetic, batch.synthetic_labels, batch.num_classes)
        if not layers or weight == 0:
            return mmd
        sam = attention_distance(real_maps, batch.real_labels, synthetic_maps, batch.synthetic_labels,
                                 batch.num_classes, power)
        return mmd + weight * sam

    return loss


def attention_matching(ctx: CondenseContext) -> CondensedImages:
    cfg = ctx.config
    return run_matching(ctx, datadam_loss(cfg.attention_weight, cfg.attention_power), ctx.iterations(ITERATIONS),
                        ctx.lr_images(LR_IMAGES), "datadam")


CONDENSE_METHODS.register("datadam", CondenseMethod(
    role="images", summary="attention matching: intermediate attention maps and final embeddings (flip=true: FYI)",
    citation="Sajedi et al. 2023, DataDAM: Efficient Dataset Distillation with Attention Matching",
    make=attention_matching, iterations=ITERATIONS,
    paper_iterations="8,000-20,000 iterations, real batch 128-256 per class, ConvNet width 128", lr_images=LR_IMAGES))
