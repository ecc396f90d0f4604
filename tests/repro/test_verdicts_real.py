"""The fixture snippets (a)-(g), run for real (torch 2.13, onnxruntime, tf2onnx + TensorFlow) in the sandbox."""

from __future__ import annotations

import pytest

from tests.repro.conftest import Harness


def test_a_torchscript_export_matches(warm: Harness) -> None:
    outcome = warm.snippet("a_torchscript_passes.py")
    assert outcome.verdict.verdict == "passes", outcome.verdict
    (call,) = outcome.verdict.evidence["calls"]
    assert call["exporter"] == "torchscript" and call["opset"] == 17
    assert call["trials"] == 3  # the captured input and two random ones of the same shape
    assert all(row["within"]["abs-1e-7"] is not None for row in call["compare"])
    assert "Conv" in call["ops"] and outcome.result["versions"]["torch"].startswith("2.13")


def test_a_dynamo_export_matches(warm: Harness) -> None:
    outcome = warm.snippet("a_dynamo_passes.py")
    assert outcome.verdict.verdict == "passes", outcome.verdict
    (call,) = outcome.verdict.evidence["calls"]
    assert call["exporter"] == "dynamo" and call["ort"]["status"] == "loaded"
    assert call["compare"][0]["max_abs"] < 1e-4


def test_b_unsupported_operator_crashes_in_node_conversion(warm: Harness) -> None:
    verdict = warm.snippet("b_unsupported_operator.py").verdict
    assert (verdict.verdict, verdict.stage) == ("crash", "node-conversion")
    assert "linalg_eigh" in (verdict.reason or "")
    assert verdict.evidence["stage_from"] == "exception torch.onnx.errors.UnsupportedOperatorError"


def test_c_tracer_failure_crashes_while_loading_the_model(warm: Harness) -> None:
    verdict = warm.snippet("c_trace_crash.py").verdict
    assert (verdict.verdict, verdict.stage) == ("crash", "load-model")
    assert "torch/jit/_trace.py" in verdict.evidence["stage_from"]


def test_d_model_onnxruntime_refuses(warm: Harness) -> None:
    verdict = warm.snippet("d_ort_refuses.py").verdict
    assert verdict.verdict == "ort-load-fail", verdict
    assert "FastRelu" in (verdict.reason or "")


def test_e_wrong_symbolic_gives_a_wrong_model_under_every_policy(warm: Harness) -> None:
    outcome = warm.snippet("e_wrong_model.py")
    assert outcome.verdict.verdict == "wrong-model", outcome.verdict
    (row,) = outcome.verdict.evidence["mismatched_outputs"]
    assert row["max_abs"] > 0.1
    assert not any(row["within"].values())  # study, torch-testing, polygraphy and nnsmith all reject it


def test_f_hang_is_cut_off_and_located(warm: Harness) -> None:
    outcome = warm.snippet("f_hang.py", timeout=8)
    verdict = outcome.verdict
    assert (verdict.verdict, verdict.stage) == ("hang", "load-model"), verdict
    assert outcome.result["timed_out"] and outcome.result["duration"] < 30
    assert any("f_hang" not in f["file"] and "torch/jit" in f["file"] for f in verdict.evidence["stack"])
    # The warm sandbox is still usable after a hang.
    assert warm.snippet("a_torchscript_passes.py").verdict.verdict == "passes"


def test_g_undefined_model_is_not_runnable(warm: Harness) -> None:
    verdict = warm.snippet("g_not_runnable.py").verdict
    assert verdict.verdict == "not-runnable" and verdict.reason == "missing name: ResNetBackbone"
    assert not verdict.reached_converter


def test_g_missing_weights_are_not_runnable(warm: Harness) -> None:
    verdict = warm.snippet("g_missing_file.py").verdict
    assert verdict.verdict == "not-runnable"
    assert verdict.reason == "missing file: checkpoints/best_model.pth"


