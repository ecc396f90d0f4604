"""Before → after measurements of one model and its converted forms.

Per model and target: accuracy on the test split, how many test inputs change their predicted
class, max and mean |Δ| of the logits, latency (p50 and p95, batch 1 and 32, one thread and the
runtime's default) and peak memory, each in a fresh process (``probe``), the size on disk, and
adversarial robustness: FGSM and PGD examples crafted on the original model with the Adversarial
Robustness Toolbox, their success rate on the original and on the converted model, and how many
fool one but not the other.

Timing on a shared machine is noisy: every latency is the median over rounds with the rounds'
range as its spread, and ratios are taken within one run of the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.errors import IssuemineError
from issuemine.quality.data import Split
from issuemine.quality.models import predict
from issuemine.quality.targets import (
    NOT_ON_THIS_PLATFORM,
    Converted,
    convert,
    onnx_predict,
    onnx_session,
    size_bytes,
)

ORIGINAL = "original"


@dataclass
class Settings:
    """How much measuring: the full suite's defaults, or ``quick()`` for tests."""

    runs: int = 50
    repeats: int = 5
    warmup: int = 20
    batches: tuple[int, ...] = (1, 32)
    threads: tuple[int, ...] = (1, 0)  # 0: the runtime's default
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: tuple[float, ...] = (0.05, 0.1, 0.2)
    attack_examples: int = 300
    probe_timeout: float = 600.0

    @classmethod
    def quick(cls) -> Settings:
        return cls(runs=5, repeats=2, warmup=2, threads=(1,), eps=(0.1,), attack_examples=60)


@dataclass
class Metric:
    model: str
    framework: str
    target: str
    route: str
    metric: str
    setting: str
    value: float | None
    unit: str
    low: float | None = None
    high: float | None = None
    note: str | None = None


@dataclass
class Original:
    name: str
    framework: str  # torch or keras
    model: Any
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def runtime(self) -> str:
        return self.framework


Progress = Callable[[str], None]


def measure(
    original: Original,
    data: Split,
    targets: tuple[str, ...],
    out: Path,
    settings: Settings,
    progress: Progress = lambda _: None,
    timings: dict[str, float] | None = None,
) -> list[Metric]:
    """Every metric of ``original`` and its conversions to ``targets``."""
    timings = timings if timings is not None else {}
    found: list[Metric] = []

    def add(target: str, route: str, metric: str, value: float | None, unit: str, setting: str = "", **kw: Any) -> None:
        found.append(Metric(original.name, original.framework, target, route, metric, setting, value, unit, **kw))

    x, y = data.x_test, data.y_test
    before = predict(original.framework, original.model, x)
    _accuracy(add, ORIGINAL, original.framework, before, y)
    add(ORIGINAL, original.framework, "size", float(size_bytes(original.path)), "bytes", note=original.path.name)

    converted: list[tuple[Converted, Any]] = []
    for target in targets:
        progress(f"{original.name}: converting to {target}")
        start = time.perf_counter()
        result = convert(original.framework, original.model, x, target, out, original.name)
        _tick(timings, "conversion", start)
        add(target, result.route, "conversion_seconds", result.seconds, "s", note=result.error)
        if result.path is None:
            add(target, result.route, "converted", 0.0, "bool", note=result.error)
            continue
        add(target, result.route, "converted", 1.0, "bool")
        add(target, result.route, "size", float(size_bytes(result.path)), "bytes", note=result.path.name)
        if not result.runs_here:
            add(target, result.route, "accuracy", None, "share", note=NOT_ON_THIS_PLATFORM)
            continue
        session = onnx_session(result.path)
        after = onnx_predict(session, x)
        _accuracy(add, target, result.route, after, y)
        for metric, (value, unit) in agreement(before, after).items():
            add(target, result.route, metric, value, unit, note=f"of {len(x)}" if unit == "inputs" else None)
        converted.append((result, session))

    start = time.perf_counter()
    runtimes = [(ORIGINAL, original.framework, original.runtime, original.path)] + [
        (c.target, c.route, "onnxruntime", c.path) for c, _ in converted if c.path is not None
    ]
    for target, route, runtime, path in runtimes:
        progress(f"{original.name}: timing {target} in {runtime}")
        for measured in _probe_metrics(runtime, path, data.input_shape, settings):
            add(target, route, **measured)
    _tick(timings, "measurement", start)

    if y is not None and settings.attacks:
        start = time.perf_counter()
        progress(f"{original.name}: adversarial examples (ART)")
        for measured in _robustness(original, data, converted, settings, classes=before.shape[1]):
            add(**measured)
        _tick(timings, "attacks", start)
    return found


def agreement(before: np.ndarray, after: np.ndarray) -> dict[str, tuple[float, str]]:
    """How far a converted model's logits are from the original's on the same inputs: inputs whose
    predicted class changes (count and share), and max and mean |Δ| of the logits."""
    changed = before.argmax(1) != after.argmax(1)
    delta = np.abs(before.astype(np.float64) - after.astype(np.float64))
    return {
        "changed_predictions": (float(changed.sum()), "inputs"),
        "changed_share": (float(changed.mean()), "share"),
        "max_abs_diff": (float(delta.max()), "logit"),
        "mean_abs_diff": (float(delta.mean()), "logit"),
    }


