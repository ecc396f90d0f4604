"""Re-runs in a stack of another era (torch 1.13, TensorFlow 2.12 + tf2onnx 1.14 on Python 3.10),
and converters' command lines (``python -m tf2onnx.convert``) under the shim.

The era stack is built by ``scripts/setup.sh --dev`` (tests/repro/era-stack.toml); these tests
download nothing. Outside CI a machine without it skips them; in CI a missing stack fails.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from issuemine.repro import environments
from issuemine.repro.runs import AS_WRITTEN, LEGACY, Runner, RunOptions, variants_of
from issuemine.repro.sandbox import Limits
from tests.repro.conftest import Harness

ERA_FILE = Path(__file__).parent / "era-stack.toml"
SHIM = Path(environments.__file__).parent / "shim"


def era_stack() -> environments.Environment:
    env = environments.load(ERA_FILE)["era-2023"]
    if not env.built:
        message = f"the era stack is not built: issuemine repro env build era-2023 --envs-file {ERA_FILE}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return env


@pytest.fixture(scope="module")
def era() -> Iterator[Harness]:
    runner = Runner(RunOptions(env=era_stack(), limits=Limits(timeout=120)))
    with runner.zygote(0) as zygote:
        yield Harness(runner, zygote)


def script(text: str) -> str:
    return textwrap.dedent(text).lstrip()


TORCH_PASSES = script(
    """
    import torch

    class Block(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    torch.onnx.export(Block(), (torch.randn(2, 3),), "block.onnx", opset_version=13)
    """
)

TORCH_UNSUPPORTED = script(
    """
    import torch

    class Spectrum(torch.nn.Module):
        def forward(self, x):
            return torch.fft.fft(x).real

    torch.onnx.export(Spectrum(), (torch.randn(2, 8),), "spectrum.onnx", opset_version=13)
    """
)

# Tracing keeps the branch the example input took; the shim's random inputs take the other one.
TORCH_WRONG = script(
    """
    import torch

    class Branchy(torch.nn.Module):
        def forward(self, x):
            if bool(x[0, 0] == 1.0):
                return x * 2
            return x * 3

    torch.onnx.export(Branchy(), (torch.ones(2, 3),), "branchy.onnx", opset_version=13)
    """
)


def tf2onnx_command(*flags: str) -> str:
    return script(
        f"""
        import subprocess
        import sys

        import tensorflow as tf

        model = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,))])
        tf.saved_model.save(model, "saved")
        command = ["--saved-model", "saved", "--output", "model.onnx", *{list(flags)!r}]
        subprocess.run([sys.executable, "-m", "tf2onnx.convert", *command], check=True)
        """
    )


def test_torch_1_x_conversions_are_compared_without_torch_export(era: Harness) -> None:
    outcome = era.run(TORCH_PASSES)
    assert outcome.verdict.verdict == "passes", outcome.verdict.reason
    assert outcome.result["versions"]["torch"].startswith("1.13")
    calls = outcome.verdict.evidence["calls"]
    assert calls[0]["exporter"] == "torchscript" and calls[0]["trials"] == 3


def test_torch_1_x_crash_and_wrong_model(era: Harness) -> None:
    crash = era.run(TORCH_UNSUPPORTED)
    assert (crash.verdict.verdict, crash.verdict.stage) == ("crash", "node-conversion")
    assert "aten::fft_fft" in (crash.verdict.reason or "")
    wrong = era.run(TORCH_WRONG)
    assert wrong.verdict.verdict == "wrong-model", wrong.verdict.reason


def test_the_tf2onnx_command_line_converts_and_is_compared_in_its_era(era: Harness) -> None:
    outcome = era.run(tf2onnx_command("--opset", "13"))
    assert outcome.verdict.verdict == "passes", outcome.verdict.reason
    (call,) = outcome.verdict.evidence["calls"]  # one conversion: the command, not what it calls inside
    assert call["api"] == "python -m tf2onnx.convert" and call["opset_arg"] == "13"
    assert outcome.result["versions"]["tf2onnx"].startswith("1.14")


def test_a_failing_command_line_is_a_crash_with_its_stage(warm: Harness) -> None:
    outcome = warm.run(tf2onnx_command("--signature_def", "no-such-signature"))
    assert (outcome.verdict.verdict, outcome.verdict.stage) == ("crash", "load-model"), outcome.verdict.reason
    assert outcome.verdict.evidence["calls"][0]["status"] == "error"


def test_the_command_line_runs_under_the_shim_in_todays_stack(warm: Harness) -> None:
    outcome = warm.run(tf2onnx_command("--opset", "13"))
    assert outcome.verdict.verdict == "passes", outcome.verdict.reason
    compare = outcome.verdict.evidence["calls"][0]["compare"]
    assert compare and compare[0]["max_abs"] == 0.0


def test_variants_follow_what_the_stack_can_do() -> None:
    written_for_torchscript = {"exporter_written_for": "torchscript"}
    era_features = environments.features(era_stack().python)
    assert era_features["torch_export"] is False and era_features["onnx_export_dynamo_default"] is False
    assert variants_of(written_for_torchscript, era_features) == [AS_WRITTEN]  # one exporter: nothing to switch
    today = environments.features(environments.current().python)
    assert today["onnx_export_dynamo_default"] is True
    assert variants_of(written_for_torchscript, today) == [AS_WRITTEN, LEGACY]
    assert variants_of({"exporter_written_for": "dynamo"}, today) == [AS_WRITTEN]


@pytest.mark.parametrize("version", ["3.8", "3.9", "3.10", "3.12", "3.13"])
def test_the_shim_and_the_run_server_load_on_every_supported_python(version: str, tmp_path: Path) -> None:
    """The shim and the zygote run inside environments of any era: standard library only, and no
    syntax or builtins newer than Python 3.8 (``X | Y`` in isinstance, ``zip(strict=)``)."""
    try:
        python = environments.find_interpreter(version)
    except Exception:
        pytest.skip(f"no Python {version} on this machine")
    events = tmp_path / "events.jsonl"
    probe = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import issuemine_shim, zygote\n"
        "issuemine_shim.install()\n"
        "import os; os.mkdir(os.path.join(sys.argv[2], 'made'))\n"  # through the audit hook
        "print(issuemine_shim._tree_leaves(({'a': 1}, [2, (3,)])))\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "ISSUEMINE_EVENTS": str(events),
        "ISSUEMINE_RUN_DIR": str(tmp_path),
        "PYTHONNOUSERSITE": "1",
    }
    done = subprocess.run(
        [python, "-c", probe, str(SHIM), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1, 2, 3]"
