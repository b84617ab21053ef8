from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import TinyNet
from xdistill.errors import XDistillError
from xdistill.teachers import Teacher, create_teacher, load_zoo

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

INPUT = {"size": [8, 8], "channels": 1, "mean": [0.5], "std": [0.5]}


def write_mlp_onnx(path, net: TinyNet, input_shape=("N", 1, 8, 8)) -> None:
    """The graph of TinyNet (flatten, linear, tanh -> features; linear -> logits), built node by node."""
    lin1, head = net.body[1], net.head
    weights = {
        "w1": lin1.weight.detach().numpy().T.copy(), "b1": lin1.bias.detach().numpy(),
        "w2": head.weight.detach().numpy().T.copy(), "b2": head.bias.detach().numpy(),
    }
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["h_b"]),
        helper.make_node("Tanh", ["h_b"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "w2"], ["z"]),
        helper.make_node("Add", ["z", "b2"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", weights["w1"].shape[1]]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", weights["w2"].shape[1]])],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _zoo(folder, entries):
    path = folder / "zoo.yaml"
    path.write_text(yaml.safe_dump({"teachers": entries}))
    return load_zoo(path)


def _onnx_entry(**overrides):
    entry = {"name": "o", "kind": "onnx", "path": "tiny.onnx", "features_output": "embedding",
             "logits_output": "scores", "input": INPUT, "labels": ["a", "b", "c"]}
    entry.update(overrides)
    return entry


@pytest.fixture
def tiny_onnx(tmp_path):
    torch.manual_seed(0)
    net = TinyNet(classes=3, dim=5).eval()
    write_mlp_onnx(tmp_path / "tiny.onnx", net)
    return tmp_path


def test_onnx_teacher_matches_the_same_torchscript_teacher(tiny_onnx):
    torch.manual_seed(0)
    net = TinyNet(classes=3, dim=5).eval()  # the same weights as the fixture's graph
    torch.jit.save(torch.jit.trace(net, torch.zeros(2, 1, 8, 8), strict=False), str(tiny_onnx / "tiny.pt"))
    zoo = _zoo(tiny_onnx, [_onnx_entry(), {"name": "ts", "kind": "torchscript", "path": "tiny.pt", "input": INPUT}])
    onnx_teacher, script_teacher = zoo.teachers()
    assert isinstance(onnx_teacher, Teacher)
    images = np.random.default_rng(0).integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)  # resized and greyed
    got, expected = onnx_teacher.outputs(images), script_teacher.outputs(images)
    assert got.features.dtype == torch.float32 and got.features.shape == (6, 5) and got.logits.shape == (6, 3)
    torch.testing.assert_close(got.features, expected.features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-5)


def test_onnx_features_modality_feeds_raw_vectors(tmp_path):
    torch.manual_seed(1)
    net = TinyNet(classes=2, dim=4).eval()
    write_mlp_onnx(tmp_path / "vec.onnx", net, input_shape=("N", 64))
    zoo = _zoo(tmp_path, [{"name": "v", "kind": "onnx", "path": "vec.onnx", "modality": "features",
                           "features_output": "embedding"}])
    x = np.random.default_rng(0).normal(size=(3, 64)).astype(np.float32)
    out = create_teacher(zoo.specs[0]).outputs(x)
    assert out.logits is None
    torch.testing.assert_close(out.features, net.body(torch.from_numpy(x)))


def test_missing_output_name_lists_the_model_outputs(tiny_onnx):
    zoo = _zoo(tiny_onnx, [_onnx_entry(logits_output="logits")])
    listed = r"no output 'logits' for 'logits_output' \(its outputs: embedding, scores\)"
    with pytest.raises(XDistillError, match=listed):
        create_teacher(zoo.specs[0]).outputs(np.zeros((1, 8, 8), np.uint8))


def test_missing_input_name_lists_the_model_inputs(tiny_onnx):
    zoo = _zoo(tiny_onnx, [_onnx_entry(input_name="image")])
    with pytest.raises(XDistillError, match=r"no input 'image'.*its inputs: pixels"):
        create_teacher(zoo.specs[0]).setup()


def test_logits_that_disagree_with_declared_labels_are_refused(tiny_onnx):
    zoo = _zoo(tiny_onnx, [_onnx_entry(labels=["a", "b"])])
    with pytest.raises(XDistillError, match="returned 3 logits per sample but its zoo entry declares 2 labels"):
        create_teacher(zoo.specs[0]).outputs(np.zeros((2, 8, 8), np.uint8))


def test_an_entry_without_any_output_name_is_refused(tiny_onnx):
    with pytest.raises(XDistillError, match="needs 'features_output' and/or 'logits_output'"):
        _zoo(tiny_onnx, [_onnx_entry(features_output=None, logits_output=None)])


def test_wrong_input_size_is_a_clear_error(tiny_onnx):
    zoo = _zoo(tiny_onnx, [_onnx_entry(input={"channels": 1})])  # keeps the task's 16x16: 256 inputs, not 64
    with pytest.raises(XDistillError, match=r"onnxruntime failed on an input of shape \[1, 1, 16, 16\]"):
        create_teacher(zoo.specs[0]).outputs(np.zeros((1, 16, 16), np.uint8))


def test_fingerprint_follows_the_model_file_and_the_preprocessing(tiny_onnx):
    spec = _zoo(tiny_onnx, [_onnx_entry()]).specs[0]
    before = create_teacher(spec).fingerprint()
    assert create_teacher(spec).fingerprint() == before
    other_input = _zoo(tiny_onnx, [_onnx_entry(input={**INPUT, "std": [0.25]})]).specs[0]
    assert create_teacher(other_input).fingerprint() != before
    torch.manual_seed(5)
    write_mlp_onnx(tiny_onnx / "tiny.onnx", TinyNet(classes=3, dim=5))
    assert create_teacher(spec).fingerprint() != before


def test_not_an_onnx_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    zoo = _zoo(tmp_path, [{"name": "b", "kind": "onnx", "path": "bad.onnx", "logits_output": "y"}])
    with pytest.raises(XDistillError, match="not a model onnxruntime can load"):
        create_teacher(zoo.specs[0]).setup()
