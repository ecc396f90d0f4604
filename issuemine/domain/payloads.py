"""Checks on GitHub payloads from outside (a file to ``load``, a server's answer to ``fetch``) before
anything of them is written: the fields the database stores must have the types and ranges GitHub
gives them. Each problem is one sentence naming the field, the value and what is accepted."""

from __future__ import annotations

from typing import Any

from issuemine.db.rows import parse_time
from issuemine.domain.addresses import checked_number

MAX_ID = 2**63 - 1  # GitHub's ids are 64-bit; every database here stores them as BIGINT
DATES = ("created_at", "updated_at", "closed_at")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_id(value: Any, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValueError(f"'{field}' must be an integer from 1 to 2**63-1, not {_short(value)}")


def _check_dates(payload: dict[str, Any], prefix: str = "") -> None:
    for field in DATES:
        value = payload.get(field)
        if value is None:
            continue
        try:
            if not isinstance(value, str):
                raise ValueError
            parse_time(value)
        except ValueError:
            raise ValueError(
                f"'{prefix}{field}' is not a date: {_short(value)} (expected ISO 8601, such as 2022-01-31T12:00:00Z)"
            ) from None


def check_issue(issue: Any) -> None:
    """Raise ValueError unless ``issue`` is an issue payload the database can store as it is."""
    if not isinstance(issue, dict):
        raise ValueError(f"an issue must be a JSON object, not {type(issue).__name__}")
    if "number" not in issue:
        raise ValueError("the issue has no 'number'")
    if not isinstance(issue["number"], int):
        raise ValueError(f"'number' must be an integer, not {_short(issue['number'])}")
    checked_number(issue["number"])
    _check_id(issue.get("id"), "id")
    for field in ("title", "body", "state", "state_reason", "html_url", "author_association"):
        if issue.get(field) is not None and not isinstance(issue[field], str):
            raise ValueError(f"'{field}' must be text, not {_short(issue[field])}")
    comments = issue.get("comments")
    if comments is not None and (isinstance(comments, bool) or not isinstance(comments, int) or comments < 0):
        raise ValueError(f"'comments' must be a count (an integer from 0), not {_short(comments)}")
    if issue.get("user") is not None and not isinstance(issue["user"], dict):
        raise ValueError(f"'user' must be an object, not {_short(issue['user'])}")
    labels = issue.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, (dict, str)) for x in labels)):
        raise ValueError(f"'labels' must be a list of label objects, not {_short(labels)}")
    for label in labels or []:
        if isinstance(label, dict):
            _check_id(label.get("id"), "labels[].id")
    _check_dates(issue)


def check_timeline(events: Any) -> None:
    """Raise ValueError unless ``events`` is a list of timeline event objects the database can store."""
    if not isinstance(events, list):
        raise ValueError(f"a timeline must be a list of events, not {type(events).__name__}")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise ValueError(f"timeline event {index} must be a JSON object, not {_short(event)}")
        _check_id(event.get("id"), f"timeline[{index}].id")
        _check_dates(event, f"timeline[{index}].")
        for field in ("event", "body"):
            if event.get(field) is not None and not isinstance(event[field], str):
                raise ValueError(f"'timeline[{index}].{field}' must be text, not {_short(event[field])}")
