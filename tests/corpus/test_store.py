"""Storage from captured payloads, no network: upserts are idempotent and complete."""

from __future__ import annotations

import copy

from sqlalchemy import text

from issuemine.corpus.store import event_key, save_issue, save_timeline
from issuemine.db.rows import ensure_repository, save_stub
from issuemine.testing.ghserver.corpus import build_corpus
from tests.helpers import counts, snapshot

REPO = "onnx/tensorflow-onnx"


def _store_all(db, corpus):  # type: ignore[no-untyped-def]
    repo = corpus.repos[REPO]
    with db.session() as s:
        repo_id = ensure_repository(s, REPO)
        for number, issue in repo.issues.items():
            issue_id = save_issue(s, repo_id, issue)
            save_timeline(s, issue_id, repo.timelines[number], replace=True)


def test_saving_twice_changes_nothing(fresh_db):
    corpus = build_corpus({REPO: 60})
    _store_all(fresh_db, corpus)
    first = snapshot(fresh_db)
    _store_all(fresh_db, corpus)
    assert snapshot(fresh_db) == first
    repo = corpus.repos[REPO]
    assert counts(fresh_db)["issues"] == len(repo.issues)
    assert counts(fresh_db)["timeline_events"] == sum(len(t) for t in repo.timelines.values())
    assert counts(fresh_db)["comments"] == sum(i["comments"] for i in repo.issues.values())


def test_cross_reference_fields_and_keys(fresh_db):
    corpus = build_corpus({REPO: 5})
    number = next(iter(corpus.repos[REPO].issues))
    corpus.add_cross_reference(REPO, number, "onnx/onnx", 4242, source_state="closed", source_is_pr=True)
    corpus.add_cross_reference(REPO, number, REPO, 77, source_state="open", source_is_pr=False)
    events = corpus.repos[REPO].timelines[number]
    keys = [event_key(e) for e in events]
    assert len(set(keys)) == len(keys)
    with fresh_db.session() as s:
        issue_id = save_issue(s, ensure_repository(s, REPO), corpus.repos[REPO].issues[number])
        save_timeline(s, issue_id, events, replace=True)
    with fresh_db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT source_repo, source_number, source_state, source_is_pull_request FROM timeline_events "
                "WHERE event = 'cross-referenced' ORDER BY position"
            )
        ).all()
    assert rows[-2:] == [("onnx/onnx", 4242, "closed", 1), (REPO, 77, "open", 0)]


def test_complete_timeline_replaces_deleted_comments(fresh_db):
    corpus = build_corpus({REPO: 40})
    repo = corpus.repos[REPO]
    number = next(n for n, t in repo.timelines.items() if sum(e.get("event") == "commented" for e in t) >= 2)
    events = repo.timelines[number]
    with fresh_db.session() as s:
        issue_id = save_issue(s, ensure_repository(s, REPO), repo.issues[number])
        save_timeline(s, issue_id, events, replace=True)
    deleted = next(e for e in events if e.get("event") == "commented")
    remaining = [e for e in events if e is not deleted]
    edited = copy.deepcopy(remaining)
    with fresh_db.session() as s:
        save_timeline(s, issue_id, edited, replace=True)
    with fresh_db.engine.connect() as conn:
        ids = set(conn.execute(text("SELECT id FROM comments WHERE issue_id = :i"), {"i": issue_id}).scalars())
        n_events = conn.execute(
            text("SELECT count(*) FROM timeline_events WHERE issue_id = :i"), {"i": issue_id}
        ).scalar()
    assert deleted["id"] not in ids and n_events == len(remaining)


def test_stub_is_completed_by_a_fetch_and_never_overwrites(fresh_db):
    corpus = build_corpus({REPO: 5})
    number, issue = next(iter(corpus.repos[REPO].issues.items()))
    with fresh_db.session() as s:
        repo_id = ensure_repository(s, REPO)
        stub_id = save_stub(s, repo_id, number, title="from the study sheet")
        fetched_id = save_issue(s, repo_id, issue)
        again = save_stub(s, repo_id, number, title="a later sheet")
    assert stub_id == fetched_id == again
    with fresh_db.engine.connect() as conn:
        row = conn.execute(text("SELECT title, source, github_id FROM issues")).one()
    assert row == (issue["title"], "github", issue["id"])
