"""What the database holds: per repository and converter counts, filters, samples, last fetch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from issuemine.corpus.filters import FilterCounts
from issuemine.db import Database
from issuemine.db.models import Comment, FetchRun, FilterResult, Issue, Repository, Sample, SampleMember, TimelineEvent
from issuemine.db.rows import count_where
from issuemine.domain.converters import Converter


@dataclass
class RepositoryCounts:
    repo: str
    issues: int
    pull_requests: int
    stubs: int
    timelines: int


@dataclass
class SampleSummary:
    name: str
    origin: str  # "drawn with seed 7, 100 per converter" or "imported from FILE"
    seed: int | None  # None for an imported sample: it was not drawn
    per_converter: int | None
    members: dict[str, int]
    created_at: str


@dataclass
class FetchSummary:
    converter: str
    status: str
    started_at: str
    finished_at: str | None
    requests: int
    requests_counted: int
    not_modified: int
    errors: int
    issues_saved: int
    message: str | None


@dataclass
class CorpusStatus:
    """What the database holds; the CLI, the demo and the HTML report read it by attribute."""

    database: str
    repositories: list[RepositoryCounts] = field(default_factory=list)
    comments: int = 0
    timeline_events: int = 0
    filters: list[FilterCounts] = field(default_factory=list)
    samples: list[SampleSummary] = field(default_factory=list)
    last_fetch: list[FetchSummary] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def corpus_status(db: Database) -> CorpusStatus:
    with db.session() as session:
        repos = []
        for row in session.execute(
            select(
                Repository.full_name,
                func.count(Issue.id),
                count_where(Issue.is_pull_request.is_(True)),
                count_where(Issue.source == "stub"),
                count_where(Issue.timeline_complete.is_(True)),
            )
            .join(Issue, Issue.repository_id == Repository.id, isouter=True)
            .group_by(Repository.full_name)
            .order_by(Repository.full_name)
        ):
            repos.append(RepositoryCounts(row[0], row[1] - row[2], row[2], row[3], row[4]))
        comments = session.scalar(select(func.count(Comment.id))) or 0
        events = session.scalar(select(func.count(TimelineEvent.id))) or 0
        filters = [
            FilterCounts(*row)
            for row in session.execute(
                select(
                    FilterResult.converter,
                    func.count(),
                    count_where(FilterResult.relevant.is_(True)),
                    count_where(FilterResult.relevant.is_(False)),
                    count_where(FilterResult.relevant.is_(None)),
                    count_where(FilterResult.available.is_(True) & FilterResult.relevant.is_not(False)),
                    count_where(FilterResult.available.is_(False) & FilterResult.relevant.is_not(False)),
                    count_where(FilterResult.available.is_(None) & FilterResult.relevant.is_not(False)),
                    count_where(FilterResult.relevant.is_(True) & FilterResult.available.is_(True)),
                )
                .group_by(FilterResult.converter)
                .order_by(FilterResult.converter)
            )
        ]
        samples = []
        for sample in session.scalars(select(Sample).order_by(Sample.created_at)):
            sizes = dict(
                session.execute(
                    select(SampleMember.converter, func.count())
                    .where(SampleMember.sample_id == sample.id)
                    .group_by(SampleMember.converter)
                ).all()
            )
            params = sample.params or {}
            imported = params.get("source") == "labels import"
            origin = (
                f"imported from {params.get('file')}"
                if imported
                else f"drawn with seed {sample.seed}, {sample.per_converter} per converter"
            )
            samples.append(
                SampleSummary(
                    sample.name,
                    origin,
                    None if imported else sample.seed,
                    None if imported else sample.per_converter,
                    sizes,
                    sample.created_at.isoformat(timespec="seconds"),
                )
            )
        last_runs = []
        latest = select(FetchRun.converter, func.max(FetchRun.id).label("id")).group_by(FetchRun.converter).subquery()
        for run in session.scalars(
            select(FetchRun).join(latest, latest.c.id == FetchRun.id).order_by(FetchRun.converter)
        ):
            last_runs.append(
                FetchSummary(
                    run.converter,
                    run.status,
                    run.started_at.isoformat(timespec="seconds"),
                    run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
                    run.requests,
                    run.requests_counted,
                    run.not_modified,
                    run.errors,
                    run.issues_saved,
                    run.message,
                )
            )
    return CorpusStatus(db.display_url(), repos, comments, events, filters, samples, last_runs)


def stored_converters(db: Database, entries: dict[str, Converter]) -> list[Converter]:
    """The catalog's converters whose repositories have issues in the database."""
    with db.session() as session:
        repos = set(session.scalars(select(Repository.full_name)))
    return [c for c in entries.values() if c.repo in repos]
