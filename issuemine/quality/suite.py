"""The offline suite (train the small models, convert, measure, store) and a user's own model."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.db import Database
from issuemine.errors import IssuemineError
from issuemine.quality import store
from issuemine.quality.data import Split, digits, load_inputs
from issuemine.quality.measure import Metric, Original, Settings, measure
from issuemine.quality.models import ARCHITECTURES, FRAMEWORKS, predict, quiet_tensorflow, train
from issuemine.quality.targets import targets_of

EPOCHS = {"torch": 30, "keras": 15}


@dataclass
class SuiteResult:
    suite: str
    models: list[str]
    rows: int
    timings: dict[str, float] = field(default_factory=dict)  # training, conversion, measurement, attacks


def _suite_id(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"


def run_suite(
    db: Database,
    frameworks: list[str],
    workdir: Path,
    seed: int = 0,
    settings: Settings | None = None,
    epochs: dict[str, int] | None = None,
    architectures: tuple[str, ...] = ARCHITECTURES,
    progress: Callable[[str], None] = lambda _: None,
) -> SuiteResult:
    """Train every architecture in every framework on the digits, convert to each target, measure, store.

    Each model's measurements are stored as soon as they are taken, so an interrupted suite keeps
    what it finished."""
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown:
        raise IssuemineError(f"unknown framework(s) {', '.join(unknown)}: choose from {', '.join(FRAMEWORKS)}")
    settings = settings or Settings()
    epochs = {**EPOCHS, **(epochs or {})}
    if "keras" in frameworks:
        quiet_tensorflow()
    data = digits(seed)
    suite = _suite_id("suite")
    params = {"seed": seed, "epochs": epochs, "settings": settings.__dict__, "data": "sklearn digits, 70/30 split"}
    result = SuiteResult(suite, [], 0)
    for framework in frameworks:
        for architecture in architectures:
            progress(f"training {framework}-{architecture}")
            start = time.perf_counter()
            trained = train(framework, architecture, data, seed, epochs[framework], workdir / "models")
            result.timings["training"] = result.timings.get("training", 0.0) + time.perf_counter() - start
            original = Original(trained.name, framework, trained.model, trained.path)
            metrics = measure(
                original, data, targets_of(framework), workdir / "converted", settings, progress, result.timings
            )
            metrics.append(
                Metric(trained.name, framework, "original", framework, "training_seconds", "", trained.seconds, "s")
            )
            result.rows += store.save(db, suite, metrics, {**params, "epochs_used": trained.epochs})
            result.models.append(trained.name)
    return result


def load_user_model(path: Path) -> tuple[str, Any]:
    """A user's model file: TorchScript (``.pt``/``.pth``), an ExportedProgram (``.pt2``), or Keras."""
    if not path.exists():
        raise IssuemineError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".keras", ".h5"):
            quiet_tensorflow()
            import keras

            return "keras", keras.models.load_model(path, compile=False)
        import torch

        if suffix == ".pt2":
            return "torch", torch.export.load(str(path)).module()
        model = torch.jit.load(str(path))
        model.eval()
        return "torch", model
    except Exception as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]
        kinds = "a Keras file" if suffix in (".keras", ".h5") else "a TorchScript (.pt) or ExportedProgram (.pt2) file"
        raise IssuemineError(f"{path}: not {kinds} that loads ({last[:200]})") from None


def run_user_model(
    db: Database,
    path: Path,
    input_shape: tuple[int, ...],
    workdir: Path,
    data_path: Path | None = None,
    settings: Settings | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> SuiteResult:
    """Convert and measure a user's own model file on their data (or random inputs, without accuracy)."""
    framework, model = load_user_model(path)
    if data_path is not None:
        data = load_inputs(data_path, input_shape)
    else:
        x = np.random.default_rng(0).random((256, *input_shape[1:]), dtype=np.float32)
        data = Split(x[:0], np.zeros(0, np.int64), x, None)
    try:
        logits = predict(framework, model, data.x_test[: max(1, input_shape[0])])
    except Exception as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]
        raise IssuemineError(f"{path} does not accept inputs of shape {input_shape}: {last[:200]}") from None
    if logits.ndim != 2:
        raise IssuemineError(f"{path} returns outputs of shape {logits.shape}: quality needs (batch, classes) logits")
    settings = settings or Settings()
    if data.y_test is None:
        settings.attacks = ()  # attack success needs true labels
    suite = _suite_id("model")
    result = SuiteResult(suite, [path.stem], 0)
    original = Original(path.stem, framework, model, path)
    metrics = measure(original, data, targets_of(framework), workdir / "converted", settings, progress, result.timings)
    params = {"file": str(path), "input_shape": list(input_shape), "data": str(data_path) if data_path else "random"}
    result.rows = store.save(db, suite, metrics, params)
    return result
