"""Human labels: raters, import and export, and the final label of each issue.

A rating is one rater's code for one issue and one dimension (``stage``, ``symptom``, ``cause``,
``subcause``), recorded with the taxonomy version it was made under. The *final* label of an
issue's dimension is the adjudicated code, else the code all its raters agree on, else the single
rater's code; raters who disagree without an adjudication leave it ``None`` (disputed).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from issuemine.db import Database
from issuemine.db.models import (
    Assignment,
    Issue,
    Rater,
    RaterIssue,
    Rating,
    Repository,
    Sample,
    SampleMember,
)
from issuemine.db.rows import ensure_repository, parse_time, sample_id, save_stub, upsert, utcnow
from issuemine.domain.converters import Converter
from issuemine.domain.taxonomy import Taxonomy, read_label_file
from issuemine.errors import IssuemineError

# -- raters --------------------------------------------------------------------------------------


def ensure_rater(session: Session, name: str) -> int:
    name = name.strip()
    if not name:
        raise IssuemineError("a rater needs a name")
    found = session.scalar(select(Rater.id).where(Rater.name == name))
    if found is not None:
        return found
    upsert(session, Rater, [{"name": name, "created_at": utcnow()}], ["name"])
    return session.scalars(select(Rater.id).where(Rater.name == name)).one()


def save_rating(
    session: Session,
    issue_id: int,
    rater_id: int,
    dimension: str,
    code: str | None,
    version: str,
    suggested: str | None = None,
    suggestion_shown: bool | None = None,
) -> None:
    """Set (or, with ``code=None``, clear) one rating, with the suggestion the rater had (its code,
    and whether it was visible before the answer); committed by the caller's transaction."""
    if code is None:
        session.execute(
            Rating.__table__.delete().where(  # type: ignore[attr-defined]
                (Rating.issue_id == issue_id) & (Rating.rater_id == rater_id) & (Rating.dimension == dimension)
            )
        )
        return
    now = utcnow()
    upsert(
        session,
        Rating,
        [
            {
                "issue_id": issue_id,
                "rater_id": rater_id,
                "dimension": dimension,
                "code": code,
                "taxonomy_version": version,
                "created_at": now,
                "updated_at": now,
                "suggested": suggested,
                "suggestion_shown": suggestion_shown,
            }
        ],
        ["issue_id", "rater_id", "dimension"],
    )


# -- import ----------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    path: str
    rows: int = 0
    ratings: int = 0
    raters: set[str] = field(default_factory=set)
    stubs: int = 0
    sample: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["raters"] = sorted(self.raters)
        return data


def import_labels(
    db: Database,
    taxonomy: Taxonomy,
    path: Path,
    *,
    rater: str | None = None,
    sample: str | None = None,
    catalog: dict[str, Converter] | None = None,
) -> ImportReport:
    """Import ratings from a CSV/JSON/JSONL file in one transaction: all rows or none."""
    report = ImportReport(str(path), sample=sample)
    by_repo = {c.repo.lower(): c.name for c in (catalog or {}).values()}
    members: dict[int, str] = {}
    assigned: set[tuple[int, int]] = set()
    seen: dict[tuple[str, int, str], str] = {}
    with db.session() as session:
        for found in read_label_file(path, taxonomy):
            where, row, repo, number, codes = found.where, found.row, found.repo, found.number, found.codes
            who = str(row.get("rater") or rater or "").strip()
            if not who:
                raise IssuemineError(f"{where}: no rater (the file has no 'rater' column: pass --rater NAME)")
            key = (repo.lower(), number, who)
            if key in seen:  # which of the two would count is a guess: refuse the file instead
                line = seen[key].rsplit(", ", 1)[-1]
                raise IssuemineError(f"{where}: repeats {line} ({repo}#{number} by {who}): one row per issue and rater")
            seen[key] = where
            repo_id = ensure_repository(session, repo)
            known = session.scalar(select(Issue.id).where(Issue.repository_id == repo_id, Issue.number == number))
            if known is None:
                report.stubs += 1
            try:
                created = parse_time(row.get("created") or None)
            except ValueError:
                raise IssuemineError(f"{where}: bad date {row.get('created')!r} in column 'created'") from None
            issue_id = known or save_stub(
                session,
                repo_id,
                number,
                title=(str(row.get("title") or "").strip() or None),
                html_url=row.get("url") or f"https://github.com/{repo}/issues/{number}",
                created_at=created,
            )
            rater_id = ensure_rater(session, who)
            for dimension, code in codes.items():
                save_rating(session, issue_id, rater_id, dimension, code, taxonomy.version)
                report.ratings += 1
            note = str(row.get("note") or "").strip() or None  # `labels export` writes one; keep it on the way back
            _mark_done(session, issue_id, rater_id, taxonomy.version, "import", note)
            members.setdefault(issue_id, str(row.get("converter") or by_repo.get(repo.lower()) or repo))
            assigned.add((issue_id, rater_id))
            report.rows += 1
            report.raters.add(who)
        if sample:
            _sample_from_import(session, sample, members, assigned, str(path))
    return report


