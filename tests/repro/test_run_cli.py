"""`issuemine repro run/show/report/file` end to end: issues in a database, labels, real sandboxed runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from issuemine.cli.app import app
from issuemine.corpus.store import save_issue
from issuemine.db import Database
from issuemine.db.models import ReproRun
from issuemine.db.rows import ensure_repository
from tests.repro.conftest import SNIPPETS

# (issue number, snippet, labeled symptom, labeled stage)
ISSUES = [
    (101, "b_unsupported_operator.py", "Crash", "Node Transformation"),
    (102, "c_trace_crash.py", "Crash", "Node Transformation"),  # raters said node conversion; the run says load
    (103, "e_wrong_model.py", "Wrong Code", "Node Transformation"),
    (104, "a_torchscript_passes.py", "Crash", "Tracer"),  # fixed since: passes now
    (105, "g_not_runnable.py", "Crash", "Not Dis."),
]


# What reporters pasted (own text, in the shape of real torch 1.x tracebacks).
UNSUPPORTED = """Traceback (most recent call last):
  File "repro.py", line 9, in <module>
  File "/opt/conda/lib/python3.9/site-packages/torch/onnx/utils.py", line 1208, in _run_symbolic_function
    symbolic_fn = _find_symbolic_in_registry(domain, op_name, opset_version, operator_export_type)
RuntimeError: Exporting the operator linalg_eigh to ONNX opset version 13 is not supported.
"""
TRACER = """Traceback (most recent call last):
  File "repro.py", line 14, in <module>
  File "/opt/conda/lib/python3.9/site-packages/torch/jit/_trace.py", line 118, in wrapper
    outs.append(self.inner(*trace_inputs))
