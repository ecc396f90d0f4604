"""One differential test: generate a model, run it in its framework, convert it, check it, load it in
onnxruntime, run the same inputs there, and compare under every tolerance policy.

Outcomes, as the study's Table 11: ``conversion-failure`` (the converter raised, or wrote a model
the ONNX checker rejects; with the stage the harness's rules read from the error),
``ort-failure`` (onnxruntime could not load or run the model), ``mismatch`` (outputs differ beyond
the campaign's policy), ``success``. Two more keep the record honest: ``framework-failure`` (the
framework itself fails on the generated inputs: nothing to compare) and ``generation-failure``.
A crash, abort or hang of a worker is recorded by the pool (``worker-crash``, ``timeout``).

Runs inside a worker process: it imports the framework, and may die.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.difftest.adapters import Adapter, load_adapter
from issuemine.difftest.generate import (
    CACHE_ENV,
    Generated,
    exportable,
    generate,
    random_inputs,
    run_instructions,
)
from issuemine.difftest.sequences import load_onnx_graph
from issuemine.domain.converters import knowledge
from issuemine.domain.stages import infer_stage
from issuemine.domain.tracebacks import exception_text, strip_ansi

OUTCOMES = (
    "success",
    "mismatch",
    "ort-failure",
    "conversion-failure",
    "framework-failure",
    "generation-failure",
    "worker-crash",
    "timeout",
)
TABLE_11 = ("conversion-failure", "ort-failure", "mismatch", "success")


def error_text(exc: BaseException, limit: int = 2000) -> str:
    return exception_text(exc)[:limit]


def error_record(exc: BaseException) -> dict[str, Any]:
    """The exception as the stage rules read it: type, message, frames, and its cause chain."""
    frames = [{"file": f.filename, "line": f.lineno, "func": f.name} for f in traceback.extract_tb(exc.__traceback__)]
    record: dict[str, Any] = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": strip_ansi(str(exc))[:4000],
        "frames": frames,
    }
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        record["cause"] = error_record(cause)
    return record


def adapter_of(job: dict[str, Any]) -> Adapter:
    """The job's converter adapter (issuemine/difftest/adapters/); jobs stored before adapters: by name."""
    spec = job.get("adapter") or {"torch.onnx": "issuemine.difftest.adapters.torch_onnx"}.get(
        job["converter"], "issuemine.difftest.adapters.tf2onnx"
    )
    return load_adapter(spec)(job)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one model of a campaign; every failure becomes the result, never an exception."""
    timings: dict[str, float] = {}
    result: dict[str, Any] = {"seed": job["seed"], "nodes": job["nodes"], "durations": timings}
    adapter = adapter_of(job)
    one_thread(adapter.framework)
    if job.get("nnsmith_cache"):  # the campaign's operator cache (generate.prepare_operator_cache)
        os.environ[CACHE_ENV] = str(job["nnsmith_cache"])
    start = time.perf_counter()
    try:
        if job.get("architecture"):  # a real architecture with seeded random weights (difftest/zoo.py)
            from issuemine.difftest.zoo import build

            generated = build(job["architecture"], job["seed"])
        else:
            generated = generate(adapter.framework, job["seed"], job["nodes"], job.get("dtypes"))
    except Exception as exc:
        timings["generate"] = time.perf_counter() - start
        return {**result, "outcome": "generation-failure", "error": error_text(exc)}
    timings["generate"] = generated.seconds
    result.update(node_count=len(generated.operators), operators=generated.operators)
    inputs = random_inputs(generated, int(job.get("inputs", 100)), job["seed"])

    start = time.perf_counter()
    try:
        expected = adapter.reference(generated, inputs)
    except Exception as exc:
        timings["framework"] = time.perf_counter() - start
        return {**result, "outcome": "framework-failure", "error": error_text(exc)}
    timings["framework"] = time.perf_counter() - start

    path = Path(job["out_dir"]) / f"c{job['campaign']}-n{job['nodes']}-s{job['seed']}{adapter.suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        quietly(adapter.convert, generated, inputs[0], path)
        if job.get("checker", True) and adapter.onnx_target:
            import onnx

            onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        timings["convert"] = time.perf_counter() - start
        stage, how = infer_stage(error_record(exc), "", knowledge().stages_for(job["converter"]))
        if type(exc).__module__.startswith("onnx") and adapter.onnx_target:
            stage, how = "validation", "the ONNX checker rejected the converted model"
        path.unlink(missing_ok=True)
        source = adapter.artifact(path)  # a converter that reads a file: the model it failed on is kept
        failed = {"outcome": "conversion-failure", "stage": stage, "stage_how": how, "error": error_text(exc)}
        return {**result, **failed, "onnx": _name(source) if source != path else None}
    timings["convert"] = time.perf_counter() - start
    if adapter.onnx_target:
        result["graph"] = load_onnx_graph(path).record()
    kept = adapter.artifact(path)

    start = time.perf_counter()
    try:
        loaded = adapter.load(path)
    except Exception as exc:
        timings["load"] = time.perf_counter() - start
        return {**result, "outcome": "ort-failure", "stage": "load", "error": error_text(exc), "onnx": _name(kept)}
    timings["load"] = time.perf_counter() - start

    start = time.perf_counter()
    try:
        actual = adapter.run(loaded, generated, inputs)
    except Exception as exc:
        timings["run"] = time.perf_counter() - start
        return {**result, "outcome": "ort-failure", "stage": "run", "error": error_text(exc), "onnx": _name(kept)}
    timings["run"] = time.perf_counter() - start

    start = time.perf_counter()
    verdicts, worst, differing = compare(expected, actual, generated.outputs, job["policies"], job["policy"])
    # Beyond some tolerance: is it more than float32 rounding? (Within all of them, it is not.)
    rounding = noise_aware(generated, inputs, expected, actual) if not all(verdicts.values()) else True
    timings["compare"] = time.perf_counter() - start
    outcome = "success" if verdicts[job["policy"]] else "mismatch"
    if outcome == "success" and not job.get("keep_all"):
        path.unlink(missing_ok=True)
        if kept is not None and kept != path:
            kept.unlink(missing_ok=True)
    return {
        **result,
        "outcome": outcome,
        "policies": {**verdicts, NOISE_AWARE: rounding},
        "max_abs_diff": worst,
        "differing": differing,
        "onnx": _name(kept),
    }


def _name(path: Path | None) -> str | None:
    return str(path) if path is not None and path.exists() else None


def quietly(step: Any, *args: Any) -> Any:
    """A converter step with its warnings and prints kept out of the worker's output."""
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return step(*args)


