"""A re-run's failure against what the reporter pasted: same-error, different-error, nothing-reported."""

from __future__ import annotations

from issuemine.repro.same_error import DIFFERENT, NOTHING, SAME, compare, normalize

SITE = "C:\\Users\\me\\anaconda3\\lib\\site-packages"
PASTED = f"""Traceback (most recent call last):
  File "C:\\Users\\me\\proj\\export.py", line 20, in <module>
    torch.onnx.export(net, x, "net.onnx", opset_version=9)
  File "{SITE}\\torch\\onnx\\symbolic_opset9.py", line 1502, in index_put
    raise RuntimeError("Unsupported: index_put with 3 indices at node %input.17")
RuntimeError: Unsupported: index_put with 3 indices at node %input.17
"""


def rerun(
    message: str,
    file: str = "/venv/lib/python3.10/site-packages/torch/onnx/symbolic_opset9.py",
    func: str = "index_put",
    kind: str = "RuntimeError",
) -> dict:
    error = {"type": kind, "message": message, "frames": [{"file": file, "line": 1, "func": func}]}
    return {"calls": [{"status": "error", "error": error}], "error": error}


def test_numbers_paths_addresses_and_names_are_masked() -> None:
    assert normalize("Unsupported: index_put with 3 indices at node %input.17\nmore") == normalize(
        "unsupported: index_put with 12 indices at node %x.1"
    )
    assert normalize("can't load /tmp/a/b/model.onnx at 0x7f3a9c") == "can't load <path> at <addr>"
    assert normalize("Failed to convert node model/conv2d/BiasAdd:0") == normalize("failed to convert node a/b:1")


def test_the_same_error_in_another_release_and_place() -> None:
    found = compare([PASTED], "crash", rerun("Unsupported: index_put with 2 indices at node %x.5"))
    assert found is not None and found["match"] == SAME
    assert found["reported"].startswith("RuntimeError: unsupported: index_put with <n> indices")
    assert found["rerun"].endswith("at symbolic_opset9.py:index_put")


def test_another_message_class_or_converter_frame_is_a_different_error() -> None:
    assert compare([PASTED], "crash", rerun("Unsupported: ONNX export of operator roll"))["match"] == DIFFERENT
    assert compare([PASTED], "crash", rerun("Unsupported: index_put", kind="ValueError"))["match"] == DIFFERENT
    other_frame = rerun("Unsupported: index_put with 2 indices", func="_index_put_impl")
    assert compare([PASTED], "crash", other_frame)["match"] == DIFFERENT


def test_nothing_to_compare_and_nothing_failed() -> None:
    assert compare(["the export just hangs"], "crash", rerun("boom"))["match"] == NOTHING
    assert compare([PASTED], "passes", {"calls": [{"status": "ok"}]}) is None
    assert compare([PASTED], "wrong-model", {"calls": [{"status": "ok"}]}) is None


def test_onnx_runtime_failures_compare_with_the_runtime_error() -> None:
    pasted = (
        'Traceback (most recent call last):\n  File "run.py", line 3, in <module>\n'
        "onnxruntime.capi.onnxruntime_pybind11_state.NotImplemented: [ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : "
        "Could not find an implementation for ArgMax(13) node with name 'ArgMax_4'\n"
    )
    error = {
        "type": "onnxruntime.capi.onnxruntime_pybind11_state.NotImplemented",
        "message": "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for ArgMax(13) "
        "node with name '/ArgMax'",
        "frames": [],
    }
    evidence = {"calls": [{"status": "ok", "ort": {"status": "load-fail", "error": error}}]}
    assert compare([pasted], "ort-load-fail", evidence)["match"] == SAME
