"""Coresets: real images chosen per class in a feature space, the baselines matching must beat.

The feature space is a freshly initialised network's embedding (``features=random``, the embedder of the
matching methods, so the comparison with them is like for like) or the best-ranked teacher's cached
features (``features=teacher``). Herding (Welling 2009, as used by Rebuffi et al. 2017 and the
dataset-condensation papers) greedily picks the image that keeps the running mean of the chosen ones
closest to the class mean; k-center (Sener & Savarese 2018) greedily picks the image farthest from those
already chosen, starting from the one nearest the class mean.
"""

from __future__ import annotations

import numpy as np
import torch

from xdistill.condense.context import CondenseContext
from xdistill.condense.embedders import normalise, random_network
from xdistill.condense.registry import CondensedImages

FEATURE_BATCH = 256  # pool images embedded at a time
FEATURE_SEED = 0x5EED  # the random network of features=random (one fixed network per run seed)


def pool_features(ctx: CondenseContext) -> np.ndarray:
    """[M, D] float64 features of every pool image in the configured feature space."""
    cfg, pool = ctx.config, ctx.pool
    if cfg.features == "teacher":
        prepared = ctx.prepared
        teacher = prepared.teacher(prepared.ranking.ordered()[0].name)
        parts = []
        for p, split in enumerate(pool.splits):
            rows = pool.row[pool.part == p]
            parts.append((np.flatnonzero(pool.part == p), prepared.cache.load_rows(teacher, split, rows).features))
        out = np.empty((len(pool), parts[0][1].shape[1]), dtype=np.float64)
        for positions, features in parts:
            out[positions] = features
        return out
    network = random_network(cfg.embedder, ctx.input_shape, ctx.num_classes, cfg.embedder_width,
                             FEATURE_SEED + cfg.seed).eval().to(cfg.device)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(pool), FEATURE_BATCH):
            images = pool.images(np.arange(start, min(start + FEATURE_BATCH, len(pool))))
            chunks.append(network.forward_features(normalise(images).to(cfg.device)).double().cpu().numpy())
    return np.concatenate(chunks)


def herding(features: np.ndarray, k: int) -> np.ndarray:
    """Indices (into ``features`` [n, D]) of ``k`` rows whose running mean tracks the mean of all rows."""
    mean = features.mean(axis=0)
    chosen: list[int] = []
    total = np.zeros_like(mean)
    available = np.ones(len(features), dtype=bool)
    for t in range(1, k + 1):
        distance = np.linalg.norm(mean[None] - (total[None] + features) / t, axis=1)
        distance[~available] = np.inf
        pick = int(np.argmin(distance))
        chosen.append(pick)
        available[pick] = False
        total += features[pick]
    return np.asarray(chosen, dtype=np.int64)


def k_center(features: np.ndarray, k: int) -> np.ndarray:
    """Indices of ``k`` rows chosen farthest-first, starting from the row nearest the mean."""
    first = int(np.argmin(np.linalg.norm(features - features.mean(axis=0), axis=1)))
    chosen = [first]
    nearest = np.linalg.norm(features - features[first], axis=1)
    for _ in range(k - 1):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(features - features[pick], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def coreset(ctx: CondenseContext, choose) -> CondensedImages:
    """Per class, ``choose(features of the class [n, D], ipc)`` -> positions; the images at those positions."""
    features = pool_features(ctx)
    positions = []
    for c in range(ctx.num_classes):
        members = ctx.pool.members(c)
        positions.append(members[choose(features[members], ctx.config.ipc)])
    chosen = np.concatenate(positions)
    return CondensedImages(ctx.pool.images(chosen).numpy(), ctx.class_major_labels(),
                           {"features": ctx.config.features, "pool_positions": chosen.tolist()})
