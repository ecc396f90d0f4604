"""The real `issuemine label` program driven through a pseudo-terminal (pexpect)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
import pexpect
import pytest
from sqlalchemy import text

# Label sessions in subprocesses load the study model from the run's cache.
pytestmark = pytest.mark.usefixtures("warm_study_model")

STAGE_Q = "In which stage"
SYMPTOM_Q = "How does the failure"
CAUSE_Q = "What caused the failure"


def spawn(db_url: str, rater: str = "ana", sample: str = "s") -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "60"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "issuemine", "label", "--sample", sample, "--rater", rater, "--db", db_url],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(60, 120),
    )
    return child


def rows(db, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql)).all()]


def ana(db):  # type: ignore[no-untyped-def]
    return rows(
        db,
        "SELECT i.number, g.dimension, g.code FROM ratings g JOIN issues i ON i.id = g.issue_id "
        "JOIN raters r ON r.id = g.rater_id WHERE r.name = 'ana' ORDER BY i.number, g.dimension",
    )


def current_issue(child: pexpect.spawn) -> int:
    child.expect(r"onnx/tensorflow-onnx#(\d+)")
    return int(child.match.group(1))


def test_label_back_undo_quit_kill_and_resume(label_db, db_path):
    db = str(db_path)
    child = spawn(db)
    first = current_issue(child)
    child.expect(STAGE_Q)
    child.send("2")
    child.expect(SYMPTOM_Q)
    assert ana(label_db) == [(first, "stage", "node-conversion")]
    child.send("b")  # back to stage
    child.expect(STAGE_Q)
    child.send("u")  # undo the stage answer
    child.expect("undid stage")
    assert ana(label_db) == []
    child.send("2")
    child.expect(SYMPTOM_Q)
    child.send("1")
    child.expect(CAUSE_Q)
    child.send("4")  # shape problem: with 14 causes the number waits for Enter ...
    child.expect("Enter confirms")
    child.send("\r")  # ... which completes the issue
    second = current_issue(child)
    assert second != first
    assert ana(label_db) == sorted(
        [(first, "stage", "node-conversion"), (first, "symptom", "crash"), (first, "cause", "shape-problem")]
    )
    child.send("3")  # second issue: stage only
    child.expect(SYMPTOM_Q)
    child.send("q")
    child.expect("saved. 1 of 6 issues done by ana")
    child.expect(pexpect.EOF)
    assert (second, "stage", "graph-optimization") in ana(label_db)
    assert rows(label_db, "SELECT status FROM rater_issues ORDER BY started_at") == [("done",), ("in-progress",)]

    # Resume mid-issue, answer one more question, then kill -9 while a number is half typed.
    child = spawn(db)
    assert current_issue(child) == second
    child.expect(SYMPTOM_Q)
    child.send("2")
    child.expect(CAUSE_Q)
    child.send("1")  # 14 causes: the number waits for Enter
    child.expect("typed: 1")
    os.kill(child.pid, signal.SIGKILL)
    child.expect(pexpect.EOF)
    assert (second, "symptom", "wrong-model") in ana(label_db)
    assert not any(d == "cause" and n == second for n, d, _ in ana(label_db))

    child = spawn(db)
    assert current_issue(child) == second
    child.expect(CAUSE_Q)
    child.send("10\r")  # "1", "0", Enter: algorithmic error (10), which has sub-types
    child.expect("Which kind of Algorithmic error")
    child.send("2")
    third = current_issue(child)
    assert third not in (first, second)
    child.send("f")  # not a converter failure
    fourth = current_issue(child)
    child.send("s")  # skip
    assert current_issue(child) not in (first, second, third, fourth)
    child.send("q")
    child.expect(pexpect.EOF)
    statuses = dict(rows(label_db, "SELECT i.number, w.status FROM rater_issues w JOIN issues i ON i.id = w.issue_id"))
    assert statuses[second] == "done" and statuses[third] == "flagged" and statuses[fourth] == "skipped"
    assert (second, "subcause", "algorithmic-error.tracing") in ana(label_db)


def test_not_a_terminal_is_a_clear_error(label_db, db_path):
    result = subprocess.run(
        [sys.executable, "-m", "issuemine", "label", "--sample", "s", "--rater", "ana", "--db", str(db_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr and "issuemine labels import" in result.stderr
    assert "Traceback" not in result.stderr


def test_adjudicate_walks_only_disagreements(label_db, db_path, tmp_path):
    from issuemine.db.labels import final_labels
    from issuemine.domain.taxonomy import taxonomy

    with label_db.engine.connect() as conn:
        numbers = [
            r[0]
            for r in conn.execute(
                text("SELECT i.number FROM sample_members m JOIN issues i ON i.id = m.issue_id ORDER BY m.position")
            )
        ][:3]
    lines = ["repo,number,rater,symptom"]
    for n, (a, b) in zip(numbers, [("1", "2"), ("1", "1"), ("2", "3")], strict=True):
        lines += [f"onnx/tensorflow-onnx,{n},ana,{a}", f"onnx/tensorflow-onnx,{n},bob,{b}"]
    path = tmp_path / "two.csv"
    path.write_text("\n".join(lines) + "\n")
    subprocess.run(
        [sys.executable, "-m", "issuemine", "labels", "import", str(path), "--sample", "pair", "--db", str(db_path)],
        check=True,
        capture_output=True,
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "issuemine", "adjudicate", "--sample", "pair", "--as", "carol", "--db", str(db_path)],
        encoding="utf-8",
        timeout=30,
        env={**os.environ, "TERM": "xterm"},
        dimensions=(50, 120),
    )
    child.expect("disagreement 1 of 2")
    child.send("2")  # wrong model
    child.expect("disagreement 2 of 2")
    child.send("s")
    child.expect("No open disagreements")
    child.send("q")
    child.expect("1 disagreement")
    child.expect(pexpect.EOF)
    final = final_labels(label_db, taxonomy(), "pair").set_index("number")
    decided, skipped = sorted([numbers[0], numbers[2]])  # disagreements come in issue order
    assert final.loc[decided, "symptom"] == "wrong-model"
    assert final.loc[decided, "symptom_source"] == "adjudicated"
    assert final.loc[numbers[1], "symptom_source"] == "agreed"
    assert final.loc[skipped, "symptom_source"] == "disputed" and pd.isna(final.loc[skipped, "symptom"])
    assert rows(label_db, "SELECT decided_by FROM adjudications") == [("carol",)]
