"""Named, seeded, reproducible samples, stratified by converter.

Members are drawn from the issues that passed both filters (or, with ``include_undecided``, that no
filter rejected), listed in a fixed order (repository, number) and shuffled by a generator seeded
from the sample's seed and the converter's name: the same seed over the same corpus always gives
the same members, and adding a converter does not change another converter's draw.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from issuemine.db import Database
from issuemine.db.models import FilterResult, Issue, Repository, Sample, SampleMember
from issuemine.db.rows import utcnow
from issuemine.domain.converters import Converter
from issuemine.errors import IssuemineError


@dataclass
class SampleReport:
    name: str
    seed: int
    per_converter: int
    members: dict[str, int]
    eligible: dict[str, int]
    created: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def eligible_issues(db: Database, converter: Converter, include_undecided: bool) -> list[int]:
    """Issue ids a sample may draw for ``converter``, in a fixed order."""
    query = (
        select(Issue.id)
        .join(FilterResult, FilterResult.issue_id == Issue.id)
        .join(Repository, Repository.id == Issue.repository_id)
        .where(FilterResult.converter == converter.name, Issue.is_pull_request.is_(False))
        .order_by(Repository.full_name, Issue.number)
    )
    if include_undecided:
        query = query.where(FilterResult.relevant.is_not(False), FilterResult.available.is_not(False))
    else:
        query = query.where(FilterResult.relevant.is_(True), FilterResult.available.is_(True))
    with db.session() as session:
        return list(session.scalars(query))


def draw(ids: Sequence[int], k: int, seed: int, converter: str) -> list[int]:
    rng = random.Random(f"{seed}:{converter}")
    return rng.sample(list(ids), min(k, len(ids)))


def create_sample(
    db: Database,
    name: str,
    converters: Sequence[Converter],
    per_converter: int,
    seed: int,
    *,
    include_undecided: bool = False,
    replace: bool = False,
) -> SampleReport:
    if per_converter < 1:
        raise IssuemineError("--per-converter must be at least 1")
    if not name.strip():
        raise IssuemineError("a sample needs a name (--name)")
    drawn: dict[str, list[int]] = {}
    eligible: dict[str, int] = {}
    for converter in converters:
        ids = eligible_issues(db, converter, include_undecided)
        eligible[converter.name] = len(ids)
        drawn[converter.name] = draw(ids, per_converter, seed, converter.name)
    if not any(drawn.values()):
        raise IssuemineError(
            "no eligible issues to sample: run `issuemine filter` first"
            + ("" if include_undecided else " (or pass --include-undecided for issues not yet fetched)")
        )
    params = {
        "converters": [c.name for c in converters],
        "include_undecided": include_undecided,
    }
    with db.session() as session:
        existing = session.scalar(select(Sample).where(Sample.name == name))
        if existing is not None:
            old = {
                (m.converter, m.issue_id)
                for m in session.scalars(select(SampleMember).where(SampleMember.sample_id == existing.id))
            }
            new = {(c, i) for c, ids in drawn.items() for i in ids}
            if old == new and existing.seed == seed:
                return SampleReport(name, seed, per_converter, _sizes(drawn), eligible, created=False)
            if not replace:
                raise IssuemineError(
                    f"sample {name!r} already exists with other members (seed {existing.seed}); "
                    "choose another --name or pass --replace"
                )
            session.execute(delete(SampleMember).where(SampleMember.sample_id == existing.id))
            session.delete(existing)
            session.flush()
        sample = Sample(name=name, seed=seed, per_converter=per_converter, params=params, created_at=utcnow())
        session.add(sample)
        session.flush()
        session.add_all(
            SampleMember(sample_id=sample.id, issue_id=issue_id, converter=conv, position=pos)
            for conv, ids in drawn.items()
            for pos, issue_id in enumerate(ids)
        )
    return SampleReport(name, seed, per_converter, _sizes(drawn), eligible, created=True)


def _sizes(drawn: dict[str, list[int]]) -> dict[str, int]:
    return {c: len(ids) for c, ids in drawn.items()}


def sample_members(db: Database, name: str) -> list[tuple[str, str, int]]:
    """(converter, repo, number) of a sample's members, in draw order."""
    with db.session() as session:
        sample = session.scalar(select(Sample).where(Sample.name == name))
        if sample is None:
            raise IssuemineError(f"no sample named {name!r}; see `issuemine status`")
        rows = session.execute(
            select(SampleMember.converter, Repository.full_name, Issue.number)
            .join(Issue, Issue.id == SampleMember.issue_id)
            .join(Repository, Repository.id == Issue.repository_id)
            .where(SampleMember.sample_id == sample.id)
            .order_by(SampleMember.converter, SampleMember.position)
        ).all()
    return [(c, r, n) for c, r, n in rows]
