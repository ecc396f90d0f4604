"""The REST endpoints issuemine reads, returning plain JSON data (no storage here).

- ``GET /repos/{o}/{r}/issues``: the listing, sorted by ``updated`` ascending so that a ``since``
  cursor is a keyset: every issue before it is complete.
- ``GET /repos/{o}/{r}/issues/{n}/timeline``: every event, comments included (``commented``), and
  the ``cross-referenced`` events that ``/events`` lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from issuemine.domain.payloads import check_issue, check_timeline
from issuemine.errors import GitHubError
from issuemine.github.client import PER_PAGE, GitHubClient, Response


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def issues_path(repo: str) -> str:
    return f"/repos/{repo}/issues"


def issues_params(state: str, labels: tuple[str, ...], since: datetime | None, page: int = 1) -> dict[str, Any]:
    params: dict[str, Any] = {"state": state, "sort": "updated", "direction": "asc", "per_page": PER_PAGE}
    if labels:
        params["labels"] = ",".join(labels)
    if since is not None:
        params["since"] = iso(since)
    if page > 1:
        params["page"] = page
    return params


def list_issues_page(
    client: GitHubClient,
    repo: str,
    state: str,
    labels: tuple[str, ...],
    since: datetime | None,
    page: int = 1,
    etag: str | None = None,
) -> Response:
    """One page of the issue listing (pull requests included: GitHub lists them as issues)."""
    response = client.get(issues_path(repo), issues_params(state, labels, since, page), etag=etag)
    if not response.not_modified and not isinstance(response.data, list):
        raise GitHubError(f"unexpected answer for {response.url}: expected a list of issues")
    for index, item in enumerate(response.data or []):
        try:
            check_issue(item)
        except ValueError as exc:  # before anything of the page is stored
            raise GitHubError(f"unexpected answer for {response.url}: item {index} is not an issue: {exc}") from None
    return response


def timeline_path(repo: str, number: int) -> str:
    return f"/repos/{repo}/issues/{number}/timeline"


@dataclass
class Timeline:
    """Events of one issue from ``first_page`` on, with what a later refresh needs."""

    events: list[dict[str, Any]] = field(default_factory=list)
    first_page: int = 1
    pages: int = 0  # number of the last page read
    last_page_count: int = 0
    last_page_etag: str | None = None
    not_modified: bool = False


def fetch_timeline(
    client: GitHubClient, repo: str, number: int, first_page: int = 1, etag: str | None = None
) -> Timeline:
    """All timeline events from ``first_page`` to the end, following ``Link: rel=next``.

    With ``etag`` (of ``first_page``), an unchanged page answers 304 and nothing more is read.
    """
    result = Timeline(first_page=first_page)
    page = first_page
    params: dict[str, Any] = {"per_page": PER_PAGE}
    if page > 1:
        params["page"] = page
    response = client.get(timeline_path(repo, number), params, etag=etag)
    followed: set[str] = set()
    previous: list[Any] | None = None
    while True:
        if response.not_modified:
            result.not_modified = True
            result.pages = page
            result.last_page_etag = response.etag
            return result
        try:
            check_timeline(response.data)
        except ValueError as exc:
            raise GitHubError(f"unexpected answer for {response.url}: {exc}") from None
        result.events.extend(response.data)
        result.pages = page
        result.last_page_count = len(response.data)
        result.last_page_etag = response.etag
        next_url = response.links.get("next")
        if not next_url:
            return result
        # A broken server or proxy can link a page to itself, or ignore the page asked for: refuse a
        # link already followed and a page equal to the one before, instead of looping forever.
        followed.add(response.url)
        if next_url in followed or (previous is not None and response.data == previous):
            raise GitHubError(f"the server's pagination loops at {next_url}: it repeats a page already read")
        previous = response.data
        page += 1
        response = client.get(next_url)
