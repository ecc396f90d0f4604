"""Stage inference and verdict rules on recorded evidence (no sandbox needed)."""

from __future__ import annotations

import signal

from issuemine.domain.converters import knowledge
from issuemine.domain.stages import infer_stage
from issuemine.domain.tracebacks import parse_traceback
from issuemine.repro.verdicts import decide

RULES = knowledge().stages

OLD_TORCH = """Traceback (most recent call last):
  File "export.py", line 12, in <module>
    torch.onnx.export(model, x, "m.onnx", opset_version=11)
  File "/opt/conda/lib/python3.8/site-packages/torch/onnx/utils.py", line 639, in _export
    _retain_param_name)
  File "/opt/conda/lib/python3.8/site-packages/torch/onnx/utils.py", line 203, in _optimize_graph
    graph = torch._C._jit_pass_onnx(graph, operator_export_type)
  File "/opt/conda/lib/python3.8/site-packages/torch/onnx/symbolic_registry.py", line 111, in get_registered_op
    raise RuntimeError(msg)
RuntimeError: Exporting the operator silu to ONNX opset version 11 is not supported. Please open a bug.
"""

CHAINED = """Traceback (most recent call last):
  File "/usr/lib/python3/site-packages/tf2onnx/tfonnx.py", line 292, in tensorflow_onnx_mapping
    func(g, node, **kwargs, initialized_tables=initialized_tables, dequantize=dequantize)
  File "/usr/lib/python3/site-packages/tf2onnx/onnx_opset/nn.py", line 401, in version_1
    raise ValueError("dilations must be constant")
ValueError: dilations must be constant

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "convert.py", line 3, in <module>
    tf2onnx.convert.from_keras(model)
  File "/usr/lib/python3/site-packages/tf2onnx/convert.py", line 493, in from_keras
    model_proto, external_tensor_storage = _convert_common(
RuntimeError: conversion failed
"""


def test_old_torch_traceback_is_node_conversion_by_its_message():
    error = parse_traceback(OLD_TORCH)
    assert error is not None and error["type"] == "RuntimeError" and len(error["frames"]) == 4
    stage, how = infer_stage(error, "", RULES)
    assert stage == "node-conversion" and how.startswith("message")
    without_message = parse_traceback(OLD_TORCH.replace("Exporting the operator silu", "Operator silu"))
    assert infer_stage(without_message, "", RULES) == (
        "node-conversion",
        "frame torch/onnx/symbolic_registry.py:get_registered_op",
    )


def test_chained_tracebacks_use_the_innermost_cause():
    error = parse_traceback(CHAINED)
    assert error is not None and error["type"] == "RuntimeError" and error["cause"]["type"] == "ValueError"
    assert infer_stage(error, "", RULES)[0] == "node-conversion"  # tf2onnx/onnx_opset, not convert.py


def test_no_traceback_and_unknown_frames():
    assert parse_traceback("the export just produces garbage") is None
    # An error no rule places is read as raters of the development set read it: node conversion.
    error = parse_traceback('Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nKeyError: 3\n')
    assert infer_stage(error, "", RULES) == (
        "node-conversion",
        "a conversion error no rule places (raters place these in node conversion)",
    )
    # Nothing to read at all, and a failed import, stay "not distinguishable".
    assert infer_stage(None, "", RULES)[0] == "not-distinguishable"
    missing = parse_traceback(
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "ModuleNotFoundError: No module named 'tf2onnx'\n"
    )
    assert infer_stage(missing, "", RULES) == ("not-distinguishable", "an import failure: no conversion step ran")


def test_converter_frames_outrank_onnx_frames_below_them():
    # tf2onnx infers one node's shape with ONNX's shape inference while converting it.
    error = {
        "type": "RuntimeError",
        "message": "input 2 is out of bounds",
        "frames": [
            {"file": "/site-packages/tf2onnx/schemas.py", "line": 157, "func": "infer_onnx_shape_dtype"},
            {"file": "/site-packages/onnx/shape_inference.py", "line": 35, "func": "infer_shapes"},
        ],
    }
    assert infer_stage(error, "", RULES)[0] == "node-conversion"
    # The user's own call of ONNX's shape inference after the conversion: ONNX's frame decides.
    error["frames"] = error["frames"][1:]
    assert infer_stage(error, "", RULES)[0] == "validation"


def test_tf2onnx_log_lines_place_an_error_raised_later():
    tail = (
        "2021-08-26 15:48:15,838 - ERROR - Failed to convert node 'pad/MirrorPad' (fct=<bound method Pad.version_11>)\n"
        "Traceback (most recent call last):\n  ...\nValueError: something went wrong\n"
    )
    error = parse_traceback(tail)
    assert infer_stage(error, tail, RULES) == (
        "node-conversion",
        "log line matching 'ERROR - Failed to convert node'",
    )


