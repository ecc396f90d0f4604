"""torch.onnx: a generated PyTorch model, exported by the TorchScript or the dynamo exporter."""

from __future__ import annotations

from pathlib import Path

from issuemine.difftest.adapters import Adapter, Inputs
from issuemine.difftest.generate import Generated


class TorchOnnx(Adapter):
    name = "torch.onnx"
    framework = "torch"
    exporters = ("torchscript", "dynamo")
    localizes = True

    def convert(self, generated: Generated, example: Inputs, path: Path, names: list[str] | None = None) -> None:
        import torch

        from issuemine.difftest.execute import _contiguous, export_keywords
        from issuemine.difftest.generate import computing, exportable

        args = tuple(torch.from_numpy(_contiguous(example[n])) for n in generated.inputs)
        extra = export_keywords(torch.onnx.export, self.exporter == "dynamo")
        torch.onnx.export(
            exportable(generated) if names is None else computing(generated, names),
            args,
            str(path),
            opset_version=int(self.job.get("opset") or 17),
            input_names=list(generated.inputs),
            output_names=names or generated.outputs,
            **extra,
        )


ADAPTER = TorchOnnx
