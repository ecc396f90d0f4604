"""The one HTTP surface to GitHub: one client, one retry and rate-limit policy, one error type.

Requests go through PyGithub's ``Requester`` (authentication, base URL for GitHub Enterprise or a
test server, connection pooling, user agent). We call it directly rather than through
``PaginatedList`` and the ``Issue`` objects because (a) lists there cannot be conditional (no
ETag/If-None-Match), and (b) its objects complete themselves lazily: reading ``raw_data`` or an
attribute the list payload lacked costs one hidden GET per issue. Here every request is explicit
and counted.

Policy (GitHub's documented behaviour):
- 304 Not Modified answers a conditional request and does not count against the rate limit.
- Primary limit exhausted (``X-RateLimit-Remaining: 0``): wait until ``X-RateLimit-Reset`` with a
  visible countdown, or stop with :class:`RateLimitStop` when waiting is off.
- Secondary limit (403/429 with ``Retry-After``, or the "secondary rate limit" message): wait the
  advised time and retry, a bounded number of times.
- 5xx, connection errors, truncated bodies: bounded retries with exponential backoff, then a
  clear :class:`GitHubError`.
The token is only ever handed to PyGithub's auth object; no message built here contains it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from github import Auth, Github
from requests.utils import parse_header_links

from issuemine import interrupt
from issuemine.errors import GitHubError, RateLimitStop
from issuemine.github import DEFAULT_API_URL

PER_PAGE = 100

# on_wait(reason, seconds_left): called about once a second while the client sleeps.
WaitCallback = Callable[[str, float], None]


@dataclass
class RetryPolicy:
    """How hard the client tries before giving up. Tests shrink the delays, not the logic."""

    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    max_secondary_waits: int = 10
    secondary_default_wait: float = 60.0
    wait_on_rate_limit: bool = True
    timeout: int = 30  # seconds without a byte (requests' read timeout restarts at every byte)
    deadline: float = 300.0  # seconds for a whole answer, however it trickles in


@dataclass
class RequestStats:
    """What the client has spent: every request, those counted by the rate limit, 304s, faults."""

    requests: int = 0
    counted: int = 0
    not_modified: int = 0
    faults: int = 0
    rate_remaining: int | None = None
    rate_limit: int | None = None
    rate_reset: float | None = None

    def snapshot(self) -> RequestStats:
        return RequestStats(**self.__dict__)


@dataclass
class Response:
    status: int
    url: str
    data: Any = None
    etag: str | None = None
    links: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _links(header: str | None) -> dict[str, str]:
    if not header:
        return {}
    return {link["rel"]: link["url"] for link in parse_header_links(header) if "rel" in link}


def _message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return body.strip()[:200]


class GitHubClient:
    """GET requests against the GitHub REST API with the retry/rate-limit policy applied."""

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        policy: RetryPolicy | None = None,
        on_wait: WaitCallback | None = None,
    ) -> None:
        parts = urlsplit(api_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GitHubError(
                f"not an API URL: {api_url[:200]!r} (expected http(s)://host[/path], such as {DEFAULT_API_URL})"
            )
        self.api_url = api_url.strip().rstrip("/")
        self.policy = policy or RetryPolicy()
        self.on_wait = on_wait
        self.stats = RequestStats()
        self._authenticated = bool(token)
        github = Github(
            auth=Auth.Token(token) if token else None,
            base_url=self.api_url,
            per_page=PER_PAGE,
            timeout=self.policy.timeout,
            retry=None,  # our policy below; PyGithub's GithubRetry sleeps invisibly
            seconds_between_requests=None,  # PyGithub defaults to 0.25 s between requests
            seconds_between_writes=None,
        )
        self._requester = github.requester

    # -- public -----------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None, etag: str | None = None) -> Response:
        """GET ``path`` (relative to the API URL, or an absolute URL from a ``Link`` header)."""
        url = path
        if params:
            url = f"{path}{'&' if '?' in path else '?'}{urlencode(params)}"
        faults = 0
        secondary_waits = 0
        while True:
            self._wait_if_exhausted()
            headers = {"Accept": "application/vnd.github+json"}
            if etag:
                headers["If-None-Match"] = etag
            try:
                status, resp_headers, body = self._within_deadline(url, headers)
            except (requests.RequestException, HTTPException, OSError) as exc:
                faults = self._fault(faults, url, f"cannot connect ({type(exc).__name__})")
                continue
            self._account(status, resp_headers)
            if status == 304:
                return Response(304, url, None, resp_headers.get("etag") or etag, _links(resp_headers.get("link")))
            if status in (403, 429):
                secondary_waits = self._rate_limited(status, resp_headers, body, url, secondary_waits)
                continue
            if status == 401:
                raise GitHubError(
                    "GitHub rejected the token (401 Bad credentials): check GITHUB_TOKEN or --token"
                    if self._authenticated
                    else f"GitHub requires authentication for {url} (401): set GITHUB_TOKEN or pass --token"
                )
            if status >= 500:
                faults = self._fault(faults, url, f"HTTP {status}")
                continue
            if status == 404:
                raise GitHubError(f"not found on GitHub (404): {url}; check the repository name in the catalog")
            if status >= 400:
                raise GitHubError(f"GitHub answered {status} for {url}: {_message(body)}")
            try:
                data = json.loads(body) if body else None
            except ValueError:
                faults = self._fault(faults, url, "truncated or invalid JSON body")
                continue
            return Response(status, url, data, resp_headers.get("etag"), _links(resp_headers.get("link")))

    def _within_deadline(self, url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any], str]:
        """One request, given ``policy.deadline`` seconds in all. requests' timeout bounds each wait
        for a byte, so a server or proxy that trickles its answer would hold a fetch forever: the
        request runs in a thread of its own, abandoned (with its connection) when time is up."""
        answer: dict[str, Any] = {}

        def call() -> None:
            try:
                answer["value"] = self._requester.requestJson("GET", url, headers=headers)
            except BaseException as exc:  # handed to the caller's thread
                answer["error"] = exc

        worker = threading.Thread(target=call, name="issuemine-request", daemon=True)
        worker.start()
        worker.join(self.policy.deadline)
        if worker.is_alive():
            raise GitHubError(
                f"GitHub API at {self.api_url} gave no complete answer for {url} within {self.policy.deadline:g} s "
                "(a server or proxy trickling its answer); try again later"
            )
        if "error" in answer:
            raise answer["error"]
        status, resp_headers, body = answer["value"]
        return status, resp_headers, body

    # -- policy -----------------------------------------------------------------------------

    def _account(self, status: int, headers: dict[str, Any]) -> None:
        self.stats.requests += 1
        if status == 304:
            self.stats.not_modified += 1
        else:
            self.stats.counted += 1
        try:
            if "x-ratelimit-remaining" in headers:
                self.stats.rate_remaining = int(float(headers["x-ratelimit-remaining"]))
            if "x-ratelimit-limit" in headers:
                self.stats.rate_limit = int(float(headers["x-ratelimit-limit"]))
            if "x-ratelimit-reset" in headers:
                self.stats.rate_reset = float(headers["x-ratelimit-reset"])
        except ValueError:
            pass  # a malformed header must not break the crawl; the next response corrects it

    def _fault(self, faults: int, url: str, what: str) -> int:
        """Count a transient fault; back off, or give up with a clear error."""
        self.stats.faults += 1
        faults += 1
        if faults > self.policy.max_retries:
            raise GitHubError(
                f"GitHub API at {self.api_url} kept failing for {url}: {what} (gave up after {faults} attempts)"
            )
        delay = min(self.policy.backoff_base * 2 ** (faults - 1), self.policy.backoff_max)
        self._sleep(delay, f"{what}; retry {faults}/{self.policy.max_retries}")
        return faults

    def _rate_limited(self, status: int, headers: dict[str, Any], body: str, url: str, waits: int) -> int:
        message = _message(body)
        retry_after = headers.get("retry-after")
        secondary = retry_after is not None or "secondary rate limit" in message.lower()
        if not secondary and self.stats.rate_remaining == 0:
            self._exhausted()
            return waits
        if not secondary:
            raise GitHubError(f"GitHub refused {url} ({status}): {message}")
        waits += 1
        if waits > self.policy.max_secondary_waits:
            raise GitHubError(f"GitHub kept applying its secondary rate limit to {url}; try again later")
        try:
            delay = float(retry_after) if retry_after is not None else self.policy.secondary_default_wait
        except ValueError:
            delay = self.policy.secondary_default_wait
        self._sleep(max(delay, 0.0), "secondary rate limit")
        return waits

    def _wait_if_exhausted(self) -> None:
        reset = self.stats.rate_reset
        if self.stats.rate_remaining == 0 and reset is not None and reset > time.time():
            self._exhausted()

    def _exhausted(self) -> None:
        reset = self.stats.rate_reset or time.time() + 60
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(reset))
        if not self.policy.wait_on_rate_limit:
            raise RateLimitStop(
                f"GitHub rate limit exhausted ({self.stats.rate_limit or '?'} requests/hour); "
                f"it resets at {when}: rerun then to resume",
                reset,
            )
        # One second past the reset: GitHub's clock and ours are not the same clock.
        self._sleep(max(reset - time.time(), 0.0) + 1.0, f"rate limit exhausted, resets at {when}")
        self.stats.rate_remaining = None

    def _sleep(self, seconds: float, reason: str) -> None:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            interrupt.check()  # a rate-limit wait can be an hour: Ctrl-C must end it
            if self.on_wait:
                self.on_wait(reason, left)
            time.sleep(min(left, 1.0))
