"""``kcenter``: real images chosen farthest-first in feature space (a coreset covering each class)."""

from __future__ import annotations

from xdistill.condense.context import CondenseContext
from xdistill.condense.coreset import coreset, k_center
from xdistill.condense.registry import CONDENSE_METHODS, CondensedImages, CondenseMethod


def kcenter_images(ctx: CondenseContext) -> CondensedImages:
    return coreset(ctx, k_center)


CONDENSE_METHODS.register("kcenter", CondenseMethod(
    role="images", summary="k-center coreset: real images chosen farthest-first in feature space (features=random or teacher)",
    citation="Sener & Savarese 2018, Active learning for CNNs: a core-set approach", make=kcenter_images))
