"""ONNX teachers: a model file run with onnxruntime on the CPU.

    - name: resnet-onnx
      kind: onnx
      path: teachers/resnet.onnx
      features_output: pooled          # name of the graph output holding features
      logits_output: logits            # name of the graph output holding logits
      input: {size: [224, 224], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}

Images are preprocessed with the entry's ``input`` exactly as for TorchScript
teachers; ``modality: features`` feeds the raw float vectors unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.io import sha256_file
from xdistill.teachers._outputs import checked_output
from xdistill.teachers.base import TEACHER_KINDS, TeacherKind, TeacherOutput, TeacherSpec
from xdistill.teachers.preprocess import preprocess_images

# ONNX element types of the inputs we can feed, as numpy dtypes.
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


@dataclass
class OnnxOptions:
    path: str  # the .onnx file, relative to the zoo file
    features_output: str | None = None  # graph output holding features [N, ...]; at least one of the two
    logits_output: str | None = None  # graph output holding logits [N, C]
    input_name: str | None = None  # graph input to feed; default the model's first input

    def problems(self) -> list[str]:
        problems = []
        if not self.features_output and not self.logits_output:
            problems.append(
                "An onnx teacher needs 'features_output' and/or 'logits_output': the names of the graph outputs "
                "holding its features and logits."
            )
        return problems


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise XDistillError("ONNX teachers need onnxruntime. Install it with: pip install 'xdistill[onnx]'.") from exc
    return onnxruntime


class OnnxTeacher:
    def __init__(self, spec: TeacherSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.labels = spec.labels
        self.modality = spec.modality
        self.options: OnnxOptions = spec.options
        self.path = spec.base_dir / spec.options.path
        self.session = None
        self._input_name: str | None = None
        self._input_dtype = np.float32
        self._weights_hash: str | None = None

    def _check_file(self) -> None:
        if not self.path.is_file():
            raise XDistillError(
                f"Teacher '{self.name}': ONNX file '{self.path}' does not exist. Fix 'path' in the zoo file."
            )

    def setup(self) -> None:
        if self.session is not None:
            return
        self._check_file()
        ort = _import_onnxruntime()
        options = ort.SessionOptions()
        # Follow torch's thread setting (distill's 'threads'), so a teacher does not take every core.
        options.intra_op_num_threads = torch.get_num_threads()
        try:
            session = ort.InferenceSession(str(self.path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise XDistillError(
                f"Teacher '{self.name}': '{self.path}' is not a model onnxruntime can load "
                f"({str(exc).splitlines()[0]})."
            ) from exc
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = [o.name for o in session.get_outputs()]
        problems = []
        for key in ("features_output", "logits_output"):
            wanted = getattr(self.options, key)
            if wanted and wanted not in outputs:
                problems.append(f"it has no output '{wanted}' for '{key}' (its outputs: {', '.join(outputs)})")
        input_name = self.options.input_name or next(iter(inputs))
        if input_name not in inputs:
            problems.append(f"it has no input '{input_name}' for 'input_name' (its inputs: {', '.join(inputs)})")
        elif inputs[input_name].type not in _INPUT_DTYPES:
            problems.append(f"its input '{input_name}' takes {inputs[input_name].type}; xdistill feeds float tensors")
        if problems:
            listed = "; ".join(problems)
            raise XDistillError(f"Teacher '{self.name}' ('{self.path.name}'): {listed}. Fix the zoo entry.")
        self._input_name = input_name
        self._input_dtype = _INPUT_DTYPES[inputs[input_name].type]
        self.session = session

    def fingerprint(self) -> str:
        if self._weights_hash is None:
            self._check_file()
            self._weights_hash = sha256_file(self.path)
        graph = {k: v for k, v in asdict(self.options).items() if k != "path"}  # where the file lives does not matter
        preprocessing = {"input": asdict(self.spec.input), "modality": self.modality, "graph": graph}
        described = json.dumps(preprocessing, sort_keys=True)
        return hashlib.sha256(f"onnx|{self._weights_hash}|{described}".encode()).hexdigest()

    def _model_input(self, batch) -> np.ndarray:
        if self.modality == "image":
            x = preprocess_images(batch, self.spec.input).numpy()
        else:
            x = np.asarray(batch, dtype=np.float32)
        return np.ascontiguousarray(x, dtype=self._input_dtype)

    def outputs(self, batch) -> TeacherOutput:
        self.setup()
        x = self._model_input(batch)
        names = [n for n in (self.options.features_output, self.options.logits_output) if n]
        try:
            results = dict(zip(names, self.session.run(names, {self._input_name: x})))
        except Exception as exc:  # onnxruntime's own error types: wrong shapes or dtypes mostly
            raise XDistillError(
                f"Teacher '{self.name}': onnxruntime failed on an input of shape {list(x.shape)} "
                f"({str(exc).splitlines()[0]}). Check the entry's 'input' size and channels."
            ) from exc

        def tensor(output: str | None) -> torch.Tensor | None:
            return None if output is None else torch.from_numpy(np.asarray(results[output], dtype=np.float32))

        return checked_output(tensor(self.options.features_output), tensor(self.options.logits_output),
                              len(x), self.labels, self.name)


TEACHER_KINDS.register("onnx", TeacherKind(options=OnnxOptions, build=OnnxTeacher, modalities=("image", "features")))