RuntimeError: Only tuples, lists and Variables are supported as JIT inputs/outputs.
"""
TRACEBACKS = {101: UNSUPPORTED, 102: TRACER, 105: UNSUPPORTED}


def thread(snippet: str, traceback: str | None = None) -> str:
    code = (SNIPPETS / snippet).read_text()
    intro = "### Describe the bug\n\nExport fails / gives wrong results:\n\n"
    pasted = f"\n```\n{traceback}```\n" if traceback else ""
    return f"{intro}```python\n{code}```\n{pasted}\n### Versions\ntorch 1.13\n"


@pytest.fixture
def repro_db(fresh_db: Database, db_path: Path, tmp_path: Path, cli) -> Database:
    return populate(fresh_db, str(db_path), tmp_path, cli)


def populate(database: Database, url: str, tmp_path: Path, cli) -> Database:
    """The ISSUES as fetched issues with labels (sample 'study'), and their candidates extracted."""
    with database.session() as session:
        repo_id = ensure_repository(session, "pytorch/pytorch")
        for number, snippet, _, _ in ISSUES:
            raw = {
                "id": 9000 + number,
                "number": number,
                "title": f"export problem {number}",
                "body": thread(snippet, TRACEBACKS.get(number)),
                "state": "closed",
                "created_at": "2023-01-02T00:00:00Z",
                "closed_at": "2023-02-02T00:00:00Z",
                "labels": [{"id": 1, "name": "module: onnx"}],
                "html_url": f"https://github.com/pytorch/pytorch/issues/{number}",
            }
            save_issue(session, repo_id, raw)
        save_issue(session, repo_id, {"id": 9999, "number": 199, "title": "question", "body": "How do I export?"})
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["repo", "number", "symptom", "stage", "cause"])
        for (
            number,
            _,
            symptom,
            stage,
        ) in ISSUES:
            writer.writerow(["pytorch/pytorch", number, symptom, stage, "Incompatability"])
        writer.writerow(["pytorch/pytorch", 199, "Crash", "Not Dis.", "Incompatability"])
    args = ["labels", "import", str(labels), "--rater", "R1", "--sample", "study", "--db", url]
    assert cli.invoke(app, args).exit_code == 0
    assert cli.invoke(app, ["repro", "extract", "--db", url]).exit_code == 0
    return database


def test_run_stores_verdicts_resumes_and_reports(repro_db: Database, db_path: Path, cli) -> None:
    db = ["--db", str(db_path)]
    result = cli.invoke(app, ["repro", "run", "--jobs", "2", "--timeout", "60", "--json", *db])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # 105's snippet was written for the TorchScript exporter (no dynamo=): it also runs with it.
    assert report["ran"] == 7 and report["skipped_already_run"] == 0 and report["sandbox"] == "bwrap"
    with repro_db.session() as session:
        every = list(session.scalars(select(ReproRun)))
    assert sorted((r.issue_id, r.variant) for r in every if r.variant != "as-written") == [(5, "legacy-exporter")]
    runs = {r.issue_id: r for r in every if r.variant == "as-written"}
    verdicts = sorted((r.verdict, r.stage) for r in runs.values())
    assert verdicts == [
        ("crash", "load-model"),
        ("crash", "node-conversion"),
        ("not-runnable", None),  # issue 199: no code
        ("not-runnable", None),  # missing name
        ("passes", None),
        ("wrong-model", None),
    ]
    run = next(r for r in runs.values() if r.verdict == "wrong-model")
    assert run.env == "current" and run.versions["torch"].startswith("2.13") and run.policy == "torch-testing"
    assert run.duration_s and run.duration_s > 0 and run.peak_mem_mb and run.peak_mem_mb > 50
    assert "bwrap" in run.sandbox and run.mode == "warm"

    again = json.loads(cli.invoke(app, ["repro", "run", "--json", *db]).stdout)
    # resumable, idempotent per (issue, env, variant)
    assert again["ran"] == 0 and again["skipped_already_run"] == 7

    shown = cli.invoke(app, ["repro", "show", "pytorch/pytorch#101", *db])
    assert shown.exit_code == 0
    assert "crash at stage node-conversion" in shown.stdout and "linalg_eigh" in shown.stdout
    assert "torch.onnx.export(Spectrum()" in shown.stdout  # the snippet itself
    assert "the thread reports: torch 1.13" in shown.stdout and "from: body, blocks" in shown.stdout
    both = cli.invoke(app, ["repro", "show", "pytorch/pytorch#105", *db]).stdout
    assert "written before dynamo was the default" in both and "run in current, legacy-exporter" in both
    as_json = json.loads(
        cli.invoke(app, ["repro", "show", "https://github.com/pytorch/pytorch/issues/103", "--json", *db]).stdout
    )
    assert as_json["runs"][0]["verdict"] == "wrong-model"
    assert as_json["candidate"]["provenance"]["post"] == "body"

    tied = json.loads(cli.invoke(app, ["repro", "report", "--sample", "study", "--json", *db]).stdout)
    assert tied["coverage"] == {
        "issues": 6,
        "fetched (text known)": 6,
        "extracted": 6,
        "with code": 5,
        "runnable candidates": 5,
        "run": 5,
        "reached the converter": 4,
        "run with both exporters": 1,
    }
    agreement = tied["stage_agreement"]
    assert (agreement["agree"], agreement["n"], agreement["share"]) == (1, 2, 0.5)
    assert sorted((p["labeled"], p["inferred"]) for p in agreement["pairs"]) == [
        ("node-conversion", "load-model"),
        ("node-conversion", "node-conversion"),
    ]
    # From the pasted tracebacks, without running: 101 agrees (node conversion); 102 was labeled node
    # conversion but its traceback is the tracer's; 105 was labeled "not distinguishable".
    pasted = tied["traceback_stage_agreement"]
    assert (pasted["agree"], pasted["n"]) == (1, 3)
    assert [p["inferred"] for p in pasted["pairs"]] == ["node-conversion", "load-model", "node-conversion"]
    lines = tied["reproduction"]
    assert (
        "labeled crash: 4 run; 2 still fail as labeled (crash, ort-load-fail), 0 still fail with another symptom, "
        "1 pass now, 0 converted but not compared, 1 did not reach a result (not runnable, sandbox); "
        "1 crash at the labeled stage"
    ) in lines
    assert (
        "labeled wrong-model: 1 run; 1 still fail as labeled (ort-load-fail, wrong-model), 0 still fail with another "
        "symptom, 0 pass now, 0 converted but not compared, 0 did not reach a result (not runnable, sandbox)"
    ) in lines
    # Every thread says "torch 1.13": how far the re-runs are from what the reporters ran.
    assert any(line.startswith("reporters ran torch 1.13 (5); the re-runs used torch 2.13") for line in lines), lines
    table = cli.invoke(app, ["repro", "report", "--sample", "study", *db])
    assert table.exit_code == 0 and "Verdicts by labeled symptom" in table.stdout

    # The analysis report carries the tie-back and its figure.
    out = db_path.parent / "report"
    result = cli.invoke(app, ["analyze", "--sample", "study", "--out", str(out), *db])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "Reproduction in environment <code>current</code>" in page
    assert "agrees with the labeled stage for 1 of 2 crashes" in page
    assert (out / "figures" / "repro-stages.png").stat().st_size > 1000


def test_unknown_issue_and_env_are_clear_errors(repro_db: Database, db_path: Path, cli) -> None:
    result = cli.invoke(app, ["repro", "show", "pytorch/pytorch#4242", "--db", str(db_path)])
    assert result.exit_code == 2 and "no issue pytorch/pytorch#4242" in result.output
    result = cli.invoke(app, ["repro", "run", "--env", "torch-1.13", "--db", str(db_path)])
    assert result.exit_code == 2 and "unknown environment 'torch-1.13'" in result.output
    result = cli.invoke(app, ["repro", "run", "--sandbox", "unshare", "--require-sandbox", "--db", str(db_path)])
    assert result.exit_code == 2 and "--require-sandbox refuses" in result.output
    result = cli.invoke(app, ["repro", "run", "--policy", "exact", "--db", str(db_path)])
    assert result.exit_code == 2 and "unknown tolerance policy 'exact'" in result.output


def test_file_runs_one_snippet_the_same_way(cli, tmp_path: Path) -> None:
    result = cli.invoke(app, ["repro", "file", str(SNIPPETS / "b_unsupported_operator.py"), "--json"])
    assert result.exit_code == 10, result.output  # crash: scripts can branch on the status
    data = json.loads(result.stdout)
    assert (data["verdict"], data["stage"]) == ("crash", "node-conversion")
    assert data["versions"]["onnxruntime"] and "bwrap" in data["sandbox"]
    markdown = tmp_path / "report.md"
    markdown.write_text(thread("e_wrong_model.py"))
    result = cli.invoke(app, ["repro", "file", str(markdown), "--cold", "--json"])
    data = json.loads(result.stdout)
    assert data["verdict"] == "wrong-model" and data["mode"] == "cold" and result.exit_code == 12
    bad = tmp_path / "bad.py"
    bad.write_text("def broken(:\n")
    result = cli.invoke(app, ["repro", "file", str(bad)])
    assert result.exit_code == 2 and "not valid Python" in result.output


def test_two_environments_compared(
    repro_db: Database, db_path: Path, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same corpus in 'current' and in an environment without torch: the report says what changed."""
    monkeypatch.setenv("ISSUEMINE_ENVS_DIR", str(tmp_path / "envs"))
    envs = tmp_path / "repro-envs.toml"
    envs.write_text('[env.bare]\npackages = []\npreload = ["json"]\n')
    db = ["--db", str(db_path)]
    assert cli.invoke(app, ["repro", "env", "build", "bare", "--envs-file", str(envs)]).exit_code == 0
    # Without torch there is no exporter to switch: 105 runs once in 'bare', twice in 'current'.
    for env, runs in (("current", 7), ("bare", 6)):
        result = cli.invoke(app, ["repro", "run", "--env", env, "--envs-file", str(envs), "--json", *db])
        assert result.exit_code == 0 and json.loads(result.stdout)["ran"] == runs, result.output
    data = json.loads(
        cli.invoke(app, ["repro", "report", "--env", "bare", "--against", "current", "--json", *db]).stdout
    )
    comparison = data["comparison"]
    assert comparison["both"] == 6 and comparison["fixed"] == [] and comparison["broke"] == []
    assert {(t["from"], t["to"]): t["issues"] for t in comparison["transitions"]} == {
        ("crash", "not-runnable"): 2,
        ("not-runnable", "not-runnable"): 2,  # 105 as written, 199
        ("passes", "not-runnable"): 1,
        ("wrong-model", "not-runnable"): 1,
    }
    assert "pytorch/pytorch#101: crash/node-conversion -> not-runnable/-" in comparison["changed"]
    with repro_db.session() as session:
        bare = session.scalars(select(ReproRun).where(ReproRun.env == "bare", ReproRun.issue_id == 1)).one()
        assert session.scalars(select(ReproRun).where(ReproRun.issue_id == 5)).all()  # both variants stored
    assert bare.reason == "missing module: torch" and "torch" not in bare.versions
    result = cli.invoke(app, ["repro", "report", "--against", "nowhere", *db])
    assert result.exit_code == 2 and "no runs in environment 'nowhere'" in result.output


