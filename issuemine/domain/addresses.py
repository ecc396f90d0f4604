"""Where an issue lives: parsing GitHub issue addresses out of URLs, rows and payloads."""

from __future__ import annotations

from typing import Any


def parse_issue_url(url: str) -> tuple[str, int]:
    """``https://github.com/o/r/issues/12`` (or ``o/r#12``) to ``("o/r", 12)``."""
    text = url.strip()
    if "#" in text and "://" not in text:
        repo, _, num = text.partition("#")
        return repo, int(num)
    parts = text.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] in ("issues", "pull") and parts[-1].isdigit():
        return f"{parts[-4]}/{parts[-3]}", int(parts[-1])
    raise ValueError(f"not a GitHub issue URL: {url!r}")


def issue_address(row: dict[str, Any]) -> tuple[str, int]:
    """(repo, number) of a file row with ``repo`` and ``number`` columns, or a ``url`` column."""
    if row.get("repo") and row.get("number"):
        return str(row["repo"]).strip(), int(row["number"])
    return parse_issue_url(str(row.get("url") or ""))


def repo_of_issue(issue: dict[str, Any]) -> str | None:
    """``owner/name`` of an issue payload: its ``repository``, ``repository_url`` or ``html_url``."""
    repo = issue.get("repository")
    if isinstance(repo, dict) and repo.get("full_name"):
        return str(repo["full_name"])
    parts = (issue.get("repository_url") or "").rstrip("/").split("/")
    if "repos" in parts and len(parts) >= 2:
        return "/".join(parts[-2:])
    try:
        return parse_issue_url(issue.get("html_url") or "")[0]
    except ValueError:
        return None
