"""Export a saved student to ONNX or TorchScript, checked against PyTorch.

The exported model takes the student's preprocessed input (for images:
float [N, C, H, W] scaled to [0, 1] then normalised with the mean/std in
student.json) and returns logits [N, C]. After writing, the file is run on
random inputs and compared with the PyTorch student (max abs difference).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.io import atomic_write

EXPORT_FORMATS = ("onnx", "torchscript")


def _example_input(meta: dict, batch: int = 4, seed: int = 0) -> torch.Tensor:
    shape = tuple(meta["architecture"]["input_shape"])
    generator = torch.Generator().manual_seed(seed)
    if meta.get("preprocessing", {}).get("kind") == "text":
        vocab = int(meta["preprocessing"].get("vocab_size", 2))
        return torch.randint(1, max(2, vocab), (batch, *shape), generator=generator)
    return torch.randn((batch, *shape), generator=generator)


def export_student(student: nn.Module, meta: dict, fmt: str, path: str | Path, tolerance: float = 1e-5) -> dict:
    """Write ``student`` as ``fmt`` to ``path``; returns {"path", "format", "max_abs_diff"}."""
    if fmt not in EXPORT_FORMATS:
        raise XDistillError(f"--format must be one of {', '.join(EXPORT_FORMATS)}. Got {fmt!r}.")
    path = Path(path)
    student = student.to("cpu").eval()
    example = _example_input(meta)
    with torch.inference_mode():
        expected = student(example).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            traced = torch.jit.trace(student, example, check_trace=False)
            atomic_write(path, lambda tmp: torch.jit.save(traced, str(tmp)))
            loaded = torch.jit.load(str(path))
            with torch.inference_mode():
                got = loaded(_example_input(meta, batch=4)).numpy()
        else:
            def write(tmp: Path) -> None:
                torch.onnx.export(student, (example,), str(tmp), dynamo=False, input_names=["input"],
                                  output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                                  opset_version=17)
            atomic_write(path, write)
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise XDistillError("Checking an ONNX export needs onnxruntime: pip install 'xdistill[onnx]'.") from exc
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {"input": _example_input(meta, batch=4).numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if diff > tolerance:
        raise XDistillError(f"The {fmt} export differs from the PyTorch student by {diff:.2e} (> {tolerance:.0e}).")
    return {"path": str(path), "format": fmt, "max_abs_diff": diff}