def output_order(session: Any, outputs: list[str]) -> list[int]:
    """Which of the session's outputs is each framework output: by name where the converter kept
    the framework's names (a SavedModel's signature may list them in another order), else by
    position."""
    names = [o.name.split(":")[0] for o in session.get_outputs()]
    if sorted(names) == sorted(outputs) and len(set(names)) == len(names):
        return [names.index(name) for name in outputs]
    return list(range(len(names)))


def one_thread(framework: str) -> None:
    """One compute thread per worker, in the framework as in onnxruntime: a campaign runs one
    worker per core, and workers that each start a thread per core slow one another down."""
    if framework == "torch":
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already ran something in this process: its pools are fixed


def torch_outputs(module: Any, generated: Generated, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """A PyTorch module's outputs on one input set, fed in the model's input order."""
    import torch

    with torch.no_grad():
        out = module(*(torch.from_numpy(_contiguous(inputs[n])) for n in generated.inputs))
    out = out if isinstance(out, tuple | list) else (out,)
    return [o.detach().numpy() for o in out]


def framework_outputs(generated: Generated, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The framework's outputs for one input set, in the model's output order."""
    if generated.framework == "torch":
        return torch_outputs(exportable(generated), generated, inputs)
    import tensorflow as tf

    if generated.forward is not None:  # a zoo architecture: a Keras model
        return [np.asarray(o) for o in generated.forward(*(tf.convert_to_tensor(inputs[n]) for n in generated.inputs))]
    out = generated.model.run_eagerly({n: tf.convert_to_tensor(v) for n, v in inputs.items()})
    return [np.asarray(out[name]) for name in generated.outputs]


def convert(
    generated: Generated,
    example: dict[str, np.ndarray],
    path: Path,
    job: dict[str, Any],
    names: list[str] | None = None,
) -> None:
    """Convert the model as the campaign's converter does; with ``names``, with those tensors
    (intermediate ones too) as its outputs, in that order (``difftest localize``)."""
    quietly(adapter_of(job).convert, generated, example, path, names)


def convert_saved_model(generated: Generated, path: Path, opset: int) -> None:
    """The study's tf2onnx route (its artifact's exporter_test.py): NNSmith saves the model as a
    SavedModel (``tfnet``), and tf2onnx's command line converts that folder, run here in-process
    (its ``main`` with the command's arguments) rather than paying a TensorFlow start per model."""
    import shutil
    import sys

    from tf2onnx import convert as command

    folder = path.with_suffix(".savedmodel")
    shutil.rmtree(folder, ignore_errors=True)
    try:
        generated.model.dump(str(folder))
        argv = ["tf2onnx.convert", "--saved-model", str(folder / "tfnet"), "--opset", str(opset)]
        saved, sys.argv = sys.argv, [*argv, "--output", str(path)]
        try:
            command.main()
        finally:
            sys.argv = saved
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not path.exists():
        raise RuntimeError("tf2onnx.convert --saved-model wrote no model")


def export_keywords(export: Any, dynamo: bool) -> dict[str, Any]:
    """The exporter choice in the keywords this stack's ``torch.onnx.export`` knows: torch before
    2.5 (a stack of the study's time, ``difftest run --env``) has no ``dynamo`` keyword and only
    the TorchScript exporter."""
    import inspect

    known = inspect.signature(export).parameters
    if "dynamo" not in known:
        if dynamo:
            raise RuntimeError("this stack's torch.onnx.export has no dynamo exporter: use --exporter torchscript")
        return {}
    return {"dynamo": dynamo, **({"external_data": False} if dynamo and "external_data" in known else {})}


# The noise-aware oracle: a converted output is wrong only when it is further from a float64 run of
# the framework model than the framework's own float32 output is, by more than a small multiple
# plus a few units in the last place of the output's magnitude.
NOISE_AWARE = "noise-aware"
NOISE_MARGIN = 8.0
NOISE_ULPS = 16.0


def float64_outputs(
    generated: Generated, inputs: list[dict[str, np.ndarray]], names: list[str] | None = None
) -> list[list[np.ndarray]] | None:
    """The framework model run in float64 (its weights and float32 inputs widened) on each input
    set, its outputs or the tensors ``names``; None where that cannot be done: a TensorFlow model
    (its graph fixes its types), an input of another float type, or an operator without a float64
    kernel."""
    other_floats = any(dtype in ("float16", "bfloat16") for _, dtype in generated.inputs.values())
    if generated.framework != "torch" or other_floats:
        return None
    import copy

    import torch

    if generated.architecture is not None:
        return _zoo_float64(generated, inputs, names)
    try:
        wide = copy.copy(generated)
        wide.model = copy.deepcopy(generated.model)
        wide.model.torch_model = wide.model.torch_model.double()
        wide.exportable = None
        found = []
        for one in inputs:
            widened = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in one.items()}
            with torch.no_grad():
                args = [torch.from_numpy(_contiguous(widened[n])) for n in generated.inputs]
                out = run_instructions(wide, names or generated.outputs, args, widen=True)
            found.append([o.detach().numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in out])
        return found
    except Exception:
        return None


def _zoo_float64(
    generated: Generated, inputs: list[dict[str, np.ndarray]], names: list[str] | None = None
) -> list[list[np.ndarray]] | None:
    """A zoo architecture's float64 run, its outputs or the tensors ``names`` (leaf modules'
    outputs): its module widened (integer inputs such as token ids stay integers)."""
    import copy

    try:
        wide = copy.deepcopy(generated.exportable).double()
        if names:
            from issuemine.difftest.zoo import tapped

            wide = tapped(generated, names, wide)
        found = []
        for one in inputs:
            widened = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in one.items()}
            found.append(torch_outputs(wide, generated, widened))
        return found
    except Exception:
        return None