@pytest.mark.postgres
def test_runs_on_postgres(pg_db: Database, tmp_path: Path, cli) -> None:
    url = pg_db.engine.url.render_as_string(hide_password=False)
    populate(pg_db, url, tmp_path, cli)
    result = cli.invoke(app, ["repro", "run", "--jobs", "2", "--json", "--db", url])
    assert result.exit_code == 0 and json.loads(result.stdout)["ran"] == 7, result.output
    with pg_db.session() as session:
        verdicts = sorted(r.verdict for r in session.scalars(select(ReproRun).where(ReproRun.variant == "as-written")))
        evidence = session.scalars(select(ReproRun.evidence).where(ReproRun.verdict == "wrong-model")).one()
    assert verdicts == ["crash", "crash", "not-runnable", "not-runnable", "passes", "wrong-model"]
    assert evidence["mismatched_outputs"][0]["within"]["abs-1e-7"] is False  # JSON evidence round-trips
    # ReLU gives zeros where Sigmoid never does: an infinite relative difference, stored as strict JSON.
    assert evidence["mismatched_outputs"][0]["max_rel"] == "inf"
    tied = json.loads(cli.invoke(app, ["repro", "report", "--sample", "study", "--json", "--db", url]).stdout)
    assert tied["coverage"]["run"] == 5 and tied["stage_agreement"]["n"] == 2


