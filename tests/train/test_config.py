from __future__ import annotations

import pytest

from xdistill.config import resolve
from xdistill.errors import XDistillError
from xdistill.train.config import DistillConfig


def test_weighted_mixes_by_gating_unless_told_otherwise():
    assert DistillConfig().mix == "gated"
    assert resolve(DistillConfig, overrides=["mix=average"]).mix == "average"


def test_unknown_mix_is_refused_with_the_choices():
    with pytest.raises(XDistillError, match="'mix' must be one of gated, average. Got 'hard'."):
        resolve(DistillConfig, overrides=["mix=hard"])
