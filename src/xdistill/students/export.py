"""Export a saved student to ONNX or TorchScript, checked against PyTorch.

The exported model takes the student's preprocessed input (for images:
float [N, C, H, W] scaled to [0, 1] then normalised with the mean/std in
student.json) and returns logits [N, C]. After writing, the file is run on
random inputs and compared with the PyTorch student (max abs difference).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xdistill.errors import XDistillError
from xdistill.io import atomic_write_bytes

EXPORT_FORMATS = ("onnx", "torchscript")


def _example_input(meta: dict, batch: int = 4, seed: int = 0) -> torch.Tensor:
    shape = tuple(meta["architecture"]["input_shape"])
    generator = torch.Generator().manual_seed(seed)
    if meta.get("preprocessing", {}).get("kind") == "text":
        vocab = int(meta["preprocessing"].get("vocab_size", 2))
        return torch.randint(1, max(2, vocab), (batch, *shape), generator=generator)
    return torch.randn((batch, *shape), generator=generator)


def _serialize(student: nn.Module, example: torch.Tensor, fmt: str) -> bytes:
    """The student as TorchScript or ONNX bytes; a model the exporter cannot handle is a user error."""
    buffer = io.BytesIO()
    try:
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(student, example, check_trace=False), buffer)
        else:
            torch.onnx.export(student, (example,), buffer, dynamo=False, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17)
    except Exception as exc:  # tracing and ONNX conversion raise many error types for unsupported code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise XDistillError(
            f"The student ({type(student).__name__}) cannot be exported to {fmt} ({type(exc).__name__}: {first}). "
            + ("Try --format onnx, or " if fmt == "torchscript" else "Try --format torchscript, or ")
            + "keep the student's forward free of data-dependent Python control flow."
        ) from exc
    return buffer.getvalue()


def export_student(student: nn.Module, meta: dict, fmt: str, path: str | Path, tolerance: float = 1e-5) -> dict:
    """Write ``student`` as ``fmt`` to ``path``; returns {"path", "format", "max_abs_diff"}."""
    if fmt not in EXPORT_FORMATS:
        raise XDistillError(f"--format must be one of {', '.join(EXPORT_FORMATS)}. Got {fmt!r}.")
    path = Path(path)
    student = student.to("cpu").eval()
    example = _example_input(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = _serialize(student, example, fmt)
        with torch.inference_mode():
            expected = student(example)
        if not isinstance(expected, torch.Tensor):
            raise XDistillError(f"The student's forward returned {type(expected).__name__}; an exported student must "
                                "return its logits [N, C] as one tensor.")
        expected = expected.numpy()
        # Serialised in memory, then written by Python: a full disk or a read-only folder is then an
        # OSError that atomic_write turns into a plain message, whichever exporter produced the bytes.
        atomic_write_bytes(path, data)
        if fmt == "torchscript":
            loaded = torch.jit.load(str(path))
            with torch.inference_mode():
                got = loaded(_example_input(meta, batch=4)).numpy()
        else:
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise XDistillError("Checking an ONNX export needs onnxruntime: pip install 'xdistill[onnx]'.") from exc
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = session.run(None, {"input": _example_input(meta, batch=4).numpy()})[0]
    diff = float(np.abs(got - expected).max())
    if diff > tolerance:
        path.unlink()  # a file that failed its check must not look like a finished export
        raise XDistillError(f"The {fmt} export differs from the PyTorch student by {diff:.2e} (> {tolerance:.0e}); "
                            f"nothing was written to '{path}'. Try the other --format.")
    return {"path": str(path), "format": fmt, "max_abs_diff": diff}