def test_ctrl_c_keeps_finished_verdicts_and_resumes(fresh_db: Database, db_path: Path) -> None:
    """Ctrl-C at the terminal (SIGINT to the whole process group) while a snippet hangs in the sandbox."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from issuemine.repro.candidates import extract_issues

    with fresh_db.session() as session:
        repo_id = ensure_repository(session, "pytorch/pytorch")
        for number, snippet in ((1, "a_torchscript_passes.py"), (2, "f_hang.py")):
            save_issue(session, repo_id, {"id": number, "number": number, "body": thread(snippet), "title": snippet})
    extract_issues(fresh_db)
    command = [sys.executable, "-m", "issuemine", "repro", "run", "--timeout", "120", "--db", str(db_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with fresh_db.session() as session:
            if session.scalars(select(ReproRun)).first() is not None:
                break
        time.sleep(0.2)
    time.sleep(1)  # the hanging snippet is now running
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert b"rerun the same command" in err
    with fresh_db.session() as session:
        stored = [(r.issue_id, r.verdict) for r in session.scalars(select(ReproRun))]
    assert stored == [(1, "passes")]  # the run in flight is not recorded as anything
    subprocess.run([*command[:-4], "--timeout", "3", "--db", str(db_path)], check=True, capture_output=True)
    with fresh_db.session() as session:
        stored = sorted((r.issue_id, r.verdict) for r in session.scalars(select(ReproRun)))
    assert stored == [(1, "passes"), (2, "hang")]
