"""The study's Table 11 replicated: campaigns in a stack of the study's time (``difftest run --env``)
and the comparison with the artifact's own counts (``difftest replicate``).

The era stack (torch 1.13.1, onnxruntime 1.14.1, TensorFlow 2.12 + tf2onnx 1.14, NNSmith 0.1.0 on
Python 3.10) is built by ``scripts/setup.sh --dev``; these tests download nothing. Outside CI a
machine without it skips the campaign test; in CI a missing stack fails."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from issuemine.cli.app import app
from issuemine.db import open_db
from issuemine.difftest.campaign import Plan, campaign, environment_python, models, open_campaign, run, store
from issuemine.difftest.replication import artifact_counts, artifact_kernels, chi_squared, replication
from issuemine.errors import IssuemineError
from issuemine.repro import environments
from tests.cli.test_cli import assert_clean_error
from tests.repro.test_era import era_stack

NOT_IMPLEMENTED = (
    "onnxruntime.capi.onnxruntime_pybind11_state.NotImplemented: [ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : "
    "Could not find an implementation for {} node with name '/x'"
)


def test_the_artifacts_counts_are_its_published_totals() -> None:
    # The totals MISSION.md and the paper give, counted here from the bundled per-size rows.
    counts = artifact_counts()
    torch_total = sum(counts["torch.onnx"].values(), start=Counter())
    assert sum(torch_total.values()) == 1724
    # torch.onnx's results only say whether find_mismatch raised: export and ONNX Runtime are one column.
    assert (torch_total["success"], torch_total["mismatch"], torch_total["failure"]) == (881, 100, 741)
    tf = sum(counts["tf2onnx"].values(), start=Counter())
    assert sum(tf.values()) == 1820
    assert (tf["success"], tf["mismatch"], tf["ort-failure"], tf["conversion-failure"]) == (43, 220, 757, 800)
    assert artifact_kernels()["torch.onnx"]["ArgMax(13)"] == 117


def test_the_chi_squared_test_tells_equal_from_different_distributions() -> None:
    same = chi_squared(Counter(success=89, mismatch=2, failure=9), Counter(success=89, mismatch=2, failure=9))
    assert same["p"] == pytest.approx(1.0)
    moved = chi_squared(Counter(success=89, mismatch=2, failure=9), Counter(success=5, failure=95))
    assert moved["p"] < 1e-6 and moved["dof"] == 2
    assert chi_squared(Counter(success=3), Counter(success=4))["chi2"] is None  # one outcome: nothing to test


def _campaign(db, environment: str | None, outcomes: list[tuple[str, str | None]]) -> int:
    plan = Plan("torch.onnx", "torchscript", 16, 7, [15], len(outcomes), 1, "study-torch", [], environment)
    campaign_id = open_campaign(db, plan)
    for k, (outcome, error) in enumerate(outcomes):
        store(
            db,
            campaign_id,
            {
                "nodes": 15,
                "seed": k,
                "outcome": outcome,
                "error": error,
                # what was converted (a model that failed in export has no ONNX graph)
                "graph": None if outcome == "conversion-failure" else {"ops": ["ArgMax", "Add"], "edges": [[0, 1]]},
            },
        )
    return campaign_id


def test_a_campaign_is_set_beside_the_artifact_with_its_test_and_evidence(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "r.db"))
    # Like the artifact at 15 nodes (89 / 2 / 9 of 100), scaled to 100 models: nothing moved.
    alike = _campaign(db, None, [("success", None)] * 89 + [("mismatch", None)] * 2 + [("ort-failure", "x")] * 9)
    # Every model failing for want of ArgMax(13), or in export: failures up from 9% to 100%.
    failing = [("ort-failure", NOT_IMPLEMENTED.format("ArgMax(13)"))] * 6
    failing += [("conversion-failure", "RuntimeError: ScalarType ComplexFloat is an unexpected tensor scalar type")] * 4
    moved = _campaign(db, "era-2023", failing)
    assert alike != moved

    [result] = replication(db, [alike, moved])
    assert result["converter"] == "torch.onnx" and result["outcomes"] == ["success", "mismatch", "failure", "other"]
    first, second = result["comparisons"]
    assert first["test"]["p"] == pytest.approx(1.0) and first["moved"] == {}
    assert second["side"] == "era-2023 (campaign 2)" and second["test"]["p"] < 1e-6
    assert set(second["moved"]) == {"success", "failure"}
    evidence = second["moved"]["failure"]["evidence"]
    assert evidence[0].startswith("ArgMax(13): missing in 117 of 1724 artifact models")
    assert "here missing in 6 of 10" in evidence[0] and "6 converted models contain ArgMax" in evidence[0]
    assert any("4 × RuntimeError: ScalarType ComplexFloat" in line for line in evidence)
    rows = {row["nodes"]: row for row in result["rows"]}
    assert rows[15]["artifact"] == {"success": 89, "mismatch": 2, "failure": 9, "other": 0, "models": 100}
    assert rows["all"]["era-2023 (campaign 2)"]["failure"] == 10


def test_difftest_replicate_compares_the_study_campaigns(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = open_db(str(path))
    erf = [("ort-failure", NOT_IMPLEMENTED.format("Erf(13)"))] * 3
    _campaign(db, "era-2023", [*erf, ("success", None), ("worker-crash", "killed by signal 11 (SIGSEGV)")])
    other = open_campaign(db, Plan("torch.onnx", "torchscript", 17, 1, [15], 1))  # the default protocol: left out
    runner = CliRunner()
    shown = runner.invoke(app, ["difftest", "replicate", "--db", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "## torch.onnx" in shown.output and "era-2023 (campaign 1)" in shown.output
    assert f"campaign {other})" not in shown.output and "χ² = " in shown.output
    assert "Erf(13): missing in 57 of 1724 artifact models (3.3%); here missing in 3 of 5" in shown.output
    assert "- other: 0% in the artifact, 20% here" in shown.output and "1 × worker-crash" in shown.output
    as_json = json.loads(runner.invoke(app, ["difftest", "replicate", "--db", str(path), "--format", "json"]).output)
    assert as_json[0]["rows"][-1]["era-2023 (campaign 1)"]["failure"] == 3
    open_db(str(tmp_path / "empty.db")).close()
    empty = runner.invoke(app, ["difftest", "replicate", "--db", str(tmp_path / "empty.db")])
    assert_clean_error(empty, "difftest run --protocol study")


def test_an_environment_without_nnsmith_says_what_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISSUEMINE_ENVS_DIR", str(tmp_path / "envs"))
    envs = tmp_path / "envs.toml"
    envs.write_text('[env.old]\npython = "3.10"\n[env.older]\npython = "3.8"\n', encoding="utf-8")
    with pytest.raises(IssuemineError, match="no such environment"):
        environment_python("nope", envs)
    with pytest.raises(IssuemineError, match=r"Python 3.10 or newer \(older has 3.8\)"):
        environment_python("older", envs)
    venv = tmp_path / "envs" / "old"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(os.path.realpath(sys.executable))
    (venv / environments.BUILT_MARK).write_text("", encoding="utf-8")
    with pytest.raises(IssuemineError, match=r"repro env build old --difftest"):
        environment_python("old", envs)
    (venv / environments.DIFFTEST_MARK).write_text("", encoding="utf-8")
    assert environment_python("old", envs) == str(venv / "bin" / "python")
    assert environment_python(None, envs) is None and environment_python("current", envs) is None
    assert "nnsmith==0.1.0" in environments.difftest_packages(envs)  # the catalog's, as envs.toml has none


def test_a_study_campaign_runs_in_a_stack_of_its_time(tmp_path: Path) -> None:
    """NNSmith 0.1.0, torch 1.13.1 and onnxruntime 1.14.1 in their own interpreter: ONNX Runtime of
    early 2023 lacks kernels the artifact's failures name (Trilu(14), Erf(13) for these seeds)."""
    python = era_stack(difftest=True).python
    db = open_db(str(tmp_path / "era.db"))
    plan = Plan("torch.onnx", "torchscript", 16, 1, [15, 30], 3, 1, "study-torch", [], "era-2023")
    report = run(db, plan, tmp_path / "files", 2, timeout=120, python=python)
    assert report.ran == 6 and report.replaced_workers == 0
    info = campaign(db, report.campaign)
    assert info.environment == "era-2023"
    assert (info.versions["torch"], info.versions["onnxruntime"], info.versions["python"][:4]) == (
        "1.13.1",
        "1.14.1",
        "3.10",
    )
    found = models(db, report.campaign)
    kernels = [m.error for m in found if m.outcome == "ort-failure" and "NOT_IMPLEMENTED" in (m.error or "")]
    assert kernels, [(m.outcome, (m.error or "")[:200]) for m in found]
    assert all(m.operators for m in found)  # generated in the era's NNSmith
    # The same seed today is another campaign, never a resumption of the era's.
    today = open_campaign(db, Plan("torch.onnx", "torchscript", 16, 1, [15, 30], 3, 1, "study-torch", []))
    assert today != report.campaign


