"""A fetch run: bring one converter's issues, comments and timelines up to date.

Listing. Issues are listed with ``state=all`` (so a reopened or newly closed issue is seen; the
relevance filter applies the catalog's state), the catalog's include labels, ``sort=updated``
ascending, 100 per page. The ``since`` cursor is used as a keyset: after each page the next request
asks ``since=<updated_at of the page's last issue>``, so an issue updated during the crawl moves to
the end of the listing instead of shifting an unseen issue onto a page already read. Only when a
whole page shares one ``updated_at`` does the run follow ``page=2, 3...`` of the same ``since``.

Incremental. The cursor is stored after every page; the next run starts from it. The first
page's ETag is stored with the cursor, so a run over an unchanged tracker costs one conditional
request, answered 304, which GitHub does not count against the rate limit.

Per issue. An issue whose ``updated_at`` matches the stored one and whose timeline is complete is
skipped without a request. Otherwise its whole timeline is read (``commented`` events carry the
comments, so there is no separate comments request) and the issue, its labels, timeline and comments
are stored in one transaction: a crash leaves each issue either complete or untouched.
Pull requests and issues the catalog can never count as relevant (wrong state, an exclude label)
are stored from the listing alone; their timelines are not fetched.

Timeline refresh. A cross-reference from another issue or PR does not change the referenced
issue's ``updated_at``, so the listing cannot see it. ``refresh_timelines`` controls what is
re-checked after the listing, always with a conditional request on the stored last timeline page:
``unavailable`` (default) re-checks issues that do not yet pass the availability filter, the only
ones whose filter decision a new cross-reference can change; ``all`` re-checks every timeline;
``none`` skips the step.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from issuemine import interrupt
from issuemine.corpus.filters import availability, fix_events_by_issue
from issuemine.corpus.store import (
    mark_timeline,
    mark_timelines,
    replace_timelines,
    save_labels,
    save_timeline,
    upsert_issue_row,
)
from issuemine.db import Database
from issuemine.db.models import ConverterRow, FetchRun, Issue, IssueLabel, Label, Listing
from issuemine.db.rows import ensure_repository, parse_time, upsert, utcnow
from issuemine.domain.converters import Converter
from issuemine.errors import GitHubError
from issuemine.github.api import Timeline, fetch_timeline, list_issues_page
from issuemine.github.client import PER_PAGE, GitHubClient, RequestStats

REFRESH_POLICIES = ("unavailable", "all", "none")
# Stored issues are committed in groups of at most this many, or this often.
BATCH_ISSUES = 20
BATCH_SECONDS = 0.25


@dataclass
class FetchProgress:
    converter: str
    phase: str  # "listing" | "refresh"
    listed: int
    saved: int
    timelines: int
    total: int | None
    stats: RequestStats


ProgressCallback = Callable[[FetchProgress], None]


@dataclass
class FetchReport:
    converter: str
    repo: str
    status: str = "running"
    listed: int = 0
    saved: int = 0
    unchanged: int = 0
    timelines: int = 0
    refreshed: int = 0
    refresh_changed: int = 0
    requests: int = 0
    counted: int = 0
    not_modified: int = 0
    faults: int = 0
    cursor: datetime | None = None
    message: str | None = None
    totals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["cursor"] = self.cursor.isoformat() if self.cursor else None
        return data


def needs_timeline(converter: Converter, issue: dict[str, Any]) -> bool:
    """Whether an issue could ever be relevant, so its timeline is worth requests."""
    if "pull_request" in issue:
        return False
    if converter.state != "all" and issue.get("state") != converter.state:
        return False
    names = {lab.get("name") for lab in issue.get("labels") or [] if isinstance(lab, dict)}
    return not names.intersection(converter.exclude_labels)


def listing_query(converter: Converter) -> str:
    return "state=all&labels=" + ",".join(converter.include_labels)


class Fetcher:
    """Runs fetches for converters against one database with one client."""

    def __init__(
        self,
        db: Database,
        client: GitHubClient,
        refresh_timelines: str = "unavailable",
        progress: ProgressCallback | None = None,
    ) -> None:
        if refresh_timelines not in REFRESH_POLICIES:
            raise ValueError(f"refresh_timelines must be one of {REFRESH_POLICIES}")
        self.db = db
        self.client = client
        self.refresh_timelines = refresh_timelines
        self.progress = progress
        self._run_start = client.stats.snapshot()

    # -- one converter ----------------------------------------------------------------------

    def fetch(self, converter: Converter) -> FetchReport:
        report = FetchReport(converter.name, converter.repo)
        start_stats = self._run_start = self.client.stats.snapshot()
        repo_id, listing_id, run_id, cursor = self._begin(converter)
        report.cursor = cursor
        try:
            touched = self._list(converter, repo_id, listing_id, run_id, report, start_stats)
            if self.refresh_timelines != "none":
                self._refresh(converter, repo_id, touched, report, start_stats)
            report.status = "completed"
        except KeyboardInterrupt:
            report.status, report.message = "interrupted", "interrupted by the user; rerun to resume"
            raise
        except GitHubError as exc:
            report.status = "rate-limited" if type(exc).__name__ == "RateLimitStop" else "failed"
            report.message = str(exc)
            raise
        finally:
            self._finish(run_id, report, start_stats)
        return report

    def _begin(self, converter: Converter) -> tuple[int, int, int, datetime | None]:
        # Through db.write: an overlapping run may create the same repository/listing rows.
        return self.db.write(lambda session: self._begin_in(session, converter))

    def _begin_in(self, session: Session, converter: Converter) -> tuple[int, int, int, datetime | None]:
        repo_id = ensure_repository(session, converter.repo)
        upsert(
            session,
            ConverterRow,
            [
                {
                    "name": converter.name,
                    "repo": converter.repo,
                    "include_labels": list(converter.include_labels),
                    "exclude_labels": list(converter.exclude_labels),
                    "state": converter.state,
                    "own_repos": list(converter.own_repos),
                    "description": converter.description,
                }
            ],
            ["name"],
        )
        query = listing_query(converter)
        listing = session.scalar(select(Listing).where(Listing.repository_id == repo_id, Listing.query == query))
        if listing is None:
            listing = Listing(repository_id=repo_id, query=query)
            session.add(listing)
            session.flush()
        # A run still marked running was killed (kill -9, power loss): say so.
        session.execute(
            update(FetchRun)
            .where(FetchRun.repository_id == repo_id, FetchRun.status == "running")
            .values(status="interrupted", message="found unfinished by a later run")
        )
        run = FetchRun(
            repository_id=repo_id,
            converter=converter.name,
            started_at=utcnow(),
            status="running",
            cursor_before=listing.cursor,
        )
        session.add(run)
        session.flush()
        return repo_id, listing.id, run.id, listing.cursor

    def _finish(self, run_id: int, report: FetchReport, start: RequestStats) -> None:
        self._count(report, start)
        self.db.write(lambda session: self._record_finish(session, run_id, report))

    def _record_finish(self, session: Session, run_id: int, report: FetchReport) -> None:
        values = _run_counters(report) | {
            "finished_at": utcnow(),
            "status": report.status,
            "message": report.message,
        }
        session.execute(update(FetchRun).where(FetchRun.id == run_id).values(**values))

    def _count(self, report: FetchReport, start: RequestStats) -> None:
        now = self.client.stats
        report.requests = now.requests - start.requests
        report.counted = now.counted - start.counted
        report.not_modified = now.not_modified - start.not_modified
        report.faults = now.faults - start.faults

    def _tick(self, converter: Converter, phase: str, report: FetchReport, total: int | None) -> None:
        if self.progress:
            now = self.client.stats.snapshot()
            start = self._run_start
            # Requests of this run only; the rate-limit fields are GitHub's, as they are.
            now.requests -= start.requests
            now.counted -= start.counted
            now.not_modified -= start.not_modified
            now.faults -= start.faults
            self.progress(
                FetchProgress(converter.name, phase, report.listed, report.saved, report.timelines, total, now)
            )

    # -- listing ----------------------------------------------------------------------------

    def _list(
        self,
        converter: Converter,
        repo_id: int,
        listing_id: int,
        run_id: int,
        report: FetchReport,
        start: RequestStats,
    ) -> set[int]:
        with self.db.session() as session:
            listing = session.get_one(Listing, listing_id)
            stored_cursor, stored_etag = listing.cursor, listing.etag
        since, page = stored_cursor, 1
        total: int | None = None
        touched: set[int] = set()
        previous_ids: list[Any] = []
        while True:
            etag = stored_etag if (page == 1 and since == stored_cursor) else None
            response = list_issues_page(
                self.client, converter.repo, "all", converter.include_labels, since, page, etag=etag
            )
            if response.not_modified:
                self._save_cursor(listing_id, run_id, since, response.etag, report, start)
                self._tick(converter, "listing", report, report.listed)
                return touched
            items: list[dict[str, Any]] = response.data
            ids = [item.get("id") for item in items if isinstance(item, dict)]
            if ids and ids == previous_ids:
                # A server that ignores `page` and `since` returns the same page with a `next` link forever.
                raise GitHubError(f"{converter.repo}: the server repeats the same page of issues; stopping")
            previous_ids = ids
            if total is None:
                total = _estimate_total(response.links, len(items), report.listed)
            self._store_page(converter, repo_id, items, report, touched, total)
            last = response.links.get("next") is None or len(items) < PER_PAGE
            if last:
                self._save_cursor(listing_id, run_id, since, response.etag if page == 1 else None, report, start)
                self._tick(converter, "listing", report, report.listed)  # the estimate becomes exact
                return touched
            newest = parse_time(items[-1]["updated_at"])
            if since is not None and newest == since:
                page += 1  # a whole page at one instant: the keyset cannot advance
            else:
                since, page = newest, 1
            self._save_cursor(listing_id, run_id, since, None, report, start)
            interrupt.check()

    def _save_cursor(
        self,
        listing_id: int,
        run_id: int,
        cursor: datetime | None,
        etag: str | None,
        report: FetchReport,
        start: RequestStats,
    ) -> None:
        report.cursor = cursor
        self._count(report, start)
        with self.db.session() as session:
            session.execute(
                update(Listing)
                .where(Listing.id == listing_id)
                .values(cursor=cursor, etag=etag, completed_at=utcnow() if etag else None)
            )
            session.execute(update(FetchRun).where(FetchRun.id == run_id).values(**_run_counters(report)))

    def _store_page(
        self,
        converter: Converter,
        repo_id: int,
        items: list[dict[str, Any]],
        report: FetchReport,
        touched: set[int],
        total: int | None,
    ) -> None:
        with self.db.session() as session:
            known = {
                row.number: row
                for row in session.execute(
                    select(
                        Issue.number,
                        Issue.updated_at,
                        Issue.source,
                        Issue.timeline_complete,
                        Issue.timeline_issue_updated_at,
                    ).where(Issue.repository_id == repo_id, Issue.number.in_([i["number"] for i in items]))
                )
            }
        todo: list[tuple[dict[str, Any], bool]] = []
        for item in items:
            wants_timeline = needs_timeline(converter, item)
            updated = parse_time(item.get("updated_at"))
            row = known.get(item["number"])
            unchanged = (
                row is not None
                and row.source == "github"
                and row.updated_at == updated
                and (not wants_timeline or (row.timeline_complete and row.timeline_issue_updated_at == updated))
            )
            if unchanged:
                report.listed += 1
                report.unchanged += 1
                self._tick(converter, "listing", report, total)
            else:
                todo.append((item, wants_timeline))
        # One thread fetches the next timelines while this one stores: still one request in
        # flight at a time (GitHub asks for serial requests), but network and database overlap.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="issuemine-fetch") as pool:
            pending = deque(
                (item, pool.submit(fetch_timeline, self.client, converter.repo, item["number"]) if wanted else None)
                for item, wanted in todo
            )
            try:
                while pending:
                    self._store_batch(converter, repo_id, pending, report, touched, total)
            finally:
                for _, future in pending:
                    if future is not None:
                        future.cancel()

    def _store_batch(
        self,
        converter: Converter,
        repo_id: int,
        pending: deque[tuple[dict[str, Any], Future[Timeline] | None]],
        report: FetchReport,
        touched: set[int],
        total: int | None,
    ) -> None:
        """Store up to BATCH_ISSUES fetched issues in one transaction (a commit per issue costs more
        than its inserts), retried if a concurrent writer collides. Each issue is complete in
        itself; a fetch error first stores the issues fetched before it, then propagates."""
        interrupt.check()  # a requested stop happens here, between transactions
        failure: BaseException | None = None
        batch: list[tuple[dict[str, Any], Timeline | None]] = []
        deadline = time.monotonic() + BATCH_SECONDS
        while pending and len(batch) < BATCH_ISSUES and time.monotonic() <= deadline:
            item, future = pending[0]
            try:
                timeline = future.result() if future is not None else None
            except BaseException as exc:  # GitHubError, KeyboardInterrupt: keep what is done
                failure = exc
                break
            pending.popleft()
            batch.append((item, timeline))
        if batch:
            ids = self.db.write(lambda session: store_batch(session, repo_id, batch))
            touched.update(ids)
            for _, timeline in batch:
                report.listed += 1
                report.saved += 1
                report.timelines += timeline is not None
                self._tick(converter, "listing", report, total)
        if failure is not None:
            raise failure

    # -- timeline refresh -------------------------------------------------------------------

    def _refresh(
        self, converter: Converter, repo_id: int, touched: set[int], report: FetchReport, start: RequestStats
    ) -> None:
        candidates = [r for r in self._refresh_candidates(converter, repo_id) if r.id not in touched]
        if self.refresh_timelines == "unavailable":
            events = fix_events_by_issue(self.db, None, repo_id)
            candidates = [
                r for r in candidates if not availability(converter, events.get(r.id, []), timeline_complete=True).value
            ]
        for row in candidates:
            interrupt.check()
            report.refresh_changed += self._refresh_one(converter, row)
            report.refreshed += 1
            self._tick(converter, "refresh", report, len(candidates))
        self._count(report, start)

    def _refresh_candidates(self, converter: Converter, repo_id: int) -> list[Any]:
        """Stored, complete timelines of issues that can be relevant (small columns only)."""
        query = select(
            Issue.id,
            Issue.number,
            Issue.updated_at,
            Issue.timeline_pages,
            Issue.timeline_last_page_count,
            Issue.timeline_etag,
        ).where(
            Issue.repository_id == repo_id,
            Issue.timeline_complete.is_(True),
            Issue.is_pull_request.is_(False),
        )
        if converter.state != "all":
            query = query.where(Issue.state == converter.state)
        if converter.exclude_labels:
            excluded = (
                select(IssueLabel.issue_id)
                .join(Label, Label.id == IssueLabel.label_id)
                .where(Label.name.in_(converter.exclude_labels))
            )
            query = query.where(Issue.id.not_in(excluded))
        with self.db.session() as session:
            return list(session.execute(query.order_by(Issue.id)))

    def _refresh_one(self, converter: Converter, row: Any) -> bool:
        """Re-check one stored timeline's tail; True when it had changed."""
        pages = row.timeline_pages or 1
        if (row.timeline_last_page_count or 0) >= PER_PAGE:
            # The last page was full: a new event would open the next page, which we ask for plainly.
            first_page, etag = pages + 1, None
        else:
            first_page, etag = pages, row.timeline_etag
        timeline = fetch_timeline(self.client, converter.repo, row.number, first_page=first_page, etag=etag)
        if timeline.not_modified:
            return False
        with self.db.session() as session:
            save_timeline(session, row.id, timeline.events, first_position=(first_page - 1) * PER_PAGE, replace=False)
            mark_timeline(
                session,
                row.id,
                issue_updated_at=row.updated_at,
                pages=timeline.pages,
                last_page_count=timeline.last_page_count,
                etag=timeline.last_page_etag,
            )
        return True


