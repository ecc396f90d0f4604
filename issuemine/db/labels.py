"""The final-label rule and the ratings it reads: adjudicated, else agreed, else the single rater's.

Only finished answers count (``rater_issues.status = 'done'``). The database view ``final_labels``
states the same rule in SQL, for sqlite3, Datasette and hand-written queries; a test holds the two
equal.

Kept with the database because every stage reads final labels (analysis, the reproduction tie-back,
suggestions) and none of them should import the labeling stage to get them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from issuemine.db.engine import Database
from issuemine.db.models import (
    Adjudication,
    Assignment,
    Issue,
    Rater,
    RaterIssue,
    Rating,
    Repository,
    Sample,
    SampleMember,
)
from issuemine.db.rows import sample_id

if TYPE_CHECKING:
    from issuemine.domain.taxonomy import Taxonomy


def has_finished_labels(db: Database) -> bool:
    with db.session() as session:
        return session.scalar(select(RaterIssue.issue_id).where(RaterIssue.status == "done").limit(1)) is not None


def labeled_samples(db: Database) -> list[str]:
    """Samples whose issues carry labels (from their assigned raters, where there is a plan)."""
    with db.session() as session:
        return sorted(
            session.scalars(
                select(Sample.name)
                .join(SampleMember, SampleMember.sample_id == Sample.id)
                .join(Rating, Rating.issue_id == SampleMember.issue_id)
                .join(
                    Assignment,
                    (Assignment.sample_id == Sample.id)
                    & (Assignment.issue_id == Rating.issue_id)
                    & (Assignment.rater_id == Rating.rater_id),
                    isouter=True,
                )
                .distinct()
            )
        )


def assigned_samples(db: Database) -> list[str]:
    """Samples with rater assignments: planned, imported with raters, or labeled in sessions. Only
    these say who was meant to label what, which agreement needs."""
    with db.session() as session:
        return sorted(
            session.scalars(select(Sample.name).join(Assignment, Assignment.sample_id == Sample.id).distinct())
        )


def ratings_frame(db: Database, sample: str | None = None, converters: dict[str, str] | None = None) -> Any:
    """All ratings as a pandas DataFrame: issue_id, repo, number, created_at, closed_at, rater,
    dimension, code, converter."""
    import pandas as pd

    query = (
        select(
            Rating.issue_id,
            Repository.full_name.label("repo"),
            Issue.number,
            Issue.created_at,
            Issue.closed_at,
            Rater.name.label("rater"),
            Rating.dimension,
            Rating.code,
        )
        .join(Issue, Issue.id == Rating.issue_id)
        .join(Repository, Repository.id == Issue.repository_id)
        .join(Rater, Rater.id == Rating.rater_id)
        # Finished answers only: a session's half-answered issue is no label yet.
        .join(
            RaterIssue,
            (RaterIssue.issue_id == Rating.issue_id)
            & (RaterIssue.rater_id == Rating.rater_id)
            & (RaterIssue.status == "done"),
        )
    )
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.add_columns(SampleMember.converter).join(
                SampleMember, (SampleMember.issue_id == Rating.issue_id) & (SampleMember.sample_id == sid)
            )
            if session.scalar(select(Assignment.sample_id).where(Assignment.sample_id == sid).limit(1)) is not None:
                # A planned sample: only the raters assigned to each issue count for it.
                query = query.join(
                    Assignment,
                    (Assignment.sample_id == sid)
                    & (Assignment.issue_id == Rating.issue_id)
                    & (Assignment.rater_id == Rating.rater_id),
                )
        # Core execution: plain rows, no ORM bookkeeping (several times faster at 10^5 rows).
        rows = session.connection().execute(query).all()
    columns = [
        "issue_id",
        "repo",
        "number",
        "created_at",
        "closed_at",
        "rater",
        "dimension",
        "code",
        *(["converter"] if sample else []),
    ]
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    if "converter" not in frame.columns:
        mapping = {k.lower(): v for k, v in (converters or {}).items()}
        frame["converter"] = [mapping.get(str(r).lower(), r) for r in frame["repo"]]
    return frame


def final_labels(
    db: Database, taxonomy: Taxonomy, sample: str | None = None, converters: dict[str, str] | None = None
) -> Any:
    """One row per issue: the final code per dimension and where it came from (``<dim>_source``:
    adjudicated, agreed, single, or disputed with no code)."""
    import numpy as np
    import pandas as pd

    frame = ratings_frame(db, sample, converters)
    dims = taxonomy.label_dimensions()
    columns = [
        "issue_id",
        "repo",
        "number",
        "converter",
        "created_at",
        "closed_at",
        *dims,
        *(f"{d}_source" for d in dims),
    ]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    groups = frame.groupby(["issue_id", "dimension"], sort=False).agg(
        code=("code", "first"), codes=("code", "nunique"), raters=("rater", "nunique")
    )
    groups["source"] = np.where(groups["codes"] > 1, "disputed", np.where(groups["raters"] > 1, "agreed", "single"))
    groups["code"] = groups["code"].where(groups["codes"] == 1, None)
    with db.session() as session:
        adjudicated = pd.DataFrame(
            session.execute(select(Adjudication.issue_id, Adjudication.dimension, Adjudication.code)).all(),
            columns=["issue_id", "dimension", "code"],
        ).set_index(["issue_id", "dimension"])
    decided = adjudicated.index.intersection(groups.index)
    groups.loc[decided, "code"] = adjudicated.loc[decided, "code"]
    groups.loc[decided, "source"] = "adjudicated"
    codes = groups["code"].unstack("dimension").reindex(columns=dims)
    sources = groups["source"].unstack("dimension").reindex(columns=dims).add_suffix("_source")
    info = frame.drop_duplicates("issue_id").set_index("issue_id")[
        ["repo", "number", "converter", "created_at", "closed_at"]
    ]
    final = info.join(codes).join(sources).reset_index()
    for col in ("created_at", "closed_at"):
        final[col] = pd.to_datetime(final[col])
    return final[columns].sort_values(["converter", "repo", "number"], ignore_index=True)
