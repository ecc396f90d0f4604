"""Extract candidates for a set of issues and store them (one row per issue, replaced on rerun)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.models import Comment, Issue, ReproCandidate, SampleMember
from issuemine.db.rows import sample_id, upsert, utcnow
from issuemine.repro.extract import EXTRACTOR_VERSION, extract


@dataclass
class ExtractReport:
    issues: int = 0
    with_text: int = 0
    runnable: int = 0
    conversions: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    repairs: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "issues": self.issues,
            "with_text": self.with_text,
            "runnable": self.runnable,
            "conversions": dict(self.conversions),
            "reasons": dict(self.reasons),
            "repairs": dict(self.repairs),
        }


def _reason_kind(reason: str) -> str:
    """The first clause of a reason, without the file names (for counting)."""
    return reason.split(";")[0].split(":")[0].strip()


def extract_issues(db: Database, sample: str | None = None) -> ExtractReport:
    report = ExtractReport()
    query = select(Issue.id, Issue.body, Issue.source).where(Issue.is_pull_request.is_(False))
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.join(SampleMember, (SampleMember.issue_id == Issue.id) & (SampleMember.sample_id == sid))
        issues = session.execute(query.order_by(Issue.id)).all()
    for start in range(0, len(issues), 200):
        chunk = issues[start : start + 200]
        with db.session() as session:
            comments: dict[int, list[tuple[str, str | None]]] = {}
            for issue_id, comment_id, body in session.execute(
                select(Comment.issue_id, Comment.id, Comment.body)
                .where(Comment.issue_id.in_([i for i, _, _ in chunk]))
                .order_by(Comment.created_at, Comment.id)
            ):
                comments.setdefault(issue_id, []).append((f"comment:{comment_id}", body))
            rows = []
            for issue_id, body, source in chunk:
                report.issues += 1
                candidate_reason: str | None
                if source == "stub":
                    # Known only by address: nothing to extract until the issue is fetched.
                    candidate_reason, candidate = "not fetched: the issue text is unknown", None
                else:
                    report.with_text += 1
                    candidate = extract([("body", body), *comments.get(issue_id, [])])
                    candidate_reason = candidate.reason
                runnable = bool(candidate and candidate.runnable)
                report.runnable += runnable
                if candidate:
                    report.conversions.update(candidate.conversions)
                    report.repairs.update(r["kind"] for r in candidate.provenance.get("repairs", []))
                if candidate_reason:
                    report.reasons[_reason_kind(candidate_reason)] += 1
                rows.append(
                    {
                        "issue_id": issue_id,
                        "runnable": runnable,
                        "reason": candidate_reason,
                        "script": candidate.script if candidate else "",
                        "conversions": candidate.conversions if candidate else [],
                        "provenance": candidate.provenance if candidate else {},
                        "tracebacks": candidate.tracebacks if candidate else [],
                        "extractor_version": EXTRACTOR_VERSION,
                        "extracted_at": utcnow(),
                    }
                )
            upsert(session, ReproCandidate, rows, ["issue_id"])
    return report
