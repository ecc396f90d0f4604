"""The ONNX Runtime side of a comparison, run by the run server after the snippet has ended.

The shim, inside the snippet's process, only hands over what the framework side produced: the
exported model (a file, or its bytes), the inputs it fed and the framework's outputs, written to a
folder of the run (``meta.json`` and ``trials.npz``). The run server forks a fresh process from
itself (it never imported snippet code) once every process of the snippet is gone, and that
process loads the model, runs it in ONNX Runtime and compares under every tolerance policy. A
snippet that patches ``onnxruntime`` or forges the comparison in its own process therefore changes
nothing: what it can still influence is its own side (the outputs it hands over).

Standard library at import time (numpy, onnx and onnxruntime when a check runs), Python 3.8 syntax:
it runs in whatever environment the user picked.
"""

from __future__ import annotations

import json
import os
from typing import Any

from issuemine_shim import describe_exception

MAX_TRIALS = 16
MAX_TENSORS = 256


def _compare(reference: list[Any], actual: list[Any], policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per output: shapes, max |Δ|, max relative Δ and, per policy, whether it is within tolerance."""
    import numpy as np

    results = []
    for index, (want, got) in enumerate(zip(reference, actual)):
        want, got = np.asarray(want), np.asarray(got)
        row: dict[str, Any] = {"output": index, "shape": list(want.shape), "onnx_shape": list(got.shape)}
        if want.shape != got.shape:
            row.update(max_abs=None, max_rel=None, within={p["name"]: False for p in policies}, problem="shape")
            results.append(row)
            continue
        if want.dtype.kind in "fc" or got.dtype.kind in "fc":
            a, b = want.astype(np.float64), got.astype(np.float64)
            nan_same = np.isnan(a) & np.isnan(b)
            diff = np.where(nan_same, 0.0, np.abs(a - b))
            diff = np.where(np.isnan(diff), np.inf, diff)
            scale = np.abs(a)
            rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), np.where(diff > 0, np.inf, 0.0))
            row["max_abs"] = float(diff.max()) if diff.size else 0.0
            row["max_rel"] = float(rel.max()) if rel.size else 0.0
            row["within"] = {
                p["name"]: bool(np.all(diff <= float(p["atol"]) + float(p["rtol"]) * scale)) for p in policies
            }
        else:
            equal = bool(np.array_equal(want, got))
            row.update(max_abs=0.0 if equal else None, max_rel=0.0 if equal else None)
            row["within"] = {p["name"]: equal for p in policies}
            if not equal:
                row["problem"] = "values"
        results.append(row)
    if len(reference) != len(actual):
        results.append({"output": None, "problem": f"{len(reference)} framework outputs, {len(actual)} ONNX outputs"})
    return results


def _worst(trials: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    worst = [dict(row) for row in trials[0]]
    for trial in trials[1:]:
        for row, new in zip(worst, trial):
            for key in ("max_abs", "max_rel"):
                if new.get(key) is None or (row.get(key) is not None and new[key] > row[key]):
                    row[key] = new.get(key)
            if "within" in row and "within" in new:
                row["within"] = {k: row["within"][k] and new["within"].get(k, False) for k in row["within"]}
            if new.get("problem"):
                row["problem"] = new["problem"]
    return worst


def onnx_facts(model: Any) -> dict[str, Any]:
    try:
        import onnx

        proto = model if hasattr(model, "graph") else onnx.load(model, load_external_data=False)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        names = [n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in proto.graph.node]
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        return {
            "opset": opset,
            "ir_version": proto.ir_version,
            "nodes": len(proto.graph.node),
            "ops": sorted(counts)[:300],
            "op_counts": dict(sorted(counts.items())[:300]),
            "attributes": _attributes(proto),
        }
    except Exception as exc:
        return {"onnx_error": describe_exception(exc)}


def _attributes(proto: Any, limit: int = 60) -> dict[str, list[str]]:
    """Per operator, its distinct scalar attributes (``mode=b'linear'``, ``axis=1``): what a
    graph-level report (a wrong attribute, a missing fusion) is about."""
    import onnx

    found: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.type in (onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING):
                value = onnx.helper.get_attribute_value(attribute)
                found.setdefault(node.op_type, set()).add(f"{attribute.name}={value!r}"[:80])
    return {op: sorted(values)[:10] for op, values in sorted(found.items())[:limit]}


def _session(model: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _trials(folder: str, meta: dict[str, Any]) -> list[tuple[list[Any], list[Any]]]:
    """The framework side: per trial, the framework's outputs and the inputs it was fed."""
    import numpy as np

    counts = meta.get("trials")
    if not isinstance(counts, list) or not counts:
        return []
    with np.load(os.path.join(folder, "trials.npz"), allow_pickle=False) as arrays:
        found = []
        for t, pair in enumerate(counts[:MAX_TRIALS]):
            outputs, inputs = (min(int(n), MAX_TENSORS) for n in pair)
            found.append(
                ([arrays[f"ref{t}_{i}"] for i in range(outputs)], [arrays[f"feed{t}_{i}"] for i in range(inputs)])
            )
        return found


def check(folder: str, policies: list[dict[str, Any]], report: Any = None) -> dict[str, Any]:
    """Load the handed-over model, run the handed-over inputs in ONNX Runtime, compare with the
    handed-over framework outputs. ``report(stage)`` is told when the model has loaded, so that a
    crash of ONNX Runtime itself is placed at loading or at running."""
    with open(os.path.join(folder, "meta.json")) as handle:
        meta = json.load(handle)
    model = meta.get("model")
    if not isinstance(model, str) or not model:
        return {"compare_skipped": "no model was handed over"}
    path = model if os.path.isabs(model) else os.path.join(folder, model)
    facts: dict[str, Any] = onnx_facts(path)
    try:
        session = _session(path)
    except Exception as exc:
        facts["ort"] = {"status": "load-fail", "error": describe_exception(exc)}
        return facts
    facts["ort"] = {"status": "loaded"}
    if report is not None:
        report("loaded")
    try:
        trials = _trials(folder, meta)
    except Exception as exc:  # the snippet's side of the folder: unreadable is not the model's fault
        facts["compare_skipped"] = f"the framework side could not be read: {type(exc).__name__}: {exc}"[:1000]
        return facts
    names = [i.name for i in session.get_inputs()]
    compared = []
    for reference, feeds in trials:
        if len(feeds) != len(names):
            facts["compare_skipped"] = f"{len(feeds)} tensor inputs captured, the ONNX model takes {len(names)}"
            return facts
        try:
            outputs = session.run(None, dict(zip(names, feeds)))
        except Exception as exc:
            facts["ort"] = {"status": "run-fail", "error": describe_exception(exc)}
            return facts
        compared.append(_compare(reference, outputs, policies))
    if compared:
        facts["compare"] = _worst(compared)
        facts["trials"] = len(compared)
    return facts
