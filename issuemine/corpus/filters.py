"""The relevance and availability filters (the study's data selection and Figure 4).

Relevance: the catalog's state, include labels (all required) and exclude labels (any excludes);
pull requests are never relevant. Availability: an issue is kept when its timeline shows a fix,
by the first rule that matches, in the study's order:

1. ``closed-by-commit``: a ``closed`` event with a ``commit_id``;
2. ``referenced-by-commit``: a ``referenced`` event with a ``commit_id``;
3. ``cross-referenced-closed``: a ``cross-referenced`` event whose source is a closed issue or PR
   in one of the converter's own repositories;
4. ``connected``: a ``connected`` event (an issue linked to a PR in the UI).

A filter that cannot decide (an issue stub with no labels, an issue whose timeline is not stored)
records ``None`` with the reason, rather than guessing.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.models import FilterResult, Issue, IssueLabel, Label, Repository, TimelineEvent
from issuemine.db.rows import upsert, utcnow
from issuemine.domain.addresses import parse_issue_url
from issuemine.domain.converters import Converter
from issuemine.errors import IssuemineError

FIX_EVENTS = ("closed", "referenced", "cross-referenced", "connected")


@dataclass(frozen=True)
class Decision:
    value: bool | None
    rule: str


@dataclass(frozen=True)
class FixEvent:
    """The parts of a timeline event the availability filter reads."""

    event: str
    commit_id: str | None = None
    source_repo: str | None = None
    source_state: str | None = None


def relevance(
    converter: Converter, *, state: str | None, is_pull_request: bool, labels: Iterable[str], source: str
) -> Decision:
    if source == "stub":
        return Decision(None, "not fetched: labels and state unknown")
    if is_pull_request:
        return Decision(False, "pull request")
    if converter.state != "all" and state != converter.state:
        return Decision(False, f"state is {state}, wanted {converter.state}")
    names = set(labels)
    for label in converter.include_labels:
        if label not in names:
            return Decision(False, f"lacks label {label!r}")
    for label in converter.exclude_labels:
        if label in names:
            return Decision(False, f"excluded label {label!r}")
    return Decision(True, "state and labels match")


def availability(converter: Converter, events: Iterable[FixEvent], *, timeline_complete: bool) -> Decision:
    if not timeline_complete:
        return Decision(None, "timeline not fetched")
    own = converter.fixing_repos()
    found: set[str] = set()
    for ev in events:
        if ev.event == "closed" and ev.commit_id:
            found.add("closed-by-commit")
        elif ev.event == "referenced" and ev.commit_id:
            found.add("referenced-by-commit")
        elif ev.event == "cross-referenced" and ev.source_state == "closed" and (ev.source_repo or "").lower() in own:
            found.add("cross-referenced-closed")
        elif ev.event == "connected":
            found.add("connected")
    for rule in ("closed-by-commit", "referenced-by-commit", "cross-referenced-closed", "connected"):
        if rule in found:
            return Decision(True, rule)
    return Decision(False, "no fix in timeline")


def fix_events_by_issue(db: Database, issue_ids: Sequence[int] | None, repository_id: int) -> dict[int, list[FixEvent]]:
    """The fix-relevant timeline events of a repository's issues (or of ``issue_ids``)."""
    query = (
        select(
            TimelineEvent.issue_id,
            TimelineEvent.event,
            TimelineEvent.commit_id,
            TimelineEvent.source_repo,
            TimelineEvent.source_state,
        )
        .join(Issue, Issue.id == TimelineEvent.issue_id)
        .where(Issue.repository_id == repository_id, TimelineEvent.event.in_(FIX_EVENTS))
    )
    if issue_ids is not None:
        query = query.where(TimelineEvent.issue_id.in_(issue_ids))
    events: dict[int, list[FixEvent]] = defaultdict(list)
    with db.session() as session:
        for issue_id, event, commit_id, source_repo, source_state in session.execute(query):
            events[issue_id].append(FixEvent(event, commit_id, source_repo, source_state))
    return events


@dataclass
class FilterCounts:
    converter: str
    issues: int = 0
    relevant: int = 0
    not_relevant: int = 0
    relevance_undecided: int = 0
    available: int = 0
    not_available: int = 0
    availability_undecided: int = 0
    kept: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_filters(db: Database, converters: Iterable[Converter]) -> list[FilterCounts]:
    """Decide relevance and availability for every stored issue of each converter; store why."""
    results = []
    for converter in converters:
        results.append(_filter_converter(db, converter))
    return results


