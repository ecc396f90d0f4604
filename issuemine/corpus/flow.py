"""The issue flow of the data selection (the study's Figure 4, as numbers) per converter."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select

from issuemine.db import Database
from issuemine.db.models import FilterResult, Issue, Sample, SampleMember
from issuemine.db.rows import count_where


def issue_flow(db: Database) -> pd.DataFrame:
    """Fetched issues → relevant → available (both filters) → in each sample, per converter."""
    with db.session() as session:
        rows = session.execute(
            select(
                FilterResult.converter,
                func.count(),
                count_where(FilterResult.relevant.is_(True)),
                count_where(FilterResult.relevant.is_(True) & FilterResult.available.is_(True)),
            )
            .join(Issue, Issue.id == FilterResult.issue_id)
            .where(Issue.is_pull_request.is_(False))
            .group_by(FilterResult.converter)
        ).all()
        samples = session.execute(
            select(Sample.name, SampleMember.converter, func.count())
            .join(SampleMember, SampleMember.sample_id == Sample.id)
            .group_by(Sample.name, SampleMember.converter)
        ).all()
    flow = pd.DataFrame(rows, columns=["converter", "issues", "relevant", "available"]).set_index("converter")
    for name, converter, n in samples:
        flow.loc[converter, f"sample {name}"] = n
    return flow.fillna(0).astype(int).sort_index()