def test_a_campaign_stored_before_a_policy_existed_is_recounted_where_it_can_be(tmp_path: Path) -> None:
    from issuemine.difftest.campaign import outcome_under

    db = open_db(str(tmp_path / "old.db"))
    campaign_id = open_campaign(db, Plan("tf2onnx", "tf2onnx", 17, 3, [15], 2, 100, "abs-1e-7"))
    # Verdicts stored under the old name only ("study", now abs-1e-7's alias), as before December 2026.
    store(
        db,
        campaign_id,
        {"nodes": 15, "seed": 1, "outcome": "success", "max_abs_diff": 5e-8, "policies": {"study": True}},
    )
    store(
        db,
        campaign_id,
        {"nodes": 15, "seed": 2, "outcome": "mismatch", "max_abs_diff": 3e-6, "policies": {"study": False}},
    )
    small, large = sorted(models(db, campaign_id), key=lambda m: m.seed)
    assert outcome_under(large, "abs-1e-7") == "mismatch" and outcome_under(small, "abs-1e-7") == "success"
    # study-tf2onnx is absolute: decided from the stored max |Δ|, 3e-6 > 1e-7.
    assert outcome_under(small, "study-tf2onnx") == "success" and outcome_under(large, "study-tf2onnx") == "mismatch"
    # nnsmith's rule (atol 1e-3) would pass 3e-6, but it is relative too: without the outputs it keeps the outcome.
    assert outcome_under(large, "nnsmith") == "mismatch"