def _filter_converter(db: Database, converter: Converter) -> FilterCounts:
    counts = FilterCounts(converter.name)
    with db.session() as session:
        repo_id = session.scalar(select(Repository.id).where(Repository.full_name == converter.repo))
        if repo_id is None:
            return counts
        issues = session.execute(
            select(Issue.id, Issue.state, Issue.is_pull_request, Issue.source, Issue.timeline_complete).where(
                Issue.repository_id == repo_id
            )
        ).all()
        labels: dict[int, list[str]] = defaultdict(list)
        for issue_id, name in session.execute(
            select(IssueLabel.issue_id, Label.name)
            .join(Label, Label.id == IssueLabel.label_id)
            .where(Label.repository_id == repo_id)
        ):
            labels[issue_id].append(name)
    events = fix_events_by_issue(db, None, repo_id)
    now = utcnow()
    rows = []
    for issue_id, state, is_pr, source, complete in issues:
        rel = relevance(converter, state=state, is_pull_request=is_pr, labels=labels[issue_id], source=source)
        if rel.value is False:
            avail = Decision(None, "not relevant")
        else:
            avail = availability(converter, events.get(issue_id, []), timeline_complete=bool(complete))
        rows.append(
            {
                "converter": converter.name,
                "issue_id": issue_id,
                "relevant": rel.value,
                "relevance_rule": rel.rule,
                "available": avail.value,
                "availability_rule": avail.rule,
                "decided_at": now,
            }
        )
        _count(counts, rel, avail)
    with db.session() as session:
        for start in range(0, len(rows), 1000):
            upsert(session, FilterResult, rows[start : start + 1000], ["converter", "issue_id"])
    return counts


def _count(counts: FilterCounts, rel: Decision, avail: Decision) -> None:
    counts.issues += 1
    if rel.value is None:
        counts.relevance_undecided += 1
    elif rel.value:
        counts.relevant += 1
    else:
        counts.not_relevant += 1
        return
    if avail.value is None:
        counts.availability_undecided += 1
    elif avail.value:
        counts.available += 1
        if rel.value:
            counts.kept += 1
    else:
        counts.not_available += 1


# -- validation against hand labels --------------------------------------------------------------


@dataclass
class Validation:
    scope: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p and r else None

    def add(self, predicted: bool, actual: bool) -> None:
        if predicted and actual:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif actual:
            self.fn += 1
        else:
            self.tn += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "n": self.tp + self.fp + self.fn + self.tn,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


_TRUE = {"1", "true", "yes", "y", "t", "failure"}
_FALSE = {"0", "false", "no", "n", "f", "not failure", "not-failure"}


def read_hand_labels(path: Path) -> list[tuple[int, str, int, bool]]:
    """Rows of (line, repo, number, is_failure) from a CSV with ``url`` and ``is_failure`` columns."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"url", "is_failure"} - set(reader.fieldnames or [])
            if missing:
                raise IssuemineError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            rows = []
            for line, row in enumerate(reader, start=2):
                try:
                    repo, number = parse_issue_url(row["url"] or "")
                except ValueError as exc:
                    raise IssuemineError(f"{path}, line {line}: {exc}") from None
                value = (row["is_failure"] or "").strip().lower()
                if value not in _TRUE | _FALSE:
                    raise IssuemineError(f"{path}, line {line}: is_failure must be yes/no or 1/0, got {value!r}")
                rows.append((line, repo, number, value in _TRUE))
            return rows
    except FileNotFoundError:
        raise IssuemineError(f"hand-label file not found: {path}") from None


def validate(db: Database, converters: Sequence[Converter], path: Path) -> tuple[list[Validation], list[str]]:
    """Precision/recall of the stored filter decisions against hand labels, per converter and overall."""
    by_repo = {c.repo.lower(): c for c in converters}
    overall = Validation("all")
    per: dict[str, Validation] = {}
    missing: list[str] = []
    with db.session() as session:
        for line, repo, number, actual in read_hand_labels(path):
            converter = by_repo.get(repo.lower())
            found = None
            if converter is not None:
                found = session.execute(
                    select(FilterResult.relevant, FilterResult.available)
                    .join(Issue, Issue.id == FilterResult.issue_id)
                    .join(Repository, Repository.id == Issue.repository_id)
                    .where(
                        Repository.full_name == converter.repo,
                        Issue.number == number,
                        FilterResult.converter == converter.name,
                    )
                ).first()
            if converter is None or found is None:
                missing.append(f"line {line}: {repo}#{number}")
                continue
            predicted = bool(found.relevant) and bool(found.available)
            overall.add(predicted, actual)
            per.setdefault(converter.name, Validation(converter.name)).add(predicted, actual)
    if not per:
        raise IssuemineError(
            f"none of the {len(missing)} hand-labeled issues in {path} has a filter decision; "
            "fetch them and run `issuemine filter` first"
        )
    return [*sorted(per.values(), key=lambda v: v.scope), overall], missing
