from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from xdistill.errors import XDistillError
from xdistill.io import load_weights, read_safetensors


def test_read_safetensors_returns_the_saved_tensors(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    save_file(state, str(tmp_path / "w.safetensors"))
    found = read_safetensors(tmp_path / "w.safetensors", "Weights")
    assert set(found) == {"w", "b"} and all(torch.equal(found[k], state[k]) for k in state)


@pytest.mark.parametrize("content, expected", [
    (None, "Teacher 'a': weights '{path}' does not exist. Re-export it."),
    (pickle.dumps({"w": 1}), "Teacher 'a': weights '{path}' is not a safetensors file ("),
    (b"", "Teacher 'a': weights '{path}' is not a safetensors file ("),
])
def test_read_safetensors_names_the_file_and_the_fix(tmp_path, content, expected):
    path = tmp_path / "w.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(XDistillError) as info:
        read_safetensors(path, "Teacher 'a': weights", "Re-export it.")
    message = str(info.value)
    assert message.startswith(expected.format(path=path)) and message.endswith("Re-export it.")


def test_load_weights_loads_or_says_what_does_not_fit():
    model = torch.nn.Linear(3, 2)
    state = {"weight": torch.zeros(2, 3), "bias": torch.ones(2)}
    load_weights(model, state, "W", "the model")
    assert torch.equal(model.bias.data, torch.ones(2))
    with pytest.raises(XDistillError) as info:
        load_weights(model, {"weight": torch.zeros(4, 3), "bias": torch.ones(4)}, "Weights 'x'", "the linear model", "Check the width.")
    message = str(info.value)
    assert message.startswith("Weights 'x' does not fit the linear model (") and "size mismatch" in message
    assert message.endswith("). Check the width.") and "\n" not in message
