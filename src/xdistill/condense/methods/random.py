"""``random``: real images drawn uniformly per class, the baseline every condensation is measured against."""

from __future__ import annotations

import numpy as np

from xdistill.condense.context import CondenseContext
from xdistill.condense.registry import CONDENSE_METHODS, CondensedImages, CondenseMethod


def random_real(ctx: CondenseContext) -> CondensedImages:
    rng = ctx.rng(1)
    chosen = np.concatenate([ctx.pool.sample(c, ctx.config.ipc, rng) for c in range(ctx.num_classes)])
    return CondensedImages(ctx.pool.images(chosen).numpy(), ctx.class_major_labels(),
                           {"pool_positions": chosen.tolist()})


CONDENSE_METHODS.register("random", CondenseMethod(
    role="images", summary="random real images of each class (the baseline)", citation="", make=random_real))
