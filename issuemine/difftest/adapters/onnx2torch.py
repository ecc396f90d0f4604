"""onnx2torch (ONNX → PyTorch), the reverse direction: the model under test is an ONNX model (the
generated PyTorch model, exported once by torch.onnx's TorchScript exporter), its reference
outputs are ONNX Runtime's, and the converted PyTorch module runs on the same inputs. A model the
exporter cannot write has no ONNX source: that is the source side's failure (``framework-failure``),
not onnx2torch's.

``--exporter round-trip`` tests the pair the other way round: PyTorch → ONNX (torch.onnx) → PyTorch
(onnx2torch), against the generated PyTorch model's own outputs; a failure of either converter is
a conversion failure, the stage rules of both read its message."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.difftest.adapters import Adapter, Inputs
from issuemine.difftest.adapters.torch_onnx import TorchOnnx
from issuemine.difftest.generate import Generated


class OnnxToTorch(Adapter):
    name = "onnx2torch"
    framework = "torch"
    exporters = ("onnx2torch", "round-trip")
    suffix = ".pt"
    onnx_target = False
    localizes = True  # on the ONNX source written with every intermediate as an output

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(job)
        self.source: Path | None = None
        self.module: Any = None

    @property
    def round_trip(self) -> bool:
        return self.exporter == "round-trip"

    def reference(self, generated: Generated, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        if self.round_trip:
            return Adapter.reference(self, generated, inputs)  # the PyTorch model's own outputs
        source = self._export(generated, inputs[0])
        return Adapter.run(self, Adapter.load(self, source), generated, inputs)

    def convert(self, generated: Generated, example: Inputs, path: Path, names: list[str] | None = None) -> None:
        import onnx

        if self.round_trip:  # the first leg is part of the conversion under test
            self._export(generated, example)
        convert = _onnx2torch_convert()
        assert self.source is not None, "the ONNX source is written first"
        self.module = convert(onnx.load(str(self.source)))

    def _export(self, generated: Generated, example: Inputs) -> Path:
        job = self.job
        source = Path(job["out_dir"]) / f"c{job['campaign']}-n{job['nodes']}-s{job['seed']}.src.onnx"
        source.parent.mkdir(parents=True, exist_ok=True)
        self.source = source
        TorchOnnx({**job, "exporter": "torchscript"}).convert(generated, example, source)
        return source

    def load(self, path: Path) -> Any:
        return self.module.eval()

    def artifact(self, path: Path) -> Path | None:
        return self.source  # the model under test: onnx2torch converts it again in a second

    def run(self, loaded: Any, generated: Generated, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        from issuemine.difftest.execute import torch_outputs

        return [torch_outputs(loaded, generated, one) for one in inputs]

    @property
    def reference_is_onnx(self) -> bool:  # type: ignore[override]
        return not self.round_trip  # the round trip's reference is the PyTorch model's

    def intermediates(self, generated: Generated, example: Inputs, path: Path, names: list[str]) -> None:
        """The source as torch.onnx's TorchScript exporter writes it, every intermediate an output
        (for the round trip, the first leg's conversion with them)."""
        TorchOnnx({**self.job, "exporter": "torchscript"}).convert(generated, example, path, names)
        _outputs_from_nodes(path)

    def run_onnx(self, model: Any, feeds: list[Inputs]) -> list[list[np.ndarray]]:
        import torch

        names = [i.name for i in model.graph.input]  # read first: onnx2torch edits the proto it converts
        copy = type(model)()
        copy.CopyFrom(model)
        module = _onnx2torch_convert()(copy).eval()
        found = []
        for one in feeds:
            args = [torch.from_numpy(np.array(one[name], order="C", copy=True)) for name in names]
            with torch.no_grad():
                out = module(*args)
            out = out if isinstance(out, tuple | list) else (out,)
            found.append([o.detach().numpy() for o in out])
        return found


def _outputs_from_nodes(path: Path) -> None:
    """Every graph output made a node's output: the exporter folds a constant intermediate into an
    initializer and lists it as an output, which onnx2torch cannot convert (it looks outputs up
    among node outputs). An Identity node stands between, the output keeping its place."""
    import onnx

    model = onnx.load(str(path))
    sources = {i.name for i in model.graph.initializer} | {i.name for i in model.graph.input}
    changed = False
    for output in model.graph.output:
        if output.name in sources:
            new = f"{output.name}__output"
            model.graph.node.append(onnx.helper.make_node("Identity", [output.name], [new]))
            output.name = new
            changed = True
    if changed:
        onnx.save(model, str(path))


def _onnx2torch_convert() -> Any:
    """onnx2torch's ``convert``. onnx2torch imports torchvision for two converters only (NMS and
    RoiAlign, which generated models never contain). Where torchvision does not load (none
    installed, or one built for another torch: scripts/setup.sh installs onnx2torch without it), a
    placeholder stands in whose functions raise, so those two operators fail as unconvertible and
    every other converter works."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or the RuntimeError of a torchvision built against another torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = _placeholder_torchvision()
    from onnx2torch import convert

    return convert


def _placeholder_torchvision() -> tuple[types.ModuleType, types.ModuleType]:
    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("torchvision is not installed: onnx2torch's NMS and RoiAlign need it")

    package, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    for name in ("nms", "roi_align", "box_convert", "batched_nms"):
        setattr(ops, name, missing)
    package.ops = ops  # type: ignore[attr-defined]
    package.__version__ = "0+placeholder"  # type: ignore[attr-defined]
    return package, ops


ADAPTER = OnnxToTorch