def test_dynamo_progress_messages_locate_a_hang():
    tail = (
        "[torch.onnx] Obtain model graph for `M()` with `torch.export.export(..., strict=False)`... ✅\n"
        "[torch.onnx] Run decompositions...\n"
    )
    result = {"events": [{"event": "start", "pid": 5}, {"event": "convert-start", "pid": 5}], "timed_out": True}
    verdict = decide({**result, "tail": tail, "timeout": 5}, "torch-testing", RULES)
    assert (verdict.verdict, verdict.stage) == ("hang", "graph-optimization")


def test_a_converter_killing_the_interpreter_is_a_crash():
    events = [{"event": "start", "pid": 5}, {"event": "convert-start", "pid": 5}]
    verdict = decide({"events": events, "signal": signal.SIGSEGV, "tail": ""}, "torch-testing", RULES)
    assert verdict.verdict == "crash" and "signal 11" in (verdict.reason or "")
    events.append({"event": "converted", "pid": 5})  # export done; the framework's reference run died
    verdict = decide({"events": events, "signal": signal.SIGSEGV, "tail": ""}, "torch-testing", RULES)
    assert verdict.verdict == "converted-not-compared" and "signal 11" in (verdict.reason or "")


def test_onnx_runtime_dying_in_the_checker_is_a_runtime_failure():
    """ONNX Runtime runs in the run server's checker: its crash comes back as the call's ``ort``."""
    ort = {"status": "load-fail", "error": {"type": "issuemine.CheckFailed", "message": "killed (signal 11)"}}
    events = [{"event": "start", "pid": 5}, {"event": "convert", "status": "ok", "ort": ort, "pid": 5}]
    verdict = decide({"events": events, "exit_code": 0, "tail": ""}, "torch-testing", RULES)
    assert verdict.verdict == "ort-load-fail" and "signal 11" in (verdict.reason or "")


def test_forged_or_malformed_events_do_not_break_the_verdict():
    events = [
        "not a dict",
        {"event": "convert", "status": "ok", "compare": "nonsense", "ort": 3},
        {"event": "convert", "status": "error", "error": {"frames": "x", "type": None}},
        {"event": ["weird"]},
    ]
    verdict = decide({"events": events, "tail": None, "exit_code": 1}, "torch-testing", RULES)
    assert verdict.verdict == "crash" and verdict.stage == "not-distinguishable"


def test_policy_is_applied_per_output():
    call = {
        "event": "convert",
        "status": "ok",
        "ort": {"status": "loaded"},
        "compare": [
            {"output": 0, "max_abs": 1e-6, "within": {"study": False, "nnsmith": True}},
            {"output": 1, "max_abs": 0.0, "within": {"study": True, "nnsmith": True}},
        ],
    }
    result = {"events": [{"event": "start", "pid": 1}, call], "exit_code": 0, "tail": ""}
    assert decide(result, "nnsmith", RULES).verdict == "passes"
    strict = decide(result, "study", RULES)
    assert (
        strict.verdict == "wrong-model"
        and strict.reason == "1 of 2 output(s) differ beyond policy study (max |Δ| 1e-06)"
    )


LINK = "(https://localhost:8080/#)"  # Colab links every frame
NOTEBOOK = f"""---------------------------------------------------------------------------
UnsupportedOperatorError                  Traceback (most recent call last)
[<ipython-input-3-1f2e>]{LINK} in <cell line: 1>()
----> 1 torch.onnx.export(model, tokens, "text.onnx", opset_version=12)

[/usr/local/lib/python3.10/dist-packages/torch/onnx/utils.py]{LINK} in _run_symbolic_function(graph, node)
   1900                 return graph_context.op(op_name, *inputs, **attrs)
-> 1901             raise errors.UnsupportedOperatorError(

/usr/local/lib/python3.10/dist-packages/torch/onnx/errors.py in __init__(self, name, version, supported_version)
     38             msg = diagnostic_rule.format_message(name, version, supported_version)

UnsupportedOperatorError: Exporting the operator 'aten::unflatten' to ONNX opset version 12 is not supported.
"""


