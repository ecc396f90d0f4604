"""tf2onnx: a generated TensorFlow model, converted from its tf.function (or, under the study's
protocol, from the SavedModel NNSmith writes, by tf2onnx's command line code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from issuemine.difftest.adapters import Adapter, Inputs
from issuemine.difftest.generate import Generated


class Tf2Onnx(Adapter):
    name = "tf2onnx"
    framework = "tensorflow"
    exporters = ("tf2onnx",)
    localizes = True

    def convert(self, generated: Generated, example: Inputs, path: Path, names: list[str] | None = None) -> None:
        from issuemine.difftest.execute import convert_saved_model
        from issuemine.difftest.generate import run_instructions

        opset = int(self.job.get("opset") or 17)
        if names is None and self.job.get("saved_model"):
            convert_saved_model(generated, path, opset)
            return
        import tensorflow as tf
        import tf2onnx

        outputs = names or generated.outputs
        specs = [tf.TensorSpec(shape, tf.as_dtype(dtype), name) for name, (shape, dtype) in generated.inputs.items()]

        @tf.function(input_signature=specs)
        def forward(*xs: Any) -> Any:
            if generated.forward is not None:  # a zoo architecture (a Keras model): its own call
                return generated.forward(*xs)
            return run_instructions(generated, outputs, list(xs))

        tf2onnx.convert.from_function(forward, input_signature=specs, opset=opset, output_path=str(path))


ADAPTER = Tf2Onnx