def noise_aware(
    generated: Generated,
    inputs: list[dict[str, np.ndarray]],
    expected: list[list[np.ndarray]],
    actual: list[list[np.ndarray]],
) -> bool | None:
    """Whether every converted output is as close to the float64 reference as the framework's own
    float32 output, within the margin (None: no float64 reference for this model)."""
    reference = float64_outputs(generated, inputs)
    if reference is None:
        return None
    for want_set, got_set, ref_set in zip(expected, actual, reference, strict=True):
        for want, got, ref in zip(want_set, got_set, ref_set, strict=False):
            ok = rounding_only(want, got, ref)
            if ok is None:
                return None
            if not ok:
                return False
    return True


def rounding_only(want: np.ndarray, got: np.ndarray, ref: np.ndarray) -> bool | None:
    """One output: ``got`` (converted) is no further from ``ref`` (float64) than ``want`` (the
    framework in float32) is, times NOISE_MARGIN, plus NOISE_ULPS units in the last place of the
    output's magnitude. Where a value is not finite, ``got`` must be what ``want`` or ``ref`` is."""
    want, got, ref = np.asarray(want), np.asarray(got), np.asarray(ref)
    if want.shape != got.shape:
        return False
    if not np.issubdtype(want.dtype, np.floating):
        return bool(np.array_equal(want, got))
    if ref.shape != want.shape:
        return None
    a, b, r = (x.astype(np.float64) for x in (want, got, ref))
    finite = np.isfinite(a) & np.isfinite(b) & np.isfinite(r)
    special = ~finite
    same = (np.isnan(b) & (np.isnan(a) | np.isnan(r))) | ((b == a) | (b == r))
    if np.any(special & ~same):
        return False
    if not finite.any():
        return True
    with np.errstate(over="ignore", invalid="ignore"):  # differences of huge finite values
        own = float(np.max(np.abs(a - r)[finite]))
        error = float(np.max(np.abs(b - r)[finite]))
        scale = float(np.max(np.abs(r)[finite]))
    return error <= NOISE_MARGIN * own + NOISE_ULPS * float(np.finfo(want.dtype).eps) * scale