def _report_db(path: Path) -> None:
    """Mismatched models carrying several reduced sequences once each (a tie in "most carried"),
    a correct model, a failure with a pipe in its message."""
    db = open_db(str(path))
    campaign_id = open_campaign(db, Plan("torch.onnx", "torchscript", 17, 1, [15], 6))
    # Each model branches into two operators no correct model has: two reduced sequences per model,
    # which a set hands over in an order that follows the hash seed.
    branches = [["Add", "Tanh", "Sin"], ["Mul", "Cos", "Exp"], ["Sub", "Abs", "Neg"], ["Div", "Sqrt", "Log"]]
    for k, ops in enumerate(branches):
        graph = {"ops": ops, "edges": [[0, 1], [0, 2]]}
        store(db, campaign_id, {"nodes": 15, "seed": k, "outcome": "mismatch", "graph": graph, "max_abs_diff": 1.0})
    correct = {"ops": ["Add", "Mul", "Sub", "Div", "Relu"], "edges": [[0, 1], [1, 2], [2, 3], [3, 4]]}
    store(db, campaign_id, {"nodes": 15, "seed": 9, "outcome": "success", "graph": correct})
    store(db, campaign_id, {"nodes": 15, "seed": 10, "outcome": "conversion-failure", "error": "bad | pipe\nmore"})
    db.close()


