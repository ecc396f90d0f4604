"""Generic row helpers every stage uses: portable upserts, naive-UTC time, lookups by name.

Every write that may repeat (a rerun, a resumed run, two writers) goes through :func:`upsert` keyed
on a stable id, so nothing is duplicated. Times are naive UTC, the database's convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Integer, Table, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from issuemine.db.models import Issue, Repository, Sample
from issuemine.domain.addresses import parse_issue_url
from issuemine.errors import IssuemineError


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_time(value: Any) -> datetime | None:
    """GitHub's ISO 8601 timestamps as naive UTC datetimes (the database's convention)."""
    if not value:
        return None
    dt = datetime.fromisoformat(str(value))
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def table_of(model: type) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert(session: Session, model: type) -> Any:
    return (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(model)


@lru_cache(maxsize=256)
def _upsert_statement(dialect: str, model: type, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    # Building ON CONFLICT ... excluded.* costs more than running it: build each shape once.
    table = table_of(model)
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    if columns:
        return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
    return stmt.on_conflict_do_nothing(index_elements=list(keys))


def upsert(session: Session, model: type, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert ``rows``, updating every non-key column of rows whose ``keys`` already exist."""
    if not rows:
        return
    columns = tuple(c for c in rows[0] if c not in keys)
    stmt = _upsert_statement(dialect_of(session), model, tuple(keys), columns)
    session.connection().execute(stmt, list(rows))


def ensure_repository(session: Session, full_name: str) -> int:
    found = session.scalar(select(Repository.id).where(Repository.full_name == full_name))
    if found is not None:
        return found
    session.execute(_insert(session, Repository).values(full_name=full_name).on_conflict_do_nothing())
    return session.scalars(select(Repository.id).where(Repository.full_name == full_name)).one()


def save_stub(
    session: Session,
    repository_id: int,
    number: int,
    *,
    title: str | None = None,
    html_url: str | None = None,
    created_at: datetime | None = None,
) -> int:
    """An issue known only by its address (e.g. from the study's labels); never overwrites fetched data."""
    existing = session.scalar(select(Issue.id).where(Issue.repository_id == repository_id, Issue.number == number))
    if existing is not None:
        return existing
    issue = Issue(
        repository_id=repository_id,
        number=number,
        title=title or None,
        html_url=html_url,
        created_at=created_at,
        source="stub",
        is_pull_request=False,
    )
    session.add(issue)
    session.flush()
    return issue.id


def sample_id(session: Session, name: str) -> int:
    found = session.scalar(select(Sample.id).where(Sample.name == name))
    if found is None:
        raise IssuemineError(f"no sample named {name!r}; see `issuemine status`")
    return found


def count_where(expr: Any) -> Any:
    """SQL for the number of rows where ``expr`` holds (0 for none), portable across dialects."""
    return func.coalesce(func.sum(case((expr, 1), else_=0)), 0).cast(Integer)


def find_issue(session: Any, ref: str) -> Issue:
    """An issue by ``owner/repo#N``, its URL, or issuemine's numeric id."""
    if ref.isdigit():
        if len(ref) > 18:  # beyond any database's integer: no such issue, not an overflow
            raise IssuemineError(f"no issue {ref[:40]} in the database")
        issue = session.get(Issue, int(ref))
    else:
        try:
            repo, number = parse_issue_url(ref)
        except ValueError as exc:
            raise IssuemineError(
                f"{ref[:200]!r} is not an issue ({exc}): use owner/repo#N, its URL, or an issue id"
            ) from None
        issue = session.scalar(
            select(Issue)
            .join(Repository, Repository.id == Issue.repository_id)
            .where(Repository.full_name == repo, Issue.number == number)
        )
    if issue is None:
        raise IssuemineError(f"no issue {ref} in the database")
    return issue
