"""Conversion targets: ONNX through torch.onnx (TorchScript and dynamo exporters) or tf2onnx, run in
onnxruntime, and Core ML through coremltools.

tf2onnx 1.17 cannot read Keras 3 models directly (``from_keras`` fails on Keras 3's layer
objects), so a Keras model goes through a traced ``tf.function`` (``from_function``); when that
fails the SavedModel route (``model.export`` then ``from_saved_model``'s graph) is tried. The route
taken is recorded, and a failed route is a finding, recorded with its error, never hidden.

Core ML models convert on Linux, but predicting with them needs macOS: their size is measured and
their prediction is reported as not measurable on this platform.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.domain.tracebacks import exception_text

TORCH_TARGETS = ("onnx-torchscript", "onnx-dynamo", "coreml")
KERAS_TARGETS = ("onnx-tf2onnx", "coreml")
OPSET = 17
NOT_ON_THIS_PLATFORM = "prediction not measurable on this platform (Core ML predicts on macOS only)"


@dataclass
class Converted:
    target: str
    route: str
    path: Path | None
    seconds: float
    error: str | None = None  # the conversion failed: its last line, the finding

    @property
    def runs_here(self) -> bool:
        """Whether this machine can run the converted model (ONNX in onnxruntime: yes; Core ML: not on Linux)."""
        import sys

        return self.path is not None and (self.target.startswith("onnx") or sys.platform == "darwin")


def targets_of(framework: str) -> tuple[str, ...]:
    return TORCH_TARGETS if framework == "torch" else KERAS_TARGETS


def convert(framework: str, model: Any, example: np.ndarray, target: str, out: Path, name: str) -> Converted:
    """Convert ``model`` to ``target``, timing it; a failure is returned with its error, not raised."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    route = target
    try:
        if target == "onnx-torchscript":
            route, path = (
                "torch.onnx.export(dynamo=False)",
                _torch_onnx(model, example, out / f"{name}.{target}.onnx", False),
            )
        elif target == "onnx-dynamo":
            route, path = (
                "torch.onnx.export(dynamo=True)",
                _torch_onnx(model, example, out / f"{name}.{target}.onnx", True),
            )
        elif target == "onnx-tf2onnx":
            route, path = _tf2onnx(model, example, out / f"{name}.{target}.onnx")
        elif target == "coreml":
            route, path = _coreml(framework, model, example, out / f"{name}.mlpackage")
        else:
            raise ValueError(f"unknown target {target!r}")
    except Exception as exc:  # the converter's failure is the result
        last = " ".join(exception_text(exc).split())
        return Converted(target, route, None, time.perf_counter() - start, last[:500])
    return Converted(target, route, path, time.perf_counter() - start)


def _torch_onnx(model: Any, example: np.ndarray, path: Path, dynamo: bool) -> Path:
    import contextlib
    import io
    import warnings

    import torch

    # Two examples, not one: torch.export specializes a dimension of size 1 to a constant, which
    # contradicts the dynamic batch dimension and fails the export.
    x = torch.from_numpy(example[:2])
    # One batch dimension, declared the way each exporter takes it.
    shape = (
        {"dynamic_shapes": ({0: torch.export.Dim("batch")},), "external_data": False}  # one file, for the size
        if dynamo
        else {"dynamic_axes": {"x": {0: "batch"}, "logits": {0: "batch"}}}
    )
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=dynamo,
            opset_version=OPSET,
            input_names=["x"],
            output_names=["logits"],
            **shape,  # type: ignore[arg-type]
        )
    return path


def _tf2onnx(model: Any, example: np.ndarray, path: Path) -> tuple[str, Path]:
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *example.shape[1:]), tf.float32, name="x"),)

    @tf.function(input_signature=spec)
    def forward(x: Any) -> Any:
        return model(x, training=False)

    try:
        tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET, output_path=str(path))
        return "tf2onnx.convert.from_function(tf.function)", path
    except Exception:
        saved = path.with_suffix(".savedmodel")
        shutil.rmtree(saved, ignore_errors=True)
        model.export(str(saved))
        loaded = tf.saved_model.load(str(saved))
        tf2onnx.convert.from_function(loaded.serve, input_signature=spec, opset=OPSET, output_path=str(path))
        return "SavedModel (model.export) + tf2onnx.convert.from_function(serve)", path


def _coreml(framework: str, model: Any, example: np.ndarray, path: Path) -> tuple[str, Path]:
    import contextlib
    import io
    import logging
    import warnings

    # coremltools logs on import that it cannot load its macOS-only runtime and that this torch or
    # TensorFlow is newer than it was tested with; the conversion's outcome says more than that.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        import coremltools as ct

    shutil.rmtree(path, ignore_errors=True)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if framework == "torch":
            import torch

            traced = (
                model
                if isinstance(model, torch.jit.ScriptModule)
                else torch.jit.trace(model, torch.from_numpy(example[:1]))
            )
            converted = ct.convert(
                traced, inputs=[ct.TensorType(name="x", shape=example[:1].shape)], convert_to="mlprogram"
            )
            route = "coremltools.convert(TorchScript trace)"
        else:
            converted = ct.convert(model, convert_to="mlprogram", source="tensorflow")
            route = "coremltools.convert(Keras model, source=tensorflow)"
    converted.save(str(path))
    return route, path


def size_bytes(path: Path) -> int:
    """A model's size on disk: a file with the external data files an ONNX model refers to, or
    the total of a directory's files (an ``.mlpackage`` is a directory)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    total = path.stat().st_size
    if path.suffix == ".onnx":
        import onnx
        from onnx.external_data_helper import _get_all_tensors, uses_external_data

        model = onnx.load(str(path), load_external_data=False)
        locations = {
            entry.value
            for tensor in _get_all_tensors(model)
            if uses_external_data(tensor)
            for entry in tensor.external_data
            if entry.key == "location"
        }
        total += sum((path.parent / name).stat().st_size for name in locations if (path.parent / name).exists())
    return total


def onnx_session(model: Path | bytes, threads: int = 0) -> Any:
    """An onnxruntime CPU session for a model file or a serialized model; ``threads`` 0 lets
    onnxruntime choose."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def onnx_predict(session: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])