def test_policy_decides_wrong_model(warm: Harness) -> None:
    """The same tiny float difference passes a loose policy and fails the study's 1e-7 one."""
    script = (
        "import torch\n"
        "from torch.onnx import register_custom_op_symbolic\n"
        "register_custom_op_symbolic('aten::relu', lambda g, x: g.op('Add', g.op('Relu', x),"
        " g.op('Constant', value_t=torch.tensor(1e-4))), 9)\n"
        "m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())\n"
        "torch.onnx.export(m, (torch.randn(2, 4),), 'm.onnx', dynamo=False)\n"
    )
    outcome = warm.run(script)
    assert outcome.verdict.verdict == "wrong-model"  # torch-testing (atol 1e-5) rejects 1e-4
    (row,) = outcome.verdict.evidence["mismatched_outputs"]
    assert row["within"] == {
        "abs-1e-7": False,
        "study-torch": False,
        "study-tf2onnx": False,
        "torch-testing": False,
        "polygraphy": False,
        "nnsmith": True,
    }


@pytest.fixture(scope="module")
def tf_harness() -> Harness:
    from issuemine.repro.environments import Environment, current
    from issuemine.repro.runs import Runner, RunOptions
    from issuemine.repro.sandbox import Limits

    env = current()
    env = Environment(env.name, env.python, preload=("numpy", "tensorflow", "tf2onnx", "onnx", "onnxruntime"))
    runner = Runner(RunOptions(env=env, limits=Limits(timeout=180)))
    zygote = runner.zygote(1)
    yield Harness(runner, zygote)  # type: ignore[misc]
    zygote.close()


def test_tf2onnx_function_matches(tf_harness: Harness) -> None:
    outcome = tf_harness.snippet("tf_a_passes.py")
    assert outcome.verdict.verdict == "passes", outcome.verdict
    (call,) = outcome.verdict.evidence["calls"]
    assert call["api"] == "tf2onnx.convert.from_function" and call["opset"] == 17
    assert call["compare"][0]["max_abs"] < 1e-5


def test_tf2onnx_keras3_model_crashes_while_loading(tf_harness: Harness) -> None:
    verdict = tf_harness.snippet("tf_c_keras3_crash.py").verdict
    assert (verdict.verdict, verdict.stage) == ("crash", "load-model"), verdict
    assert verdict.reason and verdict.reason.startswith("KeyError")


def test_tf2onnx_unconverted_string_ops_are_refused_by_onnxruntime(tf_harness: Harness) -> None:
    verdict = tf_harness.snippet("tf_d_ort_refuses.py").verdict
    assert verdict.verdict == "ort-load-fail", verdict
    assert "StringSplit" in (verdict.reason or "")


def test_the_legacy_variant_runs_the_exporter_a_snippet_was_written_for(warm: Harness) -> None:
    from issuemine.repro.runs import LEGACY, Job

    script = (
        "import torch\n"
        "class Gelu(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        return torch.nn.functional.gelu(x)\n"
        "torch.onnx.export(Gelu(), (torch.randn(3, 4),), 'gelu.onnx')\n"
    )
    today = warm.run(script).verdict
    legacy = warm.runner.classify(warm.zygote, Job(None, script, variant=LEGACY)).verdict
    assert today.evidence["calls"][0]["exporter"] == "dynamo"  # torch 2.13's default
    assert legacy.evidence["calls"][0]["exporter"] == "torchscript"
    assert legacy.verdict == today.verdict == "passes", (legacy, today)
    assert legacy.evidence["graph"][0]["op_counts"]  # what the graph holds, for a reader to judge


def test_a_converter_imported_under_another_name_is_wrapped_and_compared(warm: Harness) -> None:
    # `from torch.onnx import export as to_onnx`: extraction finds the call (calls.py) and the shim,
    # which wraps the module's function before the snippet imports it, compares what it converted.
    script = (
        "import torch\nfrom torch.onnx import export as to_onnx\n"
        "class M(torch.nn.Module):\n    def forward(self, x):\n        return torch.relu(x) * 2\n"
        "to_onnx(M(), (torch.randn(1, 3),), 'm.onnx')\n"
    )
    outcome = warm.run(script)
    assert outcome.verdict.verdict == "passes", outcome.verdict.reason
    [call] = outcome.verdict.evidence["calls"]
    assert call["api"] == "torch.onnx.export" and call["compare"][0]["max_abs"] == 0.0