def _mark_done(
    session: Session, issue_id: int, rater_id: int, version: str, source: str, note: str | None = None
) -> None:
    now = utcnow()
    existing = session.get(RaterIssue, (issue_id, rater_id))
    if existing is None:
        session.add(
            RaterIssue(
                issue_id=issue_id,
                rater_id=rater_id,
                status="done",
                seconds=0.0,
                taxonomy_version=version,
                source=source,
                started_at=now,
                updated_at=now,
                note=note,
            )
        )
    else:
        existing.status, existing.updated_at, existing.taxonomy_version = "done", now, version
        existing.note = note or existing.note
    session.flush()


def _sample_from_import(
    session: Session, name: str, members: dict[int, str], assigned: set[tuple[int, int]], source: str
) -> None:
    """A named sample of the imported issues, assigned to the raters who labeled them, so that
    `agree --sample` reads exactly these raters' labels."""
    sample = session.scalar(select(Sample).where(Sample.name == name))
    if sample is None:
        sample = Sample(
            name=name, seed=0, per_converter=0, params={"source": "labels import", "file": source}, created_at=utcnow()
        )
        session.add(sample)
        session.flush()
    present = set(session.scalars(select(SampleMember.issue_id).where(SampleMember.sample_id == sample.id)))
    position = len(present)
    for issue_id, converter in members.items():
        if issue_id not in present:
            session.add(SampleMember(sample_id=sample.id, issue_id=issue_id, converter=converter, position=position))
            position += 1
    sample.per_converter = max(sample.per_converter, position)
    order = {issue_id: i for i, issue_id in enumerate(members)}
    upsert(
        session,
        Assignment,
        [{"sample_id": sample.id, "issue_id": i, "rater_id": r, "position": order[i]} for i, r in sorted(assigned)],
        ["sample_id", "issue_id", "rater_id"],
    )


# -- export ----------------------------------------------------------------------------------------


def export_rows(db: Database, taxonomy: Taxonomy, sample: str | None = None) -> list[dict[str, Any]]:
    """One record per (issue, rater): codes per dimension, status, note, time, version, timestamps."""
    query = (
        select(RaterIssue, Rater.name, Repository.full_name, Issue.number, Issue.html_url)
        .join(Rater, Rater.id == RaterIssue.rater_id)
        .join(Issue, Issue.id == RaterIssue.issue_id)
        .join(Repository, Repository.id == Issue.repository_id)
        .order_by(Repository.full_name, Issue.number, Rater.name)
    )
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.join(
                SampleMember, (SampleMember.issue_id == RaterIssue.issue_id) & (SampleMember.sample_id == sid)
            )
        codes: dict[tuple[int, int], dict[str, Rating]] = defaultdict(dict)
        for rating in session.scalars(select(Rating)):
            codes[(rating.issue_id, rating.rater_id)][rating.dimension] = rating
        records = []
        for work, rater, repo, number, url in session.execute(query):
            mine = codes.get((work.issue_id, work.rater_id), {})
            record: dict[str, Any] = {"repo": repo, "number": number, "url": url, "rater": rater}
            for dim in taxonomy.label_dimensions():
                record[dim] = mine[dim].code if dim in mine else None
            stamps = [r.updated_at for r in mine.values()]
            record |= {
                "status": work.status,
                "note": work.note,
                "seconds": round(work.seconds, 1),
                "taxonomy_version": work.taxonomy_version,
                "source": work.source,
                "started_at": work.started_at.isoformat(timespec="seconds"),
                "labeled_at": max(stamps).isoformat(timespec="seconds") if stamps else None,
            }
            records.append(record)
    return records


def final_rows(db: Database, sample: str | None = None) -> list[dict[str, Any]]:
    """The ``final_labels`` view's rows (of one sample), ordered by sample, repository and number."""
    query = "SELECT * FROM final_labels" + (" WHERE sample = :sample" if sample else "")
    with db.session() as session:
        if sample:
            sample_id(session, sample)  # a clear error for an unknown sample
        rows = session.execute(text(query + " ORDER BY sample, repo, number"), {"sample": sample}).mappings()
        return [dict(r) for r in rows]


def write_export(records: Sequence[dict[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump(list(records), out, indent=2)
        out.write("\n")
    elif fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record) + "\n")
    elif fmt == "csv":
        fields = list(records[0]) if records else ["repo", "number", "rater"]
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    else:
        raise IssuemineError(f"unknown format {fmt!r}: use csv, json or jsonl")
