"""Where an issue lives: parsing GitHub issue addresses out of URLs, rows and payloads."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

MAX_ISSUE_NUMBER = 2**31 - 1  # GitHub's issue numbers are 32-bit integers
# GitHub's rules: an owner of up to 39 letters, digits and hyphens (not first), a name of up to 100
# letters, digits, '.', '-' and '_'.
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
GITHUB_HOSTS = ("github.com", "www.github.com")


def checked_repo(repo: Any) -> str:
    text = str(repo).strip()
    if not REPO_NAME.fullmatch(text) or text.split("/")[1] in (".", ".."):
        raise ValueError(f"not a repository name: {text[:120]!r} (expected owner/name, as on GitHub)")
    return text


def checked_number(number: Any) -> int:
    """An issue number: an integer from 1 to 2**31 - 1 (digits in a text column are read too)."""
    if isinstance(number, str) and number.strip().isdigit():
        digits = number.strip()
        if len(digits) > 12:
            raise ValueError(f"issue number {digits[:40]} out of range (1 to {MAX_ISSUE_NUMBER})")
        number = int(digits)
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValueError(f"not an issue number: {str(number)[:40]!r} (expected an integer)")
    if not 1 <= number <= MAX_ISSUE_NUMBER:
        raise ValueError(f"issue number {str(number)[:40]} out of range (1 to {MAX_ISSUE_NUMBER})")
    return number


def parse_issue_url(url: str) -> tuple[str, int]:
    """``https://github.com/o/r/issues/12`` (or ``o/r#12``) to ``("o/r", 12)``."""
    text = url.strip()
    if "#" in text and "://" not in text:
        repo, _, num = text.partition("#")
        return checked_repo(repo), checked_number(num)
    parts = text.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] in ("issues", "pull") and parts[-1].isdigit():
        host = (urlsplit(text).hostname or "").lower() if "://" in text else "github.com"
        if host not in GITHUB_HOSTS:
            raise ValueError(f"not a github.com issue URL: {text[:200]!r} (host {host!r})")
        return checked_repo(f"{parts[-4]}/{parts[-3]}"), checked_number(parts[-1])
    raise ValueError(f"not a GitHub issue URL: {url[:200]!r}")


def issue_address(row: dict[str, Any]) -> tuple[str, int]:
    """(repo, number) of a file row with ``repo`` and ``number`` columns, or a ``url`` column."""
    if row.get("repo") and row.get("number"):
        return checked_repo(row["repo"]), checked_number(row["number"])
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
