"""Assignment plans: which rater labels which issue of a sample.

``plan_sample`` gives the first ``overlap`` issues of each converter (in sample order) to every
rater, for measuring agreement, and deals the rest out in turn, as the study's pilot did (30 issues
per converter double-labeled). A sample without a plan is open: each rater who starts labeling it
is given all of it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from issuemine.db import Database
from issuemine.db.models import Assignment, Rater, Sample, SampleMember
from issuemine.db.rows import sample_id, upsert
from issuemine.errors import IssuemineError
from issuemine.labeling.ratings import ensure_rater


@dataclass
class PlanReport:
    sample: str
    raters: dict[str, int]
    shared: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_overlap(text: str) -> int | float:
    """``30`` is a count; ``0.3``, ``1.0`` and ``30%`` are shares of each converter's issues (a decimal
    point or a percent sign says which, so 1.0 means every issue and 1 means one)."""
    value = text.strip()
    try:
        if value.endswith("%"):
            share: int | float = float(value[:-1]) / 100
        elif "." in value:
            share = float(value)
        else:
            return int(value)
    except ValueError:
        raise IssuemineError(f"--overlap {text!r}: give a count (30) or a share (0.3, 1.0, 30%)") from None
    if not 0 <= share <= 1:
        raise IssuemineError(f"--overlap {text!r}: a share must be between 0 and 1 (0% and 100%)")
    return share


def plan_sample(
    db: Database, sample: str, raters: list[str], overlap: int | float, *, replace: bool = False
) -> PlanReport:
    names = [r.strip() for r in raters if r.strip()]
    if len(set(names)) != len(names) or not names:
        raise IssuemineError("--raters needs one or more distinct names")
    if overlap < 0:
        raise IssuemineError("--overlap must be a count (30) or a fraction (0.3), not negative")
    with db.session() as session:
        sid = sample_id(session, sample)
        row = session.get_one(Sample, sid)
        if session.scalar(select(Assignment.sample_id).where(Assignment.sample_id == sid).limit(1)) is not None:
            if not replace:
                raise IssuemineError(f"sample {sample!r} already has an assignment plan; pass --replace to redo it")
            session.execute(delete(Assignment).where(Assignment.sample_id == sid))
        ids = {name: ensure_rater(session, name) for name in names}
        by_converter: dict[str, list[int]] = defaultdict(list)
        for member in session.scalars(
            select(SampleMember)
            .where(SampleMember.sample_id == sid)
            .order_by(SampleMember.converter, SampleMember.position)
        ):
            by_converter[member.converter].append(member.issue_id)
        rows, counts, shared = [], dict.fromkeys(names, 0), {}
        turn = 0  # the deal goes on across converters, so no rater gets every converter's odd issue
        for converter, issues in by_converter.items():
            # An int is a count; a float a share (parse_overlap keeps 1.0 apart from 1).
            k = min(len(issues), overlap if isinstance(overlap, int) else round(overlap * len(issues)))
            shared[converter] = k
            for pos, issue_id in enumerate(issues):
                if pos < k:
                    owners = names
                else:
                    owners = [names[turn % len(names)]]
                    turn += 1
                for name in owners:
                    rows.append({"sample_id": sid, "issue_id": issue_id, "rater_id": ids[name], "position": pos})
                    counts[name] += 1
        upsert(session, Assignment, rows, ["sample_id", "issue_id", "rater_id"])
        row.params = {**(row.params or {}), "plan": {"raters": names, "overlap": overlap}}
    return PlanReport(sample, counts, shared)


def rater_queue(session: Session, sample: str, rater: str) -> tuple[int, list[int]]:
    """(rater id, the rater's issues in order), assigning an open sample to the rater."""
    sid = sample_id(session, sample)
    rater_id = ensure_rater(session, rater)
    mine = list(
        session.scalars(
            select(Assignment.issue_id)
            .where(Assignment.sample_id == sid, Assignment.rater_id == rater_id)
            .order_by(Assignment.position, Assignment.issue_id)
        )
    )
    if mine:
        return rater_id, mine
    planned = (session.get_one(Sample, sid).params or {}).get("plan")
    if planned:
        others = session.scalars(
            select(Rater.name)
            .join(Assignment, Assignment.rater_id == Rater.id)
            .where(Assignment.sample_id == sid)
            .distinct()
        ).all()
        raise IssuemineError(
            f"rater {rater!r} has no issues in sample {sample!r} (assigned: {', '.join(sorted(others))}); "
            "see `issuemine assign`"
        )
    members = list(
        session.scalars(
            select(SampleMember.issue_id)
            .where(SampleMember.sample_id == sid)
            .order_by(SampleMember.converter, SampleMember.position)
        )
    )
    if not members:
        raise IssuemineError(f"sample {sample!r} has no issues")
    upsert(
        session,
        Assignment,
        [{"sample_id": sid, "issue_id": i, "rater_id": rater_id, "position": p} for p, i in enumerate(members)],
        ["sample_id", "issue_id", "rater_id"],
    )
    return rater_id, members
