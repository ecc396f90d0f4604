"""Labeling benchmarks.

    python benchmarks/bench_labeling.py

(1) On a database of 20,000 issues (bodies with code and tracebacks, comments) in one sample:
    the time from an answer to the next issue on screen, measured through the session's own code
    path (``LabelSession.press`` of the last answer, which commits and loads the next issue, then
    ``screen()`` and rendering to text), p50 and p95 over 300 issues. Target p95 < 50 ms.
(2) ``agree`` (ratings read from the database + Cohen's κ + Krippendorff's α per dimension and
    converter) over 10,000 issues labeled by two raters. Target < 2 s.
"""

from __future__ import annotations

import io
import random
import statistics
import tempfile
import time

from rich.console import Console

from issuemine.cli.label_ui import render
from issuemine.db import Database, open_db
from issuemine.db.labels import ratings_frame
from issuemine.db.models import (
    Comment,
    Issue,
    Rater,
    RaterIssue,
    Rating,
    Repository,
    Sample,
    SampleMember,
)
from issuemine.db.rows import table_of, utcnow
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.agreement import agreement
from issuemine.labeling.session import LabelSession
from issuemine.testing.ghserver.corpus import MODELS, OPS, REPLIES, SYMPTOMS, _body

REPOS = (("pytorch/pytorch", "torch.onnx"), ("onnx/tensorflow-onnx", "tf2onnx"))


def build(db: Database, n_issues: int, sample: str) -> list[int]:
    """n issues split over the two study repositories, all in one sample; returns issue ids."""
    rng = random.Random(11)
    now = utcnow()
    conn_rows: list[dict] = []
    with db.session() as session:
        repo_ids = []
        for name, _ in REPOS:
            repo = Repository(full_name=name)
            session.add(repo)
            session.flush()
            repo_ids.append(repo.id)
        for i in range(n_issues):
            op, model, symptom = rng.choice(OPS), rng.choice(MODELS), rng.choice(SYMPTOMS)
            conn_rows.append(
                {
                    "github_id": 10_000_000 + i,
                    "repository_id": repo_ids[i % 2],
                    "number": 1 + i // 2,
                    "title": f"Converting {model} with {op}: {symptom}",
                    "body": _body(rng, op, model, symptom, "torch"),
                    "state": "closed",
                    "created_at": now,
                    "updated_at": now,
                    "closed_at": now,
                    "html_url": f"https://github.com/{REPOS[i % 2][0]}/issues/{1 + i // 2}",
                    "is_pull_request": False,
                    "source": "github",
                    "timeline_complete": True,
                }
            )
        session.connection().execute(table_of(Issue).insert(), conn_rows)
        ids = [i for (i,) in session.execute(Issue.__table__.select().with_only_columns(Issue.id).order_by(Issue.id))]
        comments = [
            {
                "id": 50_000_000 + k,
                "issue_id": issue_id,
                "author": "maintainer-a",
                "body": rng.choice(REPLIES),
                "created_at": now,
                "updated_at": now,
            }
            for k, issue_id in enumerate(ids)
            for _ in range(1)
        ]
        session.connection().execute(table_of(Comment).insert(), comments)
        s = Sample(name=sample, seed=0, per_converter=n_issues, params={}, created_at=now)
        session.add(s)
        session.flush()
        session.connection().execute(
            table_of(SampleMember).insert(),
            [
                {"sample_id": s.id, "issue_id": issue_id, "converter": REPOS[k % 2][1], "position": k}
                for k, issue_id in enumerate(ids)
            ],
        )
    return ids


def bench_session(db: Database, answers: int = 300) -> list[float]:
    tax = taxonomy()
    session = LabelSession(db, tax, "big", "bench").start()
    console = Console(file=io.StringIO(), width=120, height=40, force_terminal=True)
    timings = []
    for _ in range(answers):
        session.press("2")  # node conversion
        session.press("1")  # crash
        session.press("4")  # shape problem (14 causes: the number waits for Enter)
        start = time.perf_counter()
        session.press("\r")  # the last answer: commits and moves to the next issue
        console.print(render(session.screen(), session, console))
        timings.append((time.perf_counter() - start) * 1000)
        console.file = io.StringIO()
    return timings


def bench_agree(db: Database, n_issues: int) -> tuple[float, int]:
    tax = taxonomy()
    rng = random.Random(5)
    now = utcnow()
    with db.session() as session:
        raters = []
        for name in ("r1", "r2"):
            rater = Rater(name=name, created_at=now)
            session.add(rater)
            session.flush()
            raters.append(rater.id)
        ids = [m.issue_id for m in session.query(SampleMember).order_by(SampleMember.position).limit(n_issues)]
        rows, work = [], []
        for issue_id in ids:
            truth = {d: rng.choice(tax.all_codes(d)) for d in ("stage", "symptom", "cause")}
            for rater_id in raters:
                for dim, code in truth.items():
                    if rng.random() < 0.1:
                        code = rng.choice(tax.all_codes(dim))
                    rows.append(
                        {
                            "issue_id": issue_id,
                            "rater_id": rater_id,
                            "dimension": dim,
                            "code": code,
                            "taxonomy_version": tax.version,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                work.append(
                    {
                        "issue_id": issue_id,
                        "rater_id": rater_id,
                        "status": "done",
                        "seconds": 30.0,
                        "taxonomy_version": tax.version,
                        "source": "import",
                        "started_at": now,
                        "updated_at": now,
                    }
                )
        session.connection().execute(table_of(Rating).insert(), rows)
        session.connection().execute(table_of(RaterIssue).insert(), work)
    start = time.perf_counter()
    results = agreement(ratings_frame(db, "big"), tax)
    seconds = time.perf_counter() - start
    return seconds, max(r.n for r in results)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        db = open_db(f"{d}/bench.db")
        build(db, 20_000, "big")
        timings = bench_session(db)
        p50, p95 = statistics.median(timings), statistics.quantiles(timings, n=20)[-1]
        db.close()
        db = open_db(f"{d}/agree.db")
        build(db, 10_000, "big")
        seconds, n = bench_agree(db, 10_000)
        db.close()
    print("labeling benchmark (SQLite, this machine)")
    print(
        f"(1) answer -> next issue on screen, 20,000-issue sample, {len(timings)} answers: "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms  (target p95 < 50 ms)"
    )
    print(f"(2) agree over {n:,} double-labeled issues (3 dimensions, 2 converters): {seconds:.2f} s  (target < 2 s)")


if __name__ == "__main__":
    main()
