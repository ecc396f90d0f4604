"""Saving GitHub payloads: plain dicts in, idempotent upserts out.

Nothing here talks to the network, so storage is tested by feeding captured JSON into a database.
Every write is an upsert on a stable key (issue: repository + number; comment, label: GitHub id;
timeline event: its id, sha or cross-reference source), so a rerun, an overlapping run or a resumed
run never duplicates a row. Callers decide the transaction: the fetcher stores an issue together
with its complete timeline in one transaction, so a crash never leaves half an issue behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from issuemine.db.models import Comment, Issue, IssueLabel, Label, TimelineEvent
from issuemine.db.rows import dialect_of, parse_time, table_of, upsert, utcnow
from issuemine.domain.addresses import repo_of_issue

# Issue columns a fetch owns; timeline bookkeeping is written separately by mark_timeline().
_ISSUE_FIELDS = (
    "github_id",
    "title",
    "body",
    "state",
    "state_reason",
    "author",
    "author_association",
    "created_at",
    "updated_at",
    "closed_at",
    "html_url",
    "comments_count",
    "is_pull_request",
    "source",
    "raw_json",
    "fetched_at",
)


def _login(user: Any) -> str | None:
    return user.get("login") if isinstance(user, dict) else None


def issue_row(raw: dict[str, Any], source: str = "github") -> dict[str, Any]:
    return {
        "github_id": raw.get("id"),
        "number": raw["number"],
        "title": raw.get("title"),
        "body": raw.get("body"),
        "state": raw.get("state"),
        "state_reason": raw.get("state_reason"),
        "author": _login(raw.get("user")),
        "author_association": raw.get("author_association"),
        "created_at": parse_time(raw.get("created_at")),
        "updated_at": parse_time(raw.get("updated_at")),
        "closed_at": parse_time(raw.get("closed_at")),
        "html_url": raw.get("html_url"),
        "comments_count": raw.get("comments"),
        "is_pull_request": "pull_request" in raw,
        "source": source,
        "raw_json": raw,
        "fetched_at": utcnow(),
    }


@lru_cache(maxsize=4)
def _issue_upsert(dialect: str) -> Any:
    table = table_of(Issue)
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["repository_id", "number"], set_={c: stmt.excluded[c] for c in _ISSUE_FIELDS}
    )
    return stmt.returning(table.c.id)


def save_issue(session: Session, repository_id: int, raw: dict[str, Any], source: str = "github") -> int:
    """Upsert one issue (or pull request) and replace its label set; return the issue's row id."""
    issue_id = upsert_issue_row(session, repository_id, raw, source)
    save_labels(session, repository_id, {issue_id: raw.get("labels") or []})
    return issue_id


def upsert_issue_row(session: Session, repository_id: int, raw: dict[str, Any], source: str = "github") -> int:
    row = issue_row(raw, source) | {"repository_id": repository_id}
    issue_id: int = session.connection().execute(_issue_upsert(dialect_of(session)), row).scalar_one()
    return issue_id


def save_labels(session: Session, repository_id: int, labels_by_issue: dict[int, Iterable[Any]]) -> None:
    """Replace the label sets of these issues (a few statements for any number of issues)."""
    rows: dict[int, dict[str, Any]] = {}
    links = []
    for issue_id, labels in labels_by_issue.items():
        for lab in labels:
            if isinstance(lab, dict) and lab.get("id") is not None:
                rows[lab["id"]] = {
                    "id": lab["id"],
                    "repository_id": repository_id,
                    "name": lab["name"],
                    "color": lab.get("color"),
                    "description": lab.get("description"),
                }
                links.append({"issue_id": issue_id, "label_id": lab["id"]})
    # Concurrent writers lock label rows in the same order.
    upsert(session, Label, [rows[k] for k in sorted(rows)], ["id"])
    session.connection().execute(delete(table_of(IssueLabel)).where(IssueLabel.issue_id.in_(list(labels_by_issue))))
    upsert(session, IssueLabel, links, ["issue_id", "label_id"])


def event_key(event: dict[str, Any]) -> str:
    """A stable key for a timeline event, which not every event type gives (see module doc)."""
    if event.get("id") is not None:
        return f"id:{event['id']}"
    if event.get("sha"):
        return f"sha:{event['sha']}"
    if event.get("event") == "cross-referenced":
        issue = (event.get("source") or {}).get("issue") or {}
        return f"xref:{issue.get('id') or issue.get('html_url')}:{event.get('created_at')}"
    digest = hashlib.sha1(json.dumps(event, sort_keys=True).encode()).hexdigest()
    return f"hash:{digest}"