def _tick(timings: dict[str, float], what: str, start: float) -> None:
    timings[what] = timings.get(what, 0.0) + time.perf_counter() - start


def _accuracy(add: Callable[..., None], target: str, route: str, logits: np.ndarray, y: np.ndarray | None) -> None:
    if y is None:
        add(target, route, "accuracy", None, "share", note="no labels in the data: accuracy not measured")
        return
    add(target, route, "accuracy", float((logits.argmax(1) == y).mean()), "share", note=f"{len(y)} test inputs")


def probe(args: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh process (see ``probe.py``)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "issuemine.quality.probe", json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise IssuemineError(f"measuring {args['path']} in {args['runtime']} took over {timeout:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise IssuemineError(f"measuring {args['path']} in {args['runtime']} failed: {last}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _probe_metrics(runtime: str, path: Path, input_shape: tuple[int, ...], settings: Settings) -> list[dict[str, Any]]:
    base = {
        "runtime": runtime,
        "path": str(path),
        "input_shape": list(input_shape),
        "batches": list(settings.batches),
        "runs": settings.runs,
        "repeats": settings.repeats,
        "warmup": settings.warmup,
    }
    found = []
    for threads in settings.threads:
        result = probe({**base, "mode": "latency", "threads": threads}, settings.probe_timeout)
        for batch, rounds in result["latency"].items():
            setting = f"batch={batch},threads={threads or 'default'}"
            for quantile in ("p50", "p95"):
                values = rounds[quantile]
                found.append(
                    {
                        "metric": f"latency_{quantile}_ms",
                        "setting": setting,
                        "value": float(np.median(values)),
                        "unit": "ms",
                        "low": float(min(values)),
                        "high": float(max(values)),
                        "note": f"median of {len(values)} rounds of {settings.runs} calls",
                    }
                )
    memory = probe({**base, "mode": "memory", "threads": 0}, settings.probe_timeout)["memory"]
    setting = f"batch={memory['batch']}"
    found.append({"metric": "peak_memory_mb", "setting": setting, "value": memory["process_peak_mb"], "unit": "MB"})
    if memory["inference_mb"] is not None:
        found.append(
            {"metric": "inference_memory_mb", "setting": setting, "value": memory["inference_mb"], "unit": "MB"}
        )
    return found


def _robustness(
    original: Original, data: Split, converted: list[tuple[Converted, Any]], settings: Settings, classes: int
) -> list[dict[str, Any]]:
    """Attack success on the original and every runnable conversion, with examples crafted on the original."""
    assert data.y_test is not None
    x, y = data.x_test[: settings.attack_examples], data.y_test[: settings.attack_examples]
    classifier = _art_classifier(original, data, classes)
    found = []
    for attack in settings.attacks:
        for eps in settings.eps:
            adversarial = _attack(classifier, attack, eps).generate(x=x)
            fooled = predict(original.framework, original.model, adversarial).argmax(1) != y
            setting = f"attack={attack},eps={eps:g}"
            found.append(_row(ORIGINAL, original.framework, "attack_success", float(fooled.mean()), setting, len(x)))
            for result, session in converted:
                here = onnx_predict(session, adversarial).argmax(1) != y
                route = result.route
                found.append(_row(result.target, route, "attack_success", float(here.mean()), setting, len(x)))
                found.append(_row(result.target, route, "fools_original_only", float((fooled & ~here).sum()), setting))
                found.append(_row(result.target, route, "fools_converted_only", float((here & ~fooled).sum()), setting))
    return found


def _row(target: str, route: str, metric: str, value: float, setting: str, n: int | None = None) -> dict[str, Any]:
    if n is not None:
        return {
            "target": target,
            "route": route,
            "metric": metric,
            "value": value,
            "setting": setting,
            "unit": "share",
            "note": f"{n} test inputs",
        }
    return {"target": target, "route": route, "metric": metric, "value": value, "setting": setting, "unit": "inputs"}


def _art_classifier(original: Original, data: Split, classes: int) -> Any:
    shape = data.input_shape
    if original.framework == "torch":
        import torch
        from art.estimators.classification import PyTorchClassifier

        return PyTorchClassifier(
            model=original.model,
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=shape,
            nb_classes=classes,
            clip_values=(0.0, 1.0),
        )
    import keras
    from art.estimators.classification import TensorFlowV2Classifier

    return TensorFlowV2Classifier(
        model=original.model,
        nb_classes=classes,
        input_shape=shape,
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=(0.0, 1.0),
    )


def _attack(classifier: Any, attack: str, eps: float) -> Any:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

    if attack == "fgsm":
        return FastGradientMethod(classifier, eps=eps)
    if attack == "pgd":
        return ProjectedGradientDescent(classifier, eps=eps, eps_step=eps / 4, max_iter=10, verbose=False)
    raise ValueError(attack)
