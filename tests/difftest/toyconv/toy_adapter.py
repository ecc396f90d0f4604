"""A test-only difftest adapter: "converts" a generated PyTorch model into itself plus 1e-3, a
converter wrong by design, so every model it converts mismatches under the strict policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from issuemine.difftest.adapters import Adapter, Inputs


class Toy(Adapter):
    name = "toyconv"
    framework = "torch"
    exporters = ("toy",)
    suffix = ".toy"
    onnx_target = False

    def convert(self, generated: Any, example: Inputs, path: Path, names: list[str] | None = None) -> None:
        path.write_text("a converted model, in name only\n")

    def load(self, path: Path) -> Any:
        from issuemine.difftest.execute import framework_outputs

        return framework_outputs

    def run(self, loaded: Any, generated: Any, inputs: list[Inputs]) -> list[list[np.ndarray]]:
        return [[np.asarray(o) + np.asarray(1e-3, dtype=o.dtype) for o in loaded(generated, one)] for one in inputs]


ADAPTER = Toy