def event_row(issue_id: int, position: int, event: dict[str, Any]) -> dict[str, Any]:
    kind = event.get("event") or "unknown"
    author: dict[str, Any] = event["author"] if isinstance(event.get("author"), dict) else {}
    row: dict[str, Any] = {
        "issue_id": issue_id,
        "event_key": event_key(event),
        "github_id": event.get("id") if isinstance(event.get("id"), int) else None,
        "position": position,
        "event": kind,
        "actor": _login(event.get("actor")) or _login(event.get("user")) or author.get("name"),
        "created_at": parse_time(event.get("created_at") or event.get("submitted_at") or author.get("date")),
        "commit_id": event.get("commit_id") or (event.get("sha") if kind == "committed" else None),
        "source_type": None,
        "source_repo": None,
        "source_number": None,
        "source_state": None,
        "source_is_pull_request": None,
        "raw_json": event,
    }
    source = event.get("source")
    if kind == "cross-referenced" and isinstance(source, dict):
        issue = source.get("issue") or {}
        row |= {
            "source_type": source.get("type"),
            "source_repo": repo_of_issue(issue),
            "source_number": issue.get("number"),
            "source_state": issue.get("state"),
            "source_is_pull_request": "pull_request" in issue,
        }
    return row


def comment_row(issue_id: int, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event["id"],
        "issue_id": issue_id,
        "author": _login(event.get("user")) or _login(event.get("actor")),
        "author_association": event.get("author_association"),
        "body": event.get("body"),
        "created_at": parse_time(event.get("created_at")),
        "updated_at": parse_time(event.get("updated_at")),
        "html_url": event.get("html_url"),
        "raw_json": event,
    }


def save_timeline(
    session: Session, issue_id: int, events: Sequence[dict[str, Any]], *, first_position: int = 0, replace: bool
) -> None:
    """Store timeline events and the comments they carry.

    ``replace`` (a complete timeline) drops what GitHub no longer lists, e.g. deleted comments;
    otherwise (a refreshed tail) events are only added or updated.
    """
    if replace:
        replace_timelines(session, {issue_id: events})
        return
    rows = _event_rows(issue_id, events, first_position)
    upsert(session, TimelineEvent, rows, ["issue_id", "event_key"])
    upsert(session, Comment, _comment_rows(issue_id, events), ["id"])


def _event_rows(issue_id: int, events: Sequence[dict[str, Any]], first_position: int = 0) -> list[dict[str, Any]]:
    rows = [event_row(issue_id, first_position + i, ev) for i, ev in enumerate(events)]
    # A timeline may list the same keyless event twice; keep the last, as a rerun would.
    return list({r["event_key"]: r for r in rows}.values())


def _comment_rows(issue_id: int, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [comment_row(issue_id, ev) for ev in events if ev.get("event") == "commented" and ev.get("id")]


def replace_timelines(session: Session, events_by_issue: dict[int, Sequence[dict[str, Any]]]) -> None:
    """Replace the complete timelines (and comments) of these issues, a few statements in all."""
    if not events_by_issue:
        return
    ids = list(events_by_issue)
    rows = [r for issue_id, events in events_by_issue.items() for r in _event_rows(issue_id, events)]
    comments = [c for issue_id, events in events_by_issue.items() for c in _comment_rows(issue_id, events)]
    connection = session.connection()
    connection.execute(delete(table_of(TimelineEvent)).where(TimelineEvent.issue_id.in_(ids)))
    # Comment ids are global, so one NOT IN over all kept comments is each issue's own.
    connection.execute(
        delete(table_of(Comment)).where(Comment.issue_id.in_(ids), Comment.id.not_in([c["id"] for c in comments]))
    )
    if rows:
        connection.execute(table_of(TimelineEvent).insert(), rows)
    upsert(session, Comment, comments, ["id"])


def mark_timeline(
    session: Session,
    issue_id: int,
    *,
    issue_updated_at: datetime | None,
    pages: int,
    last_page_count: int,
    etag: str | None,
) -> None:
    """Record that the issue's timeline is complete as of ``issue_updated_at``."""
    mark_timelines(
        session,
        [
            {
                "issue_id": issue_id,
                "issue_updated_at": issue_updated_at,
                "pages": pages,
                "last_page_count": last_page_count,
                "etag": etag,
            }
        ],
    )


def mark_timelines(session: Session, marks: Sequence[dict[str, Any]]) -> None:
    """``mark_timeline`` for many issues in one statement (keys: issue_id, issue_updated_at, pages,
    last_page_count, etag)."""
    if not marks:
        return
    table = table_of(Issue)
    now = utcnow()
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_issue_id"))
        .values(
            timeline_complete=True,
            timeline_fetched_at=now,
            timeline_issue_updated_at=bindparam("b_updated"),
            timeline_pages=bindparam("b_pages"),
            timeline_last_page_count=bindparam("b_count"),
            timeline_etag=bindparam("b_etag"),
        )
    )
    session.connection().execute(
        stmt,
        [
            {
                "b_issue_id": m["issue_id"],
                "b_updated": m["issue_updated_at"],
                "b_pages": m["pages"],
                "b_count": m["last_page_count"],
                "b_etag": m["etag"],
            }
            for m in marks
        ],
    )