def _run_counters(report: FetchReport) -> dict[str, Any]:
    """A fetch run's progress columns, as written after each page and at the end."""
    return {
        "cursor_after": report.cursor,
        "issues_listed": report.listed,
        "issues_saved": report.saved,
        "timelines_fetched": report.timelines,
        "requests": report.requests,
        "requests_counted": report.counted,
        "not_modified": report.not_modified,
        "errors": report.faults,
    }


def store_batch(session: Session, repo_id: int, batch: list[tuple[dict[str, Any], Timeline | None]]) -> list[int]:
    """Issues with their labels, complete timelines and comments (the caller owns the transaction).
    One upsert per issue (it returns the row id); everything else a few statements per batch."""
    ids = [upsert_issue_row(session, repo_id, item) for item, _ in batch]
    save_labels(session, repo_id, {i: item.get("labels") or [] for i, (item, _) in zip(ids, batch, strict=True)})
    fetched = [(i, item, t) for i, (item, t) in zip(ids, batch, strict=True) if t is not None]
    replace_timelines(session, {i: t.events for i, _, t in fetched})
    mark_timelines(
        session,
        [
            {
                "issue_id": i,
                "issue_updated_at": parse_time(item.get("updated_at")),
                "pages": t.pages,
                "last_page_count": t.last_page_count,
                "etag": t.last_page_etag,
            }
            for i, item, t in fetched
        ],
    )
    return ids


def _estimate_total(links: dict[str, str], first_page_items: int, already: int) -> int | None:
    """Issues still to list, from the first page's ``Link: rel=last`` (GitHub gives no total)."""
    last = links.get("last")
    if not last:
        return already + first_page_items
    for part in last.split("?", 1)[-1].split("&"):
        key, _, value = part.partition("=")
        if key == "page" and value.isdigit():
            return already + int(value) * PER_PAGE
    return None
