"""``herding``: the real images whose running mean tracks the class mean in feature space (a coreset)."""

from __future__ import annotations

from xdistill.condense.context import CondenseContext
from xdistill.condense.coreset import coreset, herding
from xdistill.condense.registry import CONDENSE_METHODS, CondensedImages, CondenseMethod


def herding_images(ctx: CondenseContext) -> CondensedImages:
    return coreset(ctx, herding)


CONDENSE_METHODS.register("herding", CondenseMethod(
    role="images", summary="herding coreset: real images whose running mean tracks the class mean (features=random or teacher)",
    citation="Welling 2009, Herding dynamical weights to learn", make=herding_images))