def test_difftest_report_is_markdown_and_the_same_for_any_hash_seed(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "report.db"
    _report_db(path)
    issuemine = str(Path(sys.executable).parent / "issuemine")
    shown = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "COLUMNS": "120"}
        done = subprocess.run(
            [issuemine, "difftest", "report", "--db", str(path)], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        shown.append(done.stdout)
    assert shown[0] == shown[1] == shown[2]  # byte-identical: ties in "most carried" are ordered by sequence
    text = shown[0]
    assert "│" not in text and "┃" not in text  # Markdown, not box drawing
    tables = [block for block in text.split("### ") if block.strip()]
    assert len(tables) >= 3
    for block in tables:
        rows = [line for line in block.splitlines() if line.startswith("|")]
        widths = {len(line.replace("\\|", "").split("|")) for line in rows}
        assert len(widths) == 1 and rows[1].replace("|", "").replace("-", "") == "", block  # one header, one rule
    assert "| bad \\| pipe |" in text  # a pipe in a message does not break its row
    assert "Abs (1); Cos (1); Exp (1); Log (1); Neg (1)" in text  # ties in the sequences' order


def test_the_study_protocol_converts_tf2onnx_from_a_saved_model(tmp_path: Path) -> None:
    """As the artifact did: NNSmith saves the model, tf2onnx's command line converts the folder;
    the converted model's inputs and outputs are matched to the framework's by name."""
    from issuemine.difftest.campaign import jobs

    db = open_db(str(tmp_path / "tf.db"))
    study = open_campaign(db, Plan("tf2onnx", "tf2onnx", 16, 1, [15], 4, 10, "study-tf2onnx", []))
    default = open_campaign(db, Plan("tf2onnx", "tf2onnx", 17, 1, [15], 1))
    assert all(j["saved_model"] and not j["checker"] for j in jobs(db, study, tmp_path))
    assert not any(j["saved_model"] or not j["checker"] for j in jobs(db, default, tmp_path))
    report = run(db, Plan("tf2onnx", "tf2onnx", 16, 1, [15], 4, 10, "study-tf2onnx", []), tmp_path / "files", 2)
    found = models(db, report.campaign)
    assert report.campaign == study and len(found) == 4
    outcomes = {m.outcome for m in found}
    assert outcomes & {"success", "mismatch"}, [(m.outcome, (m.error or "")[:200]) for m in found]
    assert not any("wrote no model" in (m.error or "") for m in found)
    compared = [m for m in found if m.outcome in ("success", "mismatch")]
    # A max |Δ| for every compared model, except a mismatch in shape or integer values (none is honest there).
    assert all(m.max_abs_diff is not None or (m.outcome == "mismatch" and m.differing) for m in compared)
    assert any(m.max_abs_diff is not None for m in compared)


def test_difftest_models_lists_ids_by_outcome(tmp_path: Path) -> None:
    path = tmp_path / "report.db"
    _report_db(path)
    runner = CliRunner()
    listed = json.loads(
        runner.invoke(app, ["difftest", "models", "--db", str(path), "--outcome", "mismatch", "--json"]).stdout
    )
    assert [r["seed"] for r in listed] == [0, 1, 2, 3] and {r["outcome"] for r in listed} == {"mismatch"}
    shown = runner.invoke(app, ["difftest", "models", "--db", str(path), "--outcome", "conversion-failure"]).stdout
    assert "### Models: 1 of 1" in shown and "bad \\| pipe" in shown
    limited = runner.invoke(app, ["difftest", "models", "--db", str(path), "--limit", "2"]).stdout
    assert "Models: 2 of 6 (--limit 2)" in limited
    assert_clean_error(runner.invoke(app, ["difftest", "models", "--db", str(path), "--outcome", "nope"]), "--outcome")


def test_onnx_runtime_refusals_are_said_briefly() -> None:
    from issuemine.difftest.replication import ort_refusal

    head = "onnxruntime.capi.onnxruntime_pybind11_state.InvalidGraph: [ONNXRuntimeError] : 10 : INVALID_GRAPH : "
    typed = head + "Load model from /x/c4.onnx failed:This is an invalid model. Type Error: Type 'tensor(int8)' of "
    typed += "input parameter (v16_0) of operator (ReduceSum) in node (P/Sum) is invalid."
    assert ort_refusal(typed) == "invalid graph: ReduceSum does not take tensor(int8)"
    unknown = (
        head + 'Load model from /x/c4.onnx failed:This is an invalid model. In Node, ("P/Gelu/Erfc", Erfc, "", -1)'
    )
    unknown += ' : ("P/Gelu/mul_1:0": tensor(float16),) -> ("P/Gelu/Erfc:0",) , Error No Op registered for Erfc'
    assert ort_refusal(unknown) == "invalid graph: no operator Erfc (domain '')"
    assert ort_refusal("RuntimeError: something at 0x7f00 else").startswith("RuntimeError: something")
