"""Test helpers: database snapshots and what the fixture corpus should produce."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from issuemine.db import Database
from issuemine.domain.converters import Converter
from issuemine.testing.ghserver.corpus import Corpus


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """The database's content, without row ids and fetch times: equal snapshots = same data."""
    queries = {
        "issues": "SELECT r.full_name, i.number, i.github_id, i.title, i.body, i.state, i.updated_at, "
        "i.closed_at, i.is_pull_request, i.timeline_complete, i.author FROM issues i "
        "JOIN repositories r ON r.id = i.repository_id",
        "labels": "SELECT r.full_name, i.number, l.name FROM issue_labels il JOIN issues i ON i.id = il.issue_id "
        "JOIN labels l ON l.id = il.label_id JOIN repositories r ON r.id = i.repository_id",
        "comments": "SELECT c.id, i.number, c.author, c.body, c.created_at FROM comments c "
        "JOIN issues i ON i.id = c.issue_id",
        "events": "SELECT r.full_name, i.number, t.event_key, t.position, t.event, t.actor, t.commit_id, "
        "t.source_repo, t.source_number, t.source_state FROM timeline_events t "
        "JOIN issues i ON i.id = t.issue_id JOIN repositories r ON r.id = i.repository_id",
    }
    with db.engine.connect() as conn:
        return {name: sorted(tuple(row) for row in conn.execute(text(q))) for name, q in queries.items()}


def counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("issues", "comments", "timeline_events", "issue_labels", "labels")
        }


def listed(corpus: Corpus, converter: Converter) -> list[dict[str, Any]]:
    """Issues (and PRs) the converter's listing returns: every state, all include labels."""
    repo = corpus.repos[converter.repo]
    return [
        i
        for i in repo.issues.values()
        if all(label in {x["name"] for x in i["labels"]} for label in converter.include_labels)
    ]


def wants_timeline(converter: Converter, issue: dict[str, Any]) -> bool:
    names = {x["name"] for x in issue["labels"]}
    return (
        "pull_request" not in issue
        and issue["state"] == converter.state
        and not names.intersection(converter.exclude_labels)
    )


def load_issue(db: Database, repo: str, number: int, title: str, body: str) -> None:
    """Store one issue as `load` would (a mined thread for tests that look issues up)."""
    from issuemine.corpus.store import save_issue
    from issuemine.db.rows import ensure_repository

    payload = {
        "id": 10_000_000 + number,
        "number": number,
        "title": title,
        "body": body,
        "state": "closed",
        "created_at": "2022-01-01T00:00:00Z",
        "html_url": f"https://github.com/{repo}/issues/{number}",
        "comments": 0,
    }
    with db.session() as session:
        save_issue(session, ensure_repository(session, repo), payload, source="load")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text``, each as rows of cells (the header first, the rule dropped);
    asserts each is well formed: a header, a rule of dashes, and every row as wide as the header
    (a pipe inside a cell escaped as ``\\|``)."""
    tables: list[list[str]] = []
    previous = False
    for line in text.splitlines():
        is_row = line.startswith("|")
        if is_row and not previous:
            tables.append([])
        if is_row:
            tables[-1].append(line)
        previous = is_row
    parsed = []
    for lines in tables:
        rows = [[c.strip() for c in line.replace("\\|", "\x00").strip().strip("|").split("|")] for line in lines]
        assert len(rows) >= 2 and all(set(c) <= set("-: ") and c for c in rows[1]), lines[:2]
        assert {len(r) for r in rows} == {len(rows[0])}, lines
        parsed.append([[c.replace("\x00", "|") for c in r] for r in [rows[0], *rows[2:]]])
    return parsed
