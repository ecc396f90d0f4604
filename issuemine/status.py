"""What the database holds: per repository and converter counts, filters, samples, last fetch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, case, func, select

from issuemine.db import Database
from issuemine.db.models import Comment, FetchRun, FilterResult, Issue, Repository, Sample, SampleMember, TimelineEvent


def count_where(expr: Any) -> Any:
    """SQL for the number of rows where ``expr`` holds (0 for none), portable across dialects."""
    return func.coalesce(func.sum(case((expr, 1), else_=0)), 0).cast(Integer)


def corpus_status(db: Database) -> dict[str, Any]:
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
            repos.append(
                {
                    "repo": row[0],
                    "issues": row[1] - row[2],
                    "pull_requests": row[2],
                    "stubs": row[3],
                    "timelines": row[4],
                }
            )
        comments = session.scalar(select(func.count(Comment.id))) or 0
        events = session.scalar(select(func.count(TimelineEvent.id))) or 0
        filters = [
            {
                "converter": row[0],
                "issues": row[1],
                "relevant": row[2],
                "not_relevant": row[3],
                "relevance_undecided": row[4],
                "available": row[5],
                "not_available": row[6],
                "availability_undecided": row[7],
                "kept": row[8],
            }
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
            samples.append(
                {
                    "name": sample.name,
                    "seed": sample.seed,
                    "per_converter": sample.per_converter,
                    "members": sizes,
                    "created_at": sample.created_at.isoformat(timespec="seconds"),
                }
            )
        last_runs = []
        latest = select(FetchRun.converter, func.max(FetchRun.id).label("id")).group_by(FetchRun.converter).subquery()
        for run in session.scalars(
            select(FetchRun).join(latest, latest.c.id == FetchRun.id).order_by(FetchRun.converter)
        ):
            last_runs.append(
                {
                    "converter": run.converter,
                    "status": run.status,
                    "started_at": run.started_at.isoformat(timespec="seconds"),
                    "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
                    "requests": run.requests,
                    "requests_counted": run.requests_counted,
                    "not_modified": run.not_modified,
                    "errors": run.errors,
                    "issues_saved": run.issues_saved,
                    "message": run.message,
                }
            )
    return {
        "database": db.display_url(),
        "repositories": repos,
        "comments": comments,
        "timeline_events": events,
        "filters": filters,
        "samples": samples,
        "last_fetch": last_runs,
    }
