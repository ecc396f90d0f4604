"""Share a corpus without a token: export to and load from files, through the fetcher's save path.

JSON Lines export, one issue per line, in GitHub's REST shapes::

    {"repository": "owner/name", "issue": {...issue payload...}, "timeline": [...events...]}

``load`` reads that format (or a JSON array of such records, or bare issue payloads), and also a
CSV of issue *stubs* (``repo`` + ``number`` or ``url``; optional ``title``, ``created``) such as
the study's label sheet, for issues known only by their address. Each file is loaded in one
transaction: a bad line rejects the whole file, naming the line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select

from issuemine.corpus.store import mark_timeline, save_issue, save_timeline
from issuemine.db import Database
from issuemine.db.models import Issue, Repository, TimelineEvent
from issuemine.db.rows import ensure_repository, parse_time, save_stub
from issuemine.domain.addresses import checked_repo, issue_address, repo_of_issue
from issuemine.domain.payloads import check_issue, check_timeline
from issuemine.errors import IssuemineError
from issuemine.github.client import PER_PAGE
from issuemine.record_files import csv_header, csv_rows, read_records, read_text


@dataclass
class LoadReport:
    path: str
    issues: int = 0
    timelines: int = 0
    stubs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_file(db: Database, path: Path) -> LoadReport:
    if not path.exists():
        raise IssuemineError(f"file not found: {path}")
    if path.suffix.lower() == ".csv":
        return _load_stubs(db, path)
    report = LoadReport(str(path))
    with db.session() as session:
        for where, record in read_records(path):
            if not isinstance(record, dict):
                raise IssuemineError(f"{path}, record {where}: expected a JSON object")
            issue = record.get("issue", record)
            if not isinstance(issue, dict) or "number" not in issue:
                raise IssuemineError(f"{path}, record {where}: no issue payload with a 'number'")
            repo = record.get("repository") or repo_of_issue(issue)
            if not repo:
                raise IssuemineError(f"{path}, record {where}: cannot tell the repository of issue {issue['number']}")
            timeline = record.get("timeline")
            try:  # everything checked before anything is written: a bad record leaves the database as it was
                repo = checked_repo(repo)
                check_issue(issue)
                if timeline is not None:
                    check_timeline(timeline)
            except ValueError as exc:
                raise IssuemineError(f"{path}, record {where}: {exc}") from None
            repo_id = ensure_repository(session, repo)
            issue_id = save_issue(session, repo_id, issue, source="load")
            report.issues += 1
            if isinstance(timeline, list):
                save_timeline(session, issue_id, timeline, replace=True)
                pages = max((len(timeline) + PER_PAGE - 1) // PER_PAGE, 1)
                mark_timeline(
                    session,
                    issue_id,
                    issue_updated_at=parse_time(issue.get("updated_at")),
                    pages=pages,
                    last_page_count=len(timeline) - (pages - 1) * PER_PAGE,
                    etag=None,
                )
                report.timelines += 1
    return report


def _load_stubs(db: Database, path: Path) -> LoadReport:
    report = LoadReport(str(path))
    text = read_text(path)
    fields = set(csv_header(text))
    if not ({"repo", "number"} <= fields or "url" in fields):
        raise IssuemineError(f"{path}: a stub CSV needs 'repo' and 'number' columns, or a 'url' column")
    with db.session() as session:
        for line, row in csv_rows(text, path):
            try:
                repo, number = issue_address(row)
                created = parse_time(row.get("created") or None)
            except ValueError as exc:
                raise IssuemineError(f"{path}, line {line}: {exc}") from None
            repo_id = ensure_repository(session, repo)
            save_stub(
                session,
                repo_id,
                number,
                title=(row.get("title") or "").strip() or None,
                html_url=row.get("url") or f"https://github.com/{repo}/issues/{number}",
                created_at=created,
            )
            report.stubs += 1
    return report


def export_file(db: Database, path: Path | None, out: TextIO | None = None) -> int:
    """Write every fetched or loaded issue (stubs have no payload) as JSON Lines; return the count."""
    count = 0
    target = open(path, "w", encoding="utf-8") if path else out  # noqa: SIM115 - closed below
    assert target is not None
    try:
        with db.session() as session:
            issues = session.execute(
                select(Issue.id, Repository.full_name, Issue.raw_json, Issue.timeline_complete)
                .join(Repository, Repository.id == Issue.repository_id)
                .where(Issue.raw_json.is_not(None))
                .order_by(Repository.full_name, Issue.number)
                .execution_options(yield_per=500)
            )
            for issue_id, repo, raw, complete in issues:
                record: dict[str, Any] = {"repository": repo, "issue": raw}
                if complete:
                    record["timeline"] = list(
                        session.scalars(
                            select(TimelineEvent.raw_json)
                            .where(TimelineEvent.issue_id == issue_id)
                            .order_by(TimelineEvent.position)
                        )
                    )
                target.write(json.dumps(record, separators=(",", ":")) + "\n")
                count += 1
    finally:
        if path:
            target.close()
    return count