def test_notebook_tracebacks_are_read_too():
    error = parse_traceback(NOTEBOOK)
    assert error is not None and error["type"] == "UnsupportedOperatorError"
    assert [f["func"] for f in error["frames"]] == ["_run_symbolic_function", "__init__"]
    assert error["frames"][0]["file"] == "/usr/local/lib/python3.10/dist-packages/torch/onnx/utils.py"
    assert infer_stage(error, "", RULES)[0] == "node-conversion"
    error = parse_traceback(NOTEBOOK.replace("Exporting the operator", "Operator"))
    # Notebooks show the exception's class name alone; the catalog's rule for it still applies.
    assert infer_stage(error, "", RULES) == ("node-conversion", "exception UnsupportedOperatorError")
    error["type"] = "RuntimeError"
    assert infer_stage(error, "", RULES) == ("node-conversion", "frame torch/onnx/utils.py:_run_symbolic_function")


def test_a_pass_says_what_was_not_judged_and_an_unchecked_conversion_is_no_pass():
    compared = {
        "event": "convert",
        "status": "ok",
        "ort": {"status": "loaded"},
        "op_counts": {"Conv": 2, "Relu": 1},
        "compare": [{"output": 0, "max_abs": 0.0, "within": {"torch-testing": True}}],
    }
    result = {"events": [{"event": "start", "pid": 1}, compared], "exit_code": 0, "tail": ""}
    verdict = decide(result, "torch-testing", RULES)
    assert verdict.verdict == "passes" and verdict.reason == "outputs match; graph not judged"
    assert verdict.evidence["graph"][0]["op_counts"] == {"Conv": 2, "Relu": 1}  # for graph-level reports
    unchecked = {"event": "convert", "status": "ok", "compare_skipped": "could not run the framework model: X"}
    result = {"events": [{"event": "start", "pid": 1}, unchecked], "exit_code": 0, "tail": ""}
    verdict = decide(result, "torch-testing", RULES)
    assert verdict.verdict == "converted-not-compared" and verdict.reason == "could not run the framework model: X"


def test_a_dynamo_banner_gives_way_to_the_root_cause():
    error = {
        "type": "torch.onnx._internal.exporter._errors.ConversionError",
        "message": "Failed to convert the exported program to an ONNX model. This is step 3/3. Next steps:",
        "frames": [{"file": "/x/torch/onnx/_internal/exporter/_core.py", "line": 1, "func": "export"}],
        "cause": {
            "type": "torch.onnx._internal.exporter._errors.DispatchError",
            "message": "No ONNX function found for <OpOverload(op='aten.linalg_eig')>",
            "frames": [],
        },
    }
    call = {"event": "convert", "status": "error", "error": error}
    verdict = decide({"events": [{"event": "start", "pid": 1}, call], "tail": ""}, "torch-testing", RULES)
    assert (
        verdict.verdict == "crash"
        and verdict.reason == "DispatchError: No ONNX function found for <OpOverload(op='aten.linalg_eig')>"
    )


def _frames(*paths: str) -> list[dict[str, object]]:
    return [{"file": f"/venv/lib/python3.11/site-packages/{p}", "line": 1, "func": f} for p, f in map(str.split, paths)]


def test_a_known_converters_failure_is_read_by_its_own_rules() -> None:
    """difftest knows which converter failed: onnx2tf's operators run through Keras layers, whose
    frames tf2onnx's rules read as loading a Keras model; onnx2tf's own rules name its operator module."""
    conv = {
        "type": "ValueError",
        "message": 'Exception encountered when calling layer "tf.nn.convolution" (type TFOpLambda).',
        "frames": _frames(
            "onnx2tf/onnx2tf.py convert",
            "onnx2tf/ops/Conv.py make_node",
            "tensorflow/python/util/traceback_utils.py error_handler",
            "tf_keras/src/layers/core/tf_op_layer.py handle",
        ),
    }
    missing = {
        "type": "ModuleNotFoundError",
        "message": "No module named 'onnx2tf.ops.Erfc'",
        "frames": _frames("onnx2tf/onnx2tf.py convert", "importlib/__init__.py import_module"),
    }
    tflite = {
        "type": "ConverterError",
        "message": "failed",
        "frames": _frames("tensorflow/lite/python/lite.py convert"),
    }
    own = knowledge().stages_for("onnx2tf")
    assert infer_stage(conv, "", RULES)[0] == "load-model"  # every converter's rules: tf2onnx's Keras frame
    assert infer_stage(conv, "", own) == ("node-conversion", "frame onnx2tf/ops/Conv.py:make_node")
    # An operator onnx2tf has no module for, not a failed import of a dependency.
    assert infer_stage(missing, "", own)[0] == "node-conversion"
    assert infer_stage(missing, "", knowledge().stages_for("tf2onnx"))[0] == "not-distinguishable"
    assert infer_stage(tflite, "", own)[0] == "export"
    assert knowledge().stages_for("no-such-converter") == RULES
    assert knowledge().stages_for("onnx2torch") == RULES  # no rules of its own: every converter's
