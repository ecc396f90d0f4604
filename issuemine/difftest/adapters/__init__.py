"""Converters under differential test: one adapter module per converter, behind one interface
(:class:`Adapter`). A converter file names its module (``difftest_adapter``), so a converter joins
``difftest`` through its file and, where code is unavoidable, one small module here or of its own
(``difftest_adapter = "my_adapter.py"``, beside the converter file); ``difftest/`` is not edited.

Each module defines ``ADAPTER``, an :class:`Adapter` subclass. Its steps, run by the worker
(``execute.run_job``) in order: the reference outputs of the model the converter reads, the
conversion, loading the converted model in its runtime, and running it on the same inputs. Table 11's
outcomes follow those steps (a failed load or run is the target runtime's failure, ``ort-failure``,
whatever the runtime), so Tables 11 and 12, localization and signatures work for every adapter.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.errors import IssuemineError

Inputs = dict[str, np.ndarray]


class Adapter:
    """How one converter is differential-tested. The defaults are a converter *to ONNX* whose
    converted model runs in ONNX Runtime; subclasses override what differs."""

    name = ""  # the converter's catalog name
    framework = "torch"  # which NNSmith model type is generated: torch or tensorflow
    exporters: tuple[str, ...] = ()  # the choices of --exporter; the first is the default
    suffix = ".onnx"  # the converted model's file
    onnx_target = True  # the converted model is ONNX (its graph is recorded for Table 12)
    localizes = False  # can write the model with intermediate tensors as outputs (difftest localize)

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job

    @property
    def exporter(self) -> str:
        return str(self.job.get("exporter") or (self.exporters[0] if self.exporters else self.name))

    def reference(self, generated: Any, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        """The outputs the converted model must reproduce: by default the framework model's."""
        from issuemine.difftest.execute import framework_outputs

        return [framework_outputs(generated, one) for one in inputs]

    def convert(self, generated: Any, example: Inputs, path: Path, names: list[str] | None = None) -> None:
        raise NotImplementedError

    def artifact(self, path: Path) -> Path | None:
        """The file kept for a failing or mismatching model (a bug report's attachment)."""
        return path

    def load(self, path: Path) -> Any:
        from issuemine.quality.targets import onnx_session

        return onnx_session(path, threads=1)

    def run(self, loaded: Any, generated: Any, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        from issuemine.difftest.execute import output_order

        feeds = {i.name: i.name.split(":")[0] for i in loaded.get_inputs()}  # tf2onnx may add ":0"
        order = output_order(loaded, generated.outputs)
        actual = []
        for one in inputs:
            got = loaded.run(None, {name: one[key] for name, key in feeds.items() if key in one})
            actual.append([got[i] for i in order])
        return actual

    # -- difftest localize ----------------------------------------------------------------------
    # The model is written once more with every intermediate tensor as a named output (an ONNX model:
    # the converted one for a converter to ONNX, the source for one that reads ONNX); the reference
    # values of those tensors are the framework's, or ONNX Runtime's where the reference is the ONNX
    # source; and any cut of that ONNX model is run as the converter's output would be.

    reference_is_onnx = False  # the reference outputs are ONNX Runtime's on the source (onnx2torch, onnx2tf)

    def intermediates(self, generated: Any, example: Inputs, path: Path, names: list[str]) -> None:
        """Write the ONNX model whose outputs are the tensors ``names``, named so."""
        self.convert(generated, example, path, names)

    def run_onnx(self, model: Any, feeds: list[Inputs]) -> list[list[np.ndarray]]:
        """An ONNX model (the intermediates model, or a cut of it) converted once and run as the
        converter's output is, on each input set: its outputs in the model's order. For a converter
        to ONNX: the model itself, in ONNX Runtime."""
        from issuemine.quality.targets import onnx_session

        session = onnx_session(model.SerializeToString(), threads=1)
        return [list(session.run(None, one)) for one in feeds]


def load_adapter(spec: str) -> type[Adapter]:
    """The adapter class of ``spec``: a module name, or a .py file's path."""
    return _load(spec)


@cache
def _load(spec: str) -> type[Adapter]:
    if spec.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(f"issuemine_adapter_{Path(spec).stem}", spec)
        if module_spec is None or module_spec.loader is None:
            raise IssuemineError(f"difftest adapter {spec}: cannot be loaded")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(spec)
    found = getattr(module, "ADAPTER", None)
    if not (isinstance(found, type) and issubclass(found, Adapter)):
        raise IssuemineError(f"difftest adapter {spec}: it defines no ADAPTER (an Adapter subclass)")
    return found


def adapter_spec(converter: str) -> str:
    """The adapter module a converter's file names; a clear error for one that names none."""
    from issuemine.domain.converters import load_catalog

    catalog = load_catalog()
    testable = sorted(name for name, c in catalog.items() if c.difftest_adapter)
    entry = catalog.get(converter)
    if entry is None or not entry.difftest_adapter:
        raise IssuemineError(
            f"--converter {converter!r}: choose {', '.join(testable)} (a converter file joins difftest with "
            "difftest_adapter = MODULE or FILE.py)"
        )
    return entry.difftest_adapter
