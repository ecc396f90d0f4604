"""The same code on a real PostgreSQL server (started by the `postgres_url` fixture)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from issuemine.corpus.fetch import Fetcher
from issuemine.corpus.filters import run_filters
from issuemine.corpus.sampling import create_sample, sample_members
from issuemine.corpus.status import corpus_status
from issuemine.github.client import GitHubClient
from tests.conftest import FAST
from tests.corpus.test_fetch import crawl
from tests.helpers import counts, listed, snapshot, wants_timeline

pytestmark = pytest.mark.postgres


def test_fetch_filter_sample_on_postgres(pg_db, client, gh, corpus, catalog):
    reports = crawl(pg_db, client, catalog)
    assert all(r.status == "completed" for r in reports)
    expected = sum(len(listed(corpus, catalog[n])) for n in ("torch.onnx", "tf2onnx"))
    assert counts(pg_db)["issues"] == expected
    first = snapshot(pg_db)
    again = crawl(pg_db, client, catalog)
    assert sum(r.counted for r in again) == 0 and snapshot(pg_db) == first
    results = run_filters(pg_db, [catalog["torch.onnx"], catalog["tf2onnx"]])
    assert all(r.kept > 0 for r in results)
    create_sample(pg_db, "pg", [catalog["torch.onnx"], catalog["tf2onnx"]], 15, seed=7)
    assert len(sample_members(pg_db, "pg")) == 30
    with pg_db.engine.connect() as conn:
        labels = conn.execute(
            text("SELECT labels FROM issue_overview WHERE repo = 'pytorch/pytorch' AND labels IS NOT NULL LIMIT 1")
        ).scalar()
    assert "module: onnx" in labels
    status = corpus_status(pg_db)
    assert {f.converter for f in status.filters} == {"torch.onnx", "tf2onnx"}


def test_overlapping_runs_do_not_duplicate(pg_db, gh, corpus, catalog):
    conv = catalog["tf2onnx"]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Fetcher(pg_db, GitHubClient(gh.url, policy=FAST)).fetch(conv)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    issues = listed(corpus, conv)
    with pg_db.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM issues")).scalar()
        dup = conn.execute(
            text("SELECT count(*) FROM (SELECT github_id FROM issues GROUP BY github_id HAVING count(*) > 1) d")
        ).scalar()
        events = conn.execute(text("SELECT count(*) FROM timeline_events")).scalar()
    assert n == len(issues) and dup == 0
    assert events == sum(len(corpus.repos[conv.repo].timelines[i["number"]]) for i in issues if wants_timeline(conv, i))


def test_two_raters_label_the_same_sample_at_once(pg_db, catalog):
    """Two `issuemine label` processes on one PostgreSQL database, answering in lockstep."""
    import os
    import sys

    import pexpect

    from tests.conftest import build_label_db

    build_label_db(pg_db, catalog)
    # The database gets its suggestion model first: two sessions that each train it at once, from a
    # cold cache on a busy machine, can take longer than the prompts' timeout (this test is about
    # two raters answering, not about training).
    from issuemine.domain.taxonomy import taxonomy
    from issuemine.suggest.store import train_study_model

    train_study_model(pg_db, taxonomy())
    url = pg_db.url.replace("postgresql+psycopg://", "postgresql://")

    def spawn(rater: str) -> pexpect.spawn:
        return pexpect.spawn(
            sys.executable,
            ["-m", "issuemine", "label", "--sample", "s", "--rater", rater, "--db", url],
            env={**os.environ, "TERM": "xterm"},
            encoding="utf-8",
            timeout=30,
            dimensions=(60, 120),
        )

    ana, bob = spawn("ana"), spawn("bob")
    # stage, symptom, cause (shape problem / numerical: no sub-causes; 14 causes: number, then Enter)
    answers = {"ana": ["2", "1", "4\r"], "bob": ["3", "2", "5\r"]}
    for _ in range(3):  # three issues each, key by key, interleaved
        for step in range(3):
            for child, rater in ((ana, "ana"), (bob, "bob")):
                child.expect("In which stage|How does the failure|What caused the failure")
                child.send(answers[rater][step])
    for child in (ana, bob):
        child.expect("In which stage")
        child.send("q")
        child.expect(pexpect.EOF)
    with pg_db.engine.connect() as conn:
        got = conn.execute(
            text(
                "SELECT r.name, g.dimension, g.code, count(*) FROM ratings g JOIN raters r ON r.id = g.rater_id "
                "GROUP BY r.name, g.dimension, g.code ORDER BY 1, 2"
            )
        ).all()
        done = conn.execute(
            text(
                "SELECT r.name, count(*) FROM rater_issues w JOIN raters r ON r.id = w.rater_id "
                "WHERE w.status = 'done' GROUP BY r.name ORDER BY 1"
            )
        ).all()
    assert [tuple(r) for r in got] == [
        ("ana", "cause", "shape-problem", 3),
        ("ana", "stage", "node-conversion", 3),
        ("ana", "symptom", "crash", 3),
        ("bob", "cause", "numerical", 3),
        ("bob", "stage", "graph-optimization", 3),
        ("bob", "symptom", "wrong-model", 3),
    ]
    assert [tuple(r) for r in done] == [("ana", 3), ("bob", 3)]
