from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.conftest import TinyNet
from xdistill.errors import XDistillError
from xdistill.teachers import InputSpec, ModuleTeacher, create_teacher, load_zoo, preprocess_images


def test_module_teacher_features_from_hook_and_forward_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 7), nn.ReLU(), nn.Linear(7, 4))
    teacher = ModuleTeacher("m", model, feature_layer="2", input=InputSpec(mean=(0.5,), std=(0.5,)), labels=list("abcd"))
    x = np.random.default_rng(0).integers(0, 256, (5, 8, 8), dtype=np.uint8)
    out = teacher.outputs(x)
    inp = (torch.from_numpy(x).float() / 255 - 0.5) / 0.5
    inp = inp.unsqueeze(1)
    expected_features = torch.relu(model[1](inp.flatten(1)))
    torch.testing.assert_close(out.features, expected_features)
    torch.testing.assert_close(out.logits, model(inp))
    assert not model.training


def test_module_teacher_bad_feature_layer_lists_paths():
    teacher = ModuleTeacher("m", nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), feature_layer="body.fc")
    with pytest.raises(XDistillError, match="Available: 0, 1"):
        teacher.outputs(np.zeros((1, 8, 8), np.uint8))


def test_declared_labels_must_match_logits():
    teacher = ModuleTeacher("m", TinyNet(classes=3), labels=["a", "b"])
    with pytest.raises(XDistillError, match="returned 3 logits per sample but its zoo entry declares 2 labels"):
        teacher.outputs(np.zeros((2, 8, 8), np.uint8))


def test_torchscript_tuple_and_dict_outputs(tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    x = np.random.default_rng(1).integers(0, 256, (4, 8, 8), dtype=np.uint8)
    for spec, classes, dim in zip(zoo.specs, (3, 4), (5, 6)):
        out = create_teacher(spec).outputs(x)
        assert out.features.shape == (4, dim) and out.logits.shape == (4, classes)


def test_preprocessing_converts_channels_resizes_and_normalises():
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    out = preprocess_images(rgb, InputSpec(size=(8, 8), channels=1, mean=(0.5,), std=(0.25,)))
    assert out.shape == (2, 1, 8, 8)
    torch.testing.assert_close(out, torch.full((2, 1, 8, 8), (0.299 - 0.5) / 0.25))
    grey = preprocess_images(np.full((1, 4, 4), 255, np.uint8), InputSpec(channels=3))
    assert grey.shape == (1, 3, 4, 4) and float(grey.min()) == 1.0


def _zoo_file(tmp_path, entries):
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump({"teachers": entries}))
    return path


def test_zoo_reports_every_problem_at_once(tmp_path, tiny_zoo):
    path = _zoo_file(tiny_zoo.parent, [
        {"name": "a", "kind": "torchscrpt", "path": "t0.pt"},
        {"name": "b", "kind": "torchscript", "path": "missing.pt", "colour": "red"},
        {"name": "c", "kind": "torchscript", "path": "t0.pt", "input": {"channels": 2}},
        {"name": "c", "kind": "torchscript", "path": "t1.pt"},
    ])
    with pytest.raises(XDistillError) as info:
        load_zoo(path)
    msg = str(info.value)
    assert "Did you mean 'torchscript'" in msg
    assert "missing.pt" in msg and "does not exist" in msg
    assert "unknown key 'colour'" in msg
    assert "'input.channels' must be 1 or 3" in msg


def test_zoo_duplicate_names(tiny_zoo):
    path = _zoo_file(tiny_zoo.parent, [
        {"name": "c", "kind": "torchscript", "path": "t0.pt"},
        {"name": "c", "kind": "torchscript", "path": "t1.pt"},
    ])
    with pytest.raises(XDistillError, match="appears more than once"):
        load_zoo(path)


def test_zoo_paths_relative_to_yaml(tiny_zoo, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    zoo = load_zoo(tiny_zoo)
    assert zoo.names == ["t0", "t1"]
    assert create_teacher(zoo.specs[0]).outputs(np.zeros((1, 8, 8), np.uint8)).features.shape == (1, 5)


def test_module_kind_from_yaml(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = TinyNet(classes=3)
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    path = _zoo_file(tmp_path, [{"name": "m", "kind": "module", "factory": "tests.conftest:TinyNet",
                                 "weights": "w.safetensors", "kwargs": {"classes": 3}}])
    teacher = create_teacher(load_zoo(path).specs[0])
    x = np.zeros((2, 8, 8), np.uint8)
    torch.testing.assert_close(teacher.outputs(x).logits, net(torch.zeros(2, 1, 8, 8))[1])


def test_not_torchscript_file_is_clear_error(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    path = _zoo_file(tmp_path, [{"name": "b", "kind": "torchscript", "path": "bad.pt"}])
    with pytest.raises(XDistillError, match="not a TorchScript file"):
        create_teacher(load_zoo(path).specs[0]).outputs(np.zeros((1, 8, 8), np.uint8))
