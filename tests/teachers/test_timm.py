"""timm teachers. The adapter's own logic (checkpoints, features, errors) runs
against a stand-in ``timm`` module with timm's model interface; the tests at
the end use the real timm and skip when it is not installed."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from xdistill.errors import XDistillError
from xdistill.teachers import Teacher, create_teacher, load_zoo

INPUT = {"size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.5]}


class StandInNet(nn.Module):
    """timm's interface: forward_features -> forward_head(pre_logits=True) -> classifier."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x):
        return self.stem(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@pytest.fixture
def stand_in_timm(monkeypatch):
    module = types.ModuleType("timm")
    module.calls = []

    def create_model(name, pretrained=False, **kwargs):
        module.calls.append((name, pretrained, kwargs))
        if name != "stand_in":
            raise RuntimeError(f"Unknown model ({name})")
        return StandInNet(**kwargs)

    module.create_model = create_model
    monkeypatch.setitem(sys.modules, "timm", module)
    return module


def _zoo(folder, **entry):
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump({"teachers": [{"name": "tm", "kind": "timm", "input": INPUT, **entry}]}))
    return load_zoo(path)


def _saved(folder, name: str, num_classes: int = 3, seed: int = 0, wrap: str | None = None) -> StandInNet:
    torch.manual_seed(seed)
    net = StandInNet(num_classes).eval()
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, str(folder / name))
    else:
        torch.save({wrap: state, "epoch": 3} if wrap else state, str(folder / name))
    return net


def _expected(net: StandInNet, images: np.ndarray):
    x = (torch.from_numpy(images).float().unsqueeze(1) / 255 - 0.5) / 0.5
    with torch.no_grad():
        trunk = net.forward_features(x)
        return net.forward_head(trunk, pre_logits=True), net.forward_head(trunk)


IMAGES = np.random.default_rng(0).integers(0, 256, (5, 8, 8), dtype=np.uint8)


def test_default_features_are_pre_logits_from_a_safetensors_checkpoint(tmp_path, stand_in_timm):
    net = _saved(tmp_path, "w.safetensors")
    teacher = create_teacher(_zoo(tmp_path, model="stand_in", pretrained=True, checkpoint="w.safetensors").specs[0])
    assert isinstance(teacher, Teacher)
    out = teacher.outputs(IMAGES)
    features, logits = _expected(net, IMAGES)
    torch.testing.assert_close(out.features, features)
    torch.testing.assert_close(out.logits, logits)
    assert stand_in_timm.calls == [("stand_in", False, {})]  # timm is never asked to download
    assert not teacher.model.training


def test_pth_checkpoint_inside_a_training_wrapper(tmp_path, stand_in_timm):
    net = _saved(tmp_path, "w.pth", num_classes=5, wrap="state_dict")
    teacher = create_teacher(_zoo(tmp_path, model="stand_in", checkpoint="w.pth", num_classes=5).specs[0])
    torch.testing.assert_close(teacher.outputs(IMAGES).logits, _expected(net, IMAGES)[1])


def test_pth_holding_code_is_refused(tmp_path, stand_in_timm):
    torch.save({"model": StandInNet()}, str(tmp_path / "w.pth"))  # a whole pickled module, not a state dict
    teacher = create_teacher(_zoo(tmp_path, model="stand_in", checkpoint="w.pth").specs[0])
    with pytest.raises(XDistillError, match="cannot read .* as a weights-only checkpoint"):
        teacher.setup()


def test_feature_layer_hook_and_headless_models(tmp_path, stand_in_timm):
    net = _saved(tmp_path, "w.safetensors")
    zoo = _zoo(tmp_path, model="stand_in", checkpoint="w.safetensors", feature_layer="stem.0")
    hooked = create_teacher(zoo.specs[0])
    out = hooked.outputs(IMAGES)
    x = (torch.from_numpy(IMAGES).float().unsqueeze(1) / 255 - 0.5) / 0.5
    torch.testing.assert_close(out.features, net.stem[0](x).detach().flatten(1))
    torch.testing.assert_close(out.logits, _expected(net, IMAGES)[1])
    headless = create_teacher(_zoo(tmp_path, model="stand_in", num_classes=0).specs[0]).outputs(IMAGES)
    assert headless.logits is None and headless.features.shape == (5, 4)


def test_checkpoint_that_does_not_fit_and_unknown_models(tmp_path, stand_in_timm):
    _saved(tmp_path, "w.safetensors", num_classes=3)
    wrong_head = create_teacher(_zoo(tmp_path, model="stand_in", checkpoint="w.safetensors", num_classes=7).specs[0])
    with pytest.raises(XDistillError, match="does not fit timm's 'stand_in'.*Check 'model' and 'num_classes'"):
        wrong_head.setup()
    with pytest.raises(XDistillError, match="timm cannot build 'resnet9000'"):
        create_teacher(_zoo(tmp_path, model="resnet9000").specs[0]).setup()


def test_fingerprint_follows_the_checkpoint(tmp_path, stand_in_timm):
    _saved(tmp_path, "w.safetensors", seed=0)
    spec = _zoo(tmp_path, model="stand_in", checkpoint="w.safetensors").specs[0]
    before = create_teacher(spec).fingerprint()
    assert create_teacher(spec).fingerprint() == before
    _saved(tmp_path, "w.safetensors", seed=1)
    assert create_teacher(spec).fingerprint() != before


def test_pretrained_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(XDistillError, match="'pretrained: true' needs a local 'checkpoint'.*never downloads"):
        _zoo(tmp_path, model="resnet18", pretrained=True)
    with pytest.raises(XDistillError, match="checkpoint '.*missing.pth' does not exist"):
        _zoo(tmp_path, model="resnet18", checkpoint="missing.pth")


def test_missing_timm_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    teacher = create_teacher(_zoo(tmp_path, model="resnet18").specs[0])
    with pytest.raises(XDistillError, match=r"pip install 'xdistill\[timm\]'"):
        teacher.setup()


# --- the real timm ------------------------------------------------------------------------------

def test_real_timm_model_from_a_local_checkpoint(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=4).eval()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "r.safetensors"))
    zoo = _zoo(tmp_path, model="resnet10t", pretrained=True, checkpoint="r.safetensors", num_classes=4,
               input={"size": [32, 32], "channels": 3}, labels=["a", "b", "c", "d"])
    out = create_teacher(zoo.specs[0]).outputs(np.zeros((2, 32, 32, 3), np.uint8))
    with torch.no_grad():
        trunk = net.forward_features(torch.zeros(2, 3, 32, 32))
        torch.testing.assert_close(out.features, net.forward_head(trunk, pre_logits=True))
        torch.testing.assert_close(out.logits, net.forward_head(trunk))