def within(want: np.ndarray, got: np.ndarray, policy: dict[str, Any]) -> bool:
    """Whether one output is within a tolerance policy (see ``within_each``)."""
    return within_each(want, got, [policy])[policy["name"]]


def within_each(want: np.ndarray, got: np.ndarray, policies: list[dict[str, Any]]) -> dict[str, bool]:
    """Per policy, whether one output is within it: same shape; integers and booleans equal; floats
    as ``np.allclose(got, want, atol, rtol, equal_nan=True)`` (NaN equals NaN, Inf the same Inf),
    with the widening and the difference computed once for all policies."""
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape or not np.issubdtype(want.dtype, np.inexact):
        same = want.shape == got.shape and bool(np.array_equal(want, got))
        return {p["name"]: same for p in policies}
    a, b = _wide(want), _wide(got)
    infinite = np.isinf(a) | np.isinf(b)
    judged = ~((np.isnan(a) & np.isnan(b)) | (infinite & (a == b)))
    with np.errstate(invalid="ignore"):  # Inf - Inf and 0 × Inf: those places are judged apart
        diff, scale = np.abs(b - a), np.abs(a)
        return {
            p["name"]: bool(np.all((diff <= p["atol"] + p["rtol"] * scale)[judged] & ~infinite[judged]))
            for p in policies
        }


def max_delta(want: np.ndarray, got: np.ndarray) -> float | None:
    """max |Δ| over the values finite on both sides (None for other shapes, integers, booleans)."""
    want, got = np.asarray(want), np.asarray(got)
    if want.shape != got.shape or not np.issubdtype(want.dtype, np.inexact):
        return None
    a, b = _wide(want), _wide(got)
    finite = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[finite] - b[finite]))) if finite.any() else None


def _wide(value: np.ndarray) -> np.ndarray:
    return value.astype(np.complex128 if np.iscomplexobj(value) else np.float64)


def compare(
    expected: list[list[np.ndarray]],
    actual: list[list[np.ndarray]],
    names: list[str],
    policies: list[dict[str, Any]],
    decide: str,
) -> tuple[dict[str, bool], float | None, list[str]]:
    """Per policy, whether every output of every input set is within it; the max |Δ| over finite
    values (None when an output that differs under the deciding policy has none, its shape or integer
    values differing: the other outputs' max |Δ| would understate it); and the outputs that differ
    under the deciding policy."""
    verdicts = {p["name"]: True for p in policies}
    worst: float | None = None
    differing: set[str] = set()
    unmeasured = False
    for want_set, got_set in zip(expected, actual, strict=True):
        for name, want, got in zip(names, want_set, got_set, strict=False):
            delta = max_delta(want, got)
            if delta is not None:
                worst = delta if worst is None else max(worst, delta)
            for policy, ok in within_each(want, got, policies).items():
                if not ok:
                    verdicts[policy] = False
                    if policy == decide:
                        differing.add(name)
                        unmeasured |= delta is None
    return verdicts, None if unmeasured else worst, sorted(differing)


def _contiguous(value: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of the same shape (``np.ascontiguousarray`` turns a 0-d array into 1-d,
    which exports a rank-1 input for a scalar one)."""
    return np.array(value, order="C", copy=True)
