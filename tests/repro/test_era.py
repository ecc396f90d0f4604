"""Re-runs in a stack of another era (torch 1.13, TensorFlow 2.12 + tf2onnx 1.14 on Python 3.10),
and converters' command lines (``python -m tf2onnx.convert``) under the shim.

The era stack is built by ``scripts/setup.sh --dev`` (tests/repro/era-stack.toml); these tests
download nothing. Outside CI a machine without it skips them; in CI a missing stack fails.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from issuemine.errors import IssuemineError
from issuemine.repro import environments
from issuemine.repro.environments import companion_packages
from issuemine.repro.era import choose, companions_needed, snippet_imports, stacks_for
from issuemine.repro.runs import AS_WRITTEN, LEGACY, Runner, RunOptions, variants_of
from issuemine.repro.sandbox import Limits
from tests.repro.conftest import Harness

ERA_FILE = Path(__file__).parent / "era-stack.toml"
SHIM = Path(environments.__file__).parent / "shim"


def era_stack(difftest: bool = False) -> environments.Environment:
    """The test stack of 2023 (with NNSmith added, for ``difftest``); skipped outside CI when missing."""
    env = environments.load(ERA_FILE)["era-2023"]
    if not (env.has_difftest if difftest else env.built):
        flag = " --difftest" if difftest else ""
        message = f"the era stack is not built: issuemine repro env build era-2023 --envs-file {ERA_FILE}{flag}"
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

# As torch 1.13 prints it, in a reporter's environment.
UNSUPPORTED_1_13 = (
    "Exporting the operator 'aten::fft_fft' to ONNX opset version 11 is not supported. Please feel free to "
    "request support or submit a pull request on PyTorch GitHub: https://github.com/pytorch/pytorch/issues"
)
SITE = "/home/someone/.venv/lib/python3.10/site-packages/torch/onnx/utils.py"
PASTED_1_13 = f"""```
Traceback (most recent call last):
  File "/home/someone/work/export.py", line 9, in <module>
    torch.onnx.export(Spectrum(), (torch.randn(2, 8),), "spectrum.onnx", opset_version=11)
  File "{SITE}", line 504, in export
    _export(
  File "{SITE}", line 1529, in _export
    graph, params_dict, torch_out = _model_to_graph(
  File "{SITE}", line 1891, in _run_symbolic_function
    raise errors.UnsupportedOperatorError(
torch.onnx.errors.UnsupportedOperatorError: {UNSUPPORTED_1_13}
```
"""

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
    # Compared, and equal to float32 rounding: a Dense layer's sums may be ordered differently by
    # TensorFlow's and ONNX Runtime's kernels (0 on one machine, 2.4e-7 on another).
    assert compare and compare[0]["max_abs"] <= 1e-5


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
    # And the run server serves a snippet there, sandboxed (cold: one fresh interpreter).
    bare = environments.Environment(f"python-{version}", python, preload=("json",))
    runner = Runner(RunOptions(env=bare, limits=Limits(timeout=60), warm=False))
    with runner.zygote(0) as zygote:
        outcome = Harness(runner, zygote).run("import sys\nprint(sys.version_info[:2])\n")
    assert outcome.result["exit_code"] == 0 and outcome.result["versions"]["python"].startswith(version)
    assert outcome.verdict.reason == "the script never called a converter"


# -- the catalog of stacks and the choice of an issue's stack (offline) ------------------------------

CATALOG = environments.load()


@pytest.mark.parametrize(
    ("converter", "created", "reported", "stack"),
    [
        ("torch.onnx", "2023-01-05", {"torch": "1.13.1"}, "torch-1-13"),  # the reported version decides
        ("torch.onnx", "2023-01-05", {"torch": "1.9.0+cu111"}, "torch-1-8"),  # the nearest older stack
        ("torch.onnx", "2019-06-01", {"torch": "1.1.0"}, "torch-1-8"),  # older than the catalog
        ("torch.onnx", "2022-01-10", {}, "torch-1-10"),  # no version: the newest released before
        ("torch.onnx", "2018-03-01", {}, "torch-1-8"),
        ("torch.onnx", "2026-11-01", {}, "torch-2-7"),
        ("tf2onnx", "2022-01-10", {"tf2onnx": "1.9.3"}, "tf-2-7"),
        ("tf2onnx", "2022-08-10", {"tensorflow": "2.9.1"}, "tf-2-9"),
        ("tf2onnx", "2023-06-01", {}, "tf-2-12"),
    ],
)
def test_an_issue_gets_the_stack_of_its_time(converter: str, created: str, reported: dict, stack: str) -> None:
    import datetime

    choice = choose(converter, datetime.date.fromisoformat(created), reported, CATALOG)
    assert choice.stack.name == stack, choice.why
    assert choice.why  # recorded with the run


def test_the_catalog_covers_every_year_of_the_study_per_converter() -> None:
    for converter, package in (("torch.onnx", "torch"), ("tf2onnx", "tensorflow")):
        stacks = stacks_for(converter, CATALOG)
        assert {s.released.year for s in stacks if s.released} >= {2021, 2022, 2023}
        for stack in stacks:
            assert stack.versions.get(package) and stack.python and stack.packages
            pinned = {p.split("==")[0] for p in stack.packages}
            assert {"onnx", "onnxruntime"} <= pinned and all("==" in p for p in stack.packages), stack.name
            # Every companion pin is the allowlisted package for its import name.
            script = "".join(f"import {name}\n" for name in stack.companions)
            assert set(companions_needed(stack, script, companion_packages())) == set(stack.companions)


def test_only_allowlisted_imports_get_companions() -> None:
    stack = CATALOG["torch-1-13"]
    script = "import os\nimport torchvision.models as models\nfrom timm import create_model\nimport totally_evil\n"
    assert snippet_imports(script) == {"os", "torchvision", "timm", "totally_evil"}
    needed = companions_needed(stack, script, companion_packages())
    assert needed == {"timm": "timm==0.6.12", "torchvision": "torchvision==0.14.1"}
    # A stack whose pin names another package than the allowlist's is refused, not installed.
    forged = replace(stack, companions={"torchvision": "evil-package==1.0"})
    with pytest.raises(IssuemineError, match="must pin torchvision"):
        companions_needed(forged, script, companion_packages())


def test_a_sample_runs_in_the_stacks_of_its_time(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from issuemine.cli.app import app
    from issuemine.corpus.store import save_issue
    from issuemine.db import open_db
    from issuemine.db.models import ReproRun
    from issuemine.db.rows import ensure_repository

    era_stack()
    catalog = tmp_path / "stacks.toml"
    old = '[env.torch-1-8-unbuilt]\nreleased = 2021-03-04\nconverters = ["torch.onnx"]\nversions = { torch = "1.8" }\n'
    catalog.write_text(ERA_FILE.read_text() + "\n" + old + 'python = "3.8"\npackages = ["torch==1.8.1"]\n')
    monkeypatch.setenv("ISSUEMINE_STACKS", str(catalog))
    url = str(tmp_path / "era.db")
    database = open_db(url)
    bodies = {
        1: (TORCH_UNSUPPORTED, "torch 1.13.1", "2023-01-10T00:00:00Z", PASTED_1_13),
        2: (TORCH_PASSES, "torch 1.8.0", "2021-05-01T00:00:00Z", ""),
    }
    with database.session() as session:
        repo = ensure_repository(session, "pytorch/pytorch")
        for number, (code, versions, created, pasted) in bodies.items():
            body = f"Export fails.\n\n```python\n{code}```\n\n{pasted}\nVersions: {versions}\n"
            raw = {"id": 500 + number, "number": number, "title": "export", "body": body, "state": "closed"}
            save_issue(session, repo, {**raw, "created_at": created, "labels": [{"id": 1, "name": "module: onnx"}]})
    assert cli.invoke(app, ["repro", "extract", "--db", url]).exit_code == 0

    result = cli.invoke(app, ["repro", "run", "--env", "era", "--no-build", "--json", "--db", url])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stacks"] == {"era-2023": 1, "torch-1-8-unbuilt": 1}
    assert report["not_built"] == {"torch-1-8-unbuilt": 1} and report["ran"] == 1
    with database.session() as session:
        (run,) = session.scalars(select(ReproRun))
    assert (run.env, run.verdict, run.stage) == ("era-2023", "crash", "node-conversion")
    assert run.evidence["era"] == {"stack": "era-2023", "why": "the thread reports torch 1.13.1"}
    assert run.versions["torch"].startswith("1.13")

    # What the reporter pasted (opset 11, their paths) is the error the era's re-run raised (opset 13).
    shown = json.loads(cli.invoke(app, ["repro", "show", "pytorch/pytorch#1", "--json", "--db", url]).stdout)
    found = shown["runs"][0]["reported_error"]
    assert found["match"] == "same-error", found
    assert found["reported"].startswith("UnsupportedOperatorError: exporting the operator 'aten::fft_fft'")

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "repo,number,symptom,stage,cause\n"
        + "".join(f"pytorch/pytorch,{n},Crash,Node Transformation,Incompatability\n" for n in bodies)
    )
    imported = ["labels", "import", str(labels), "--rater", "R1", "--sample", "old", "--db", url]
    assert cli.invoke(app, imported).exit_code == 0
    assert cli.invoke(app, ["repro", "run", "--env", "current", "--json", "--db", url]).exit_code == 0
    tied = json.loads(
        cli.invoke(app, ["repro", "report", "--env", "era", "--sample", "old", "--json", "--db", url]).stdout
    )
    assert tied["coverage"]["run"] == 1, tied["coverage"]
    # Reproduced in its era with the reported error; today's torch (dynamo) fails on it as well.
    (row,) = tied["era"]["rows"]
    counts = dict(zip(tied["era"]["columns"], row[2], strict=True))
    assert row[:2] == ["torch.onnx", "crash"] and counts["same error"] == 1 and counts["another error"] == 0
    assert counts["fixed since"] + counts["still failing today"] == 1 and tied["era"]["strongest"] == 0
    assert tied["era"]["stage_by_stack"] == [["era-2023", "node-conversion", "node-conversion", 1]]
    listed = json.loads(cli.invoke(app, ["repro", "env", "list", "--json"]).stdout)
    states = {row["name"]: (row["built"], row["released"]) for row in listed}
    assert states["era-2023"] == ("yes", "2023-03-22") and states["torch-1-8-unbuilt"] == ("no", "2021-03-04")
    database.close()


def test_bisect_finds_the_stack_that_fixed_it_beside_the_close(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from issuemine.cli.app import app
    from issuemine.corpus.store import save_issue, save_timeline
    from issuemine.db import open_db
    from issuemine.db.models import ReproBisection, ReproRun
    from issuemine.db.rows import ensure_repository

    era_stack()
    catalog = tmp_path / "stacks.toml"
    catalog.write_text(ERA_FILE.read_text())
    monkeypatch.setenv("ISSUEMINE_STACKS", str(catalog))
    url = str(tmp_path / "bisect.db")
    database = open_db(url)
    body = f"Export fails.\n\n```python\n{TORCH_UNSUPPORTED}```\n\n{PASTED_1_13}\nVersions: torch 1.13.1\n"
    closed = {"id": 71, "event": "closed", "commit_id": "0123456789abcdef", "created_at": "2023-02-20T10:00:00Z"}
    with database.session() as session:
        repo = ensure_repository(session, "pytorch/pytorch")
        raw = {"id": 600, "number": 7, "title": "fft", "body": body, "state": "closed"}
        raw |= {"created_at": "2023-01-10T00:00:00Z", "closed_at": "2023-02-20T10:00:00Z"}
        issue_id = save_issue(session, repo, {**raw, "labels": [{"id": 1, "name": "module: onnx"}]})
        save_timeline(session, issue_id, [closed], replace=True)
    assert cli.invoke(app, ["repro", "extract", "--db", url]).exit_code == 0

    result = cli.invoke(app, ["repro", "bisect", "pytorch/pytorch#7", "--no-build", "--json", "--db", url])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    # torch 1.13's TorchScript exporter has no fft; today's default exporter converts it.
    assert (found["status"], found["last_failing"], found["first_passing"]) == ("fixed", "era-2023", "current")
    assert found["summary"] == (
        "fails through torch 1.13 (Mar 2023), passes from today's stack; closed in Feb 2023 by commit 0123456789"
    )
    assert [(s["stack"], s["match"], s["state"]) for s in found["steps"]] == [
        ("era-2023", "same-error", "fails"),
        ("current", None, "passes"),
    ]
    with database.session() as session:
        stored = session.get(ReproBisection, issue_id)
        runs = {r.env: r.finished_at for r in session.scalars(select(ReproRun))}
    assert stored is not None and stored.status == "fixed" and set(runs) == {"era-2023", "current"}
    # Stored runs are reused: a second bisection runs nothing.
    again = cli.invoke(app, ["repro", "bisect", "pytorch/pytorch#7", "--no-build", "--json", "--db", url])
    assert json.loads(again.stdout)["summary"] == found["summary"]
    with database.session() as session:
        assert {r.env: r.finished_at for r in session.scalars(select(ReproRun))} == runs
    bad = cli.invoke(app, ["repro", "bisect", "--db", url])
    assert bad.exit_code == 2 and "name one issue" in bad.output

    # The analysis report gets the bisections as a table.
    labels = tmp_path / "labels.csv"
    labels.write_text("repo,number,symptom,stage,cause\npytorch/pytorch,7,Crash,Node Transformation,Incompatability\n")
    assert (
        cli.invoke(app, ["labels", "import", str(labels), "--rater", "R1", "--sample", "s", "--db", url]).exit_code == 0
    )
    out = tmp_path / "report"
    analyzed = cli.invoke(app, ["analyze", "--sample", "s", "--out", str(out), "--no-figures", "--db", url])
    assert analyzed.exit_code == 0, analyzed.output
    rows = list(csv.DictReader((out / "tables" / "repro-bisect.csv").open()))
    assert [(r["issue"], r["status"], r["closed by"]) for r in rows] == [
        ("pytorch/pytorch#7", "fixed", "commit 0123456789")
    ]
    assert "The release that fixed it" in (out / "report.html").read_text()
    database.close()


def test_the_fixed_in_figure_draws_releases_against_close_dates(tmp_path: Path) -> None:
    import pandas as pd

    from issuemine.analysis import figures

    table = pd.DataFrame(
        [
            {
                "converter": "torch.onnx",
                "closed": "2022-03-01",
                "fixed in (released)": "2022-06-28",
                "regression": False,
            },
            {"converter": "tf2onnx", "closed": "2021-12-01", "fixed in (released)": "2021-11-04", "regression": True},
        ]
    )
    paths = figures.save(figures.fixed_vs_closed(table, "fixed vs closed"), tmp_path, "fixed")
    assert paths and all(p.stat().st_size > 1000 for p in paths)
