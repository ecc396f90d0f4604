"""onnx2tf (ONNX → TensorFlow / TFLite): the model under test is an ONNX model (the generated PyTorch
model exported once by torch.onnx's TorchScript exporter, as for onnx2torch), its reference outputs
are ONNX Runtime's, and what onnx2tf writes runs on the same inputs:

- ``--exporter tflite`` (the default): its float32 TFLite model in the LiteRT interpreter
  (``ai_edge_litert``; TensorFlow's own ``tf.lite.Interpreter`` where LiteRT is not installed);
- ``--exporter keras``: the TensorFlow (tf_keras) model it builds, in TensorFlow.

onnx2tf turns NCHW inputs into NHWC by default; every input keeps its ONNX shape here
(``keep_shape_absolutely_input_names``) so that the same arrays feed both sides, and an output it
writes channels last is compared with its channel axis moved back. For its own
validation step onnx2tf reads sample images from the working folder, or downloads them from GitHub
when the file is missing (inputs of 4 dimensions with 3 channels last); the adapter writes seeded
random data of that name and shape in a folder of the campaign and converts there, so nothing is
fetched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.difftest.adapters import Inputs
from issuemine.difftest.adapters.onnx2torch import OnnxToTorch
from issuemine.difftest.generate import Generated


class OnnxToTf(OnnxToTorch):
    name = "onnx2tf"
    framework = "torch"
    exporters = ("tflite", "keras")
    suffix = ".tflite"
    onnx_target = False
    reference_is_onnx = True

    def reference(self, generated: Generated, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        expected = super().reference(generated, inputs)
        self.shapes: list[tuple[int, ...] | None] = [np.shape(o) for o in expected[0]] if expected else []
        return expected

    def convert(self, generated: Generated, example: Inputs, path: Path, names: list[str] | None = None) -> None:
        import onnx2tf

        assert self.source is not None, "the ONNX source is written first (reference)"
        # Absolute paths: the conversion runs in the samples folder (--out may be relative).
        folder, source = path.with_suffix(".onnx2tf").resolve(), self.source.resolve()
        shutil.rmtree(folder, ignore_errors=True)
        with _working_folder(_samples(Path(self.job["out_dir"]).resolve())):
            try:
                self.module = onnx2tf.convert(
                    input_onnx_file_path=str(source),
                    output_folder_path=str(folder),
                    non_verbose=True,
                    output_signaturedefs=True,
                    keep_shape_absolutely_input_names=list(generated.inputs),
                )
            except SystemExit as exc:  # onnx2tf ends the process on some errors: a failure, not a crash
                raise RuntimeError(f"onnx2tf stopped the conversion (sys.exit({exc.code!r}))") from None
        if self.exporter == "tflite":
            written = sorted(folder.glob("*_float32.tflite"))
            if not written:
                raise RuntimeError("onnx2tf wrote no float32 TFLite model")
            shutil.move(str(written[0]), path)
        shutil.rmtree(folder, ignore_errors=True)

    def run_onnx(self, model: Any, feeds: list[Inputs]) -> list[list[np.ndarray]]:
        """A cut of the source converted by onnx2tf and run as the campaign's models were."""
        import tempfile

        import onnx

        names = [o.name for o in model.graph.output]
        with tempfile.TemporaryDirectory(dir=self.job["out_dir"]) as folder:
            source, path = Path(folder) / "cut.onnx", Path(folder) / "cut.tflite"
            onnx.save(model, str(source))
            saved, self.source = self.source, source
            inputs: dict[str, tuple[tuple[int, ...], str]] = {i.name: ((), "") for i in model.graph.input}
            cut = Generated("torch", 0, 0, None, [], inputs, names, 0.0)
            try:
                from issuemine.difftest.execute import quietly

                quietly(self.convert, cut, feeds[0], path)
                self.shapes = [_declared_shape(o) for o in model.graph.output]  # for the channels-last check
                return self.run(self.load(path), cut, feeds)
            finally:
                self.source = saved

    def load(self, path: Path) -> Any:
        if self.exporter == "keras":
            return self.module
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # LiteRT not installed: TensorFlow's own interpreter
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        return Interpreter(model_path=str(path))

    def run(self, loaded: Any, generated: Generated, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        return [self._layout(outputs) for outputs in self._run(loaded, generated, inputs)]

    def _layout(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        """onnx2tf writes channels last (NHWC) where ONNX has them first: an output whose shape is the
        ONNX output's with the channel axis moved last is moved back, as a user of the model would;
        any other difference of shape stays a mismatch."""
        fixed = []
        for out, want in zip(outputs, getattr(self, "shapes", []) + [None] * len(outputs), strict=False):
            if want is not None and out.ndim >= 3 and out.shape != tuple(want):
                back = np.moveaxis(out, -1, 1)
                out = back if back.shape == tuple(want) else out
            fixed.append(out)
        return fixed

    def _run(self, loaded: Any, generated: Generated, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        if self.exporter == "keras":
            return [_listed(loaded([one[n] for n in generated.inputs])) for one in inputs]
        runner = loaded.get_signature_runner()
        signature = next(iter(loaded.get_signature_list().values()))
        feeds = _match(signature["inputs"], list(generated.inputs))
        actual = []
        for one in inputs:
            got = runner(**{name: one[key] for name, key in feeds.items()})
            order = _match(list(got), generated.outputs)
            by_output = {key: name for name, key in order.items()}
            actual.append([np.asarray(got[by_output[o]]) for o in generated.outputs if o in by_output])
        return actual


def _declared_shape(value: Any) -> tuple[int, ...] | None:
    """An ONNX graph output's static shape (None where a dimension is not known)."""
    dims = value.type.tensor_type.shape.dim
    return tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None


def _match(names: list[str], wanted: list[str]) -> dict[str, str]:
    """The signature's names -> the model's: by name where onnx2tf kept them; the rest (an output it
    renamed, "lambda" say) in order."""
    found = {n: n for n in names if n in wanted}
    rest = [w for w in wanted if w not in found]
    found.update(zip([n for n in names if n not in found], rest, strict=False))
    return found


def _listed(out: Any) -> list[np.ndarray]:
    items = out if isinstance(out, list | tuple) else [out]
    return [np.asarray(o) for o in items]


def _samples(out_dir: Path) -> Path:
    """A folder with the arrays onnx2tf reads from its working folder, else downloads (its sample
    images; the catalog's ``workdir_array`` of ``onnx2tf.convert``), written as a re-run's shim
    writes them."""
    from issuemine.domain.converters import knowledge
    from issuemine.repro.shim.issuemine_shim import write_workdir_arrays

    folder = out_dir / "onnx2tf-samples"
    specs = [a for e in knowledge().entries if e.call == "onnx2tf.convert" for a in e.workdir_arrays or ()]
    write_workdir_arrays(specs, str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _working_folder(folder: Path) -> Any:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


ADAPTER = OnnxToTf
