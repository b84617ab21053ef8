from __future__ import annotations

import errno

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.students import build_student
from xdistill.students.export import export_student

META = {"architecture": {"input_shape": [1, 8, 8]}, "preprocessing": {"kind": "image"}}


@pytest.fixture
def student():
    torch.manual_seed(0)
    return build_student("cnn", (1, 8, 8), 3).eval()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_reproduces_the_student_on_any_batch_size(student, fmt, tmp_path):
    path = tmp_path / f"student.{fmt}"
    found = export_student(student, META, fmt, path)
    assert found["max_abs_diff"] <= 1e-5 and found["path"] == str(path)
    x = torch.rand(7, 1, 8, 8)
    with torch.inference_mode():
        expected = student(x).numpy()
    if fmt == "torchscript":
        got = torch.jit.load(str(path))(x).detach().numpy()
    else:
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


class NamedOutput(nn.Module):
    """Returns a string beside its logits: TorchScript tracing refuses non-tensor outputs."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 3)

    def forward(self, x):
        return self.head(x.flatten(1)), "names"


class Eigen(nn.Module):
    """Uses an operator ONNX opset 17 has no conversion for."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(64, 3)

    def forward(self, x):
        h = self.head(x.flatten(1))
        return torch.linalg.eigh(h.T @ h).eigenvalues


@pytest.mark.parametrize("module, fmt, other", [(NamedOutput, "torchscript", "onnx"), (Eigen, "onnx", "torchscript")])
def test_a_student_the_exporter_cannot_handle_is_a_user_error(module, fmt, other, tmp_path):
    with pytest.raises(XDistillError, match=rf"{module.__name__}\) cannot be exported to {fmt} .*Try --format {other}"):
        export_student(module(), META, fmt, tmp_path / "s")
    assert list(tmp_path.iterdir()) == []


def test_a_forward_that_does_not_return_one_tensor_is_refused(tmp_path):
    with pytest.raises(XDistillError, match="forward returned tuple; an exported student must return its logits"):
        export_student(NamedOutput(), META, "onnx", tmp_path / "s.onnx")
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_fails_its_check_is_removed(student, tmp_path):
    with pytest.raises(XDistillError, match="differs from the PyTorch student by .*nothing was written"):
        export_student(student, META, "onnx", tmp_path / "s.onnx", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_names_the_file_and_leaves_nothing(student, tmp_path, monkeypatch):
    import xdistill.io as xio

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xio.os, "replace", full)
    with pytest.raises(XDistillError, match="No space left on the device while writing '.*s.pt'"):
        export_student(student, META, "torchscript", tmp_path / "s.pt")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_is_refused(student, tmp_path):
    with pytest.raises(XDistillError, match="--format must be one of onnx, torchscript. Got 'tflite'"):
        export_student(student, META, "tflite", tmp_path / "s")
