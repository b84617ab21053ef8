"""Typed configs: defaults live in the dataclasses, values are checked by their own problems(),
and a key that was renamed names its new name."""

from __future__ import annotations

import pytest
import yaml

from xdistill.config import resolve
from xdistill.errors import ConfigError
from xdistill.select.config import RankConfig, SelectionConfig
from xdistill.train.config import DistillConfig


def test_an_old_key_says_what_it_was_renamed_to(tmp_path):
    with pytest.raises(ConfigError, match="The key 'temperature' was renamed to 'kd_temperature'"):
        resolve(DistillConfig, overrides=["temperature=2"])
    saved = tmp_path / "old.yaml"
    saved.write_text(yaml.safe_dump({"method": "weighted", "temperature": 2.0}))
    with pytest.raises(ConfigError, match="renamed to 'kd_temperature'"):
        resolve(DistillConfig, saved)
    assert resolve(DistillConfig, overrides=["kd_temperature=2"]).kd_temperature == 2.0


def test_every_problem_with_values_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        resolve(DistillConfig, overrides=["epochs=0", "kd_temperature=-1", "mix=hard", "weight_temperature=0"])
    message = str(info.value)
    for part in ("'epochs' must be >= 1", "'kd_temperature' must be a finite number > 0", "'mix' must be one of",
                 "'weight_temperature' must be a finite number > 0"):
        assert part in message


def test_selection_defaults_have_one_home():
    selection = SelectionConfig()
    for config in (DistillConfig(), RankConfig()):
        assert config.selection == selection
    assert selection.metric == "auto" and DistillConfig().selection.metric == "auto"
