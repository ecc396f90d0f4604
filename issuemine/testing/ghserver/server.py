"""A real HTTP server on 127.0.0.1 speaking the parts of GitHub's REST API that issuemine uses.

Endpoints: ``GET /repos/{o}/{r}/issues`` (state, labels, since, sort=updated, direction, per_page,
page; ``Link`` headers), ``GET /repos/{o}/{r}/issues/{n}/timeline`` (per_page, page, ``Link``),
``GET /repos/{o}/{r}/issues/{n}/comments`` and ``GET /rate_limit``. Every answer carries the
rate-limit headers and a content ETag; ``If-None-Match`` with the current ETag answers 304, which
does not spend the rate limit (as on GitHub). Optional token check (401 Bad credentials).

Faults are injected by rule: a path pattern, how many matching requests to let through first, and
how many to break, with one of ``502``, ``reset`` (connection closed without an answer),
``secondary`` (403 + ``Retry-After``), ``truncate`` (a 200 whose JSON body is cut short) and
``exhaust`` (the primary limit runs out, resetting a few seconds later).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from issuemine.testing.ghserver.corpus import Corpus

# self-link: the page's `next` link points to itself; ignore-page: the server answers page 1 whatever
# was asked, always with a `next` link (a broken proxy or Enterprise server; GitHub never does this).
# trickle: the body comes one byte every `retry_after` seconds, for `reset_in` seconds, then the rest.
# no-number: a listing whose items lack their `number` (a broken server; GitHub never does this).
FAULTS = ("502", "reset", "secondary", "truncate", "exhaust", "self-link", "ignore-page", "trickle", "no-number")


@dataclass
class Fault:
    pattern: str
    kind: str
    times: int = 1
    skip: int = 0
    retry_after: float = 1
    reset_in: float = 2.0
    seen: int = 0

    def matches(self, path: str) -> bool:
        return re.search(self.pattern, path) is not None


@dataclass
class LoggedRequest:
    path: str
    query: dict[str, str]
    status: int
    counted: bool
    conditional: bool


@dataclass
class ServerState:
    corpus: Corpus
    token: str | None = None
    rate_limit: int = 5000
    remaining: int = 5000
    reset_at: float = field(default_factory=lambda: time.time() + 3600)
    latency: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    log: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall
    server: GitHubTestServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        state = self.server.state
        if state.latency:
            time.sleep(state.latency)
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        fault = self._take_fault(url.path)
        if fault and fault.kind == "reset":
            self._log(url.path, query, 0, False, False)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if state.token is not None:
            auth = self.headers.get("Authorization", "")
            if auth not in (f"token {state.token}", f"Bearer {state.token}"):
                self._send(
                    401,
                    {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
                    url.path,
                    query,
                    counted=False,
                )
                return
        with state.lock:
            if time.time() >= state.reset_at:
                state.remaining, state.reset_at = state.rate_limit, time.time() + 3600
            if fault and fault.kind == "exhaust":
                state.remaining, state.reset_at = 0, time.time() + fault.reset_in
        if fault and fault.kind == "502":
            self._send(502, {"message": "Server Error"}, url.path, query, counted=False)
            return
        if fault and fault.kind == "secondary":
            self._send(
                403,
                {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
                url.path,
                query,
                counted=False,
                extra={"Retry-After": str(fault.retry_after)},
            )
            return
        if state.remaining <= 0 and url.path != "/rate_limit":
            self._send(403, {"message": "API rate limit exceeded for 127.0.0.1."}, url.path, query, counted=False)
            return
        self._pagination_fault = fault.kind if fault and fault.kind in ("self-link", "ignore-page") else None
        try:
            status, body, links = self._route(url.path, query)
        except KeyError:
            self._send(404, {"message": "Not Found"}, url.path, query, counted=True)
            return
        if fault and fault.kind == "no-number" and isinstance(body, list):
            body = [{k: v for k, v in item.items() if k != "number"} for item in body]
        self._send(
            status,
            body,
            url.path,
            query,
            counted=url.path != "/rate_limit",
            links=links,
            truncate=bool(fault and fault.kind == "truncate"),
            trickle=fault if fault and fault.kind == "trickle" else None,
        )

    def _take_fault(self, path: str) -> Fault | None:
        state = self.server.state
        with state.lock:
            for fault in state.faults:
                if fault.times > 0 and fault.matches(path):
                    fault.seen += 1
                    if fault.seen > fault.skip:
                        fault.times -= 1
                        return fault
        return None

    def _log(self, path: str, query: dict[str, str], status: int, counted: bool, conditional: bool) -> None:
        with self.server.state.lock:
            self.server.state.log.append(LoggedRequest(path, query, status, counted, conditional))

    def _send(
        self,
        status: int,
        data: Any,
        path: str,
        query: dict[str, str],
        *,
        counted: bool,
        links: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
        truncate: bool = False,
        trickle: Fault | None = None,
    ) -> None:
        state = self.server.state
        body = json.dumps(data).encode()
        etag = f'W/"{hashlib.sha1(body).hexdigest()}"'
        conditional = "If-None-Match" in self.headers
        if status == 200 and self.headers.get("If-None-Match") == etag:
            status, body, counted = 304, b"", False
        with state.lock:
            if (counted and status < 400) or status == 404:
                state.remaining = max(state.remaining - 1, 0)
            remaining, reset_at = state.remaining, state.reset_at
        if status == 403 and remaining <= 0:
            remaining = 0
        if truncate and status == 200:
            body = body[: max(len(body) // 2, 1)]
        self._log(path, query, status, counted and status < 400, conditional)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-RateLimit-Limit", str(state.rate_limit))
        self.send_header("X-RateLimit-Remaining", str(remaining))
        self.send_header("X-RateLimit-Reset", str(int(reset_at)))
        self.send_header("X-RateLimit-Used", str(state.rate_limit - remaining))
        self.send_header("X-RateLimit-Resource", "core")
        if status in (200, 304):
            self.send_header("ETag", etag)
        if links:
            self.send_header("Link", ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links.items()))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if status != 304 and trickle is not None:
            self._trickle(body, trickle)
        elif status != 304:
            self.wfile.write(body)

    def _trickle(self, body: bytes, fault: Fault) -> None:
        end = time.monotonic() + fault.reset_in
        sent = 0
        try:
            while sent < len(body) and time.monotonic() < end:
                self.wfile.write(body[sent : sent + 1])
                self.wfile.flush()
                sent += 1
                time.sleep(fault.retry_after)
            self.wfile.write(body[sent:])
        except OSError:  # the client gave up
            self.close_connection = True

    # -- routes -----------------------------------------------------------------------------

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        corpus = self.server.state.corpus
        if path == "/rate_limit":
            state = self.server.state
            core = {"limit": state.rate_limit, "remaining": state.remaining, "reset": int(state.reset_at)}
            return 200, {"resources": {"core": core}, "rate": core}, {}
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues", path)
        if m:
            return self._issues(corpus.repos[m.group(1)], path, query)
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/(timeline|comments)", path)
        if m:
            repo = corpus.repos[m.group(1)]
            events = repo.timelines[int(m.group(2))]
            if m.group(3) == "comments":
                events = [
                    {k: v for k, v in e.items() if k not in ("event", "actor")}
                    for e in events
                    if e.get("event") == "commented"
                ]
            return self._page(events, path, query)
        raise KeyError(path)

    def _issues(self, repo: Any, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        state = query.get("state", "open")
        wanted = [s.strip() for s in query.get("labels", "").split(",") if s.strip()]
        since = _parse_time(query["since"]) if "since" in query else None
        items = []
        for issue in repo.issues.values():
            if state != "all" and issue["state"] != state:
                continue
            names = {lab["name"] for lab in issue["labels"]}
            if any(w not in names for w in wanted):
                continue
            if since is not None and _parse_time(issue["updated_at"]) < since:
                continue
            items.append(issue)
        key = "updated_at" if query.get("sort") == "updated" else "created_at"
        items.sort(key=lambda i: (i[key], i["number"]), reverse=query.get("direction", "desc") == "desc")
        return self._page(items, path, query)

    def _page(self, items: list[Any], path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = max(int(query.get("page", 1)), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        host, port = self.server.server_address[:2]
        base = f"http://{host!s}:{port}{path}"

        def link(p: int) -> str:
            return base + "?" + urlencode({**query, "page": p})

        links: dict[str, str] = {}
        broken = getattr(self, "_pagination_fault", None)
        if broken == "ignore-page":
            chunk = items[:per_page]
            return 200, chunk, {"next": link(page + 1), "last": link(page + 2)}
        if broken == "self-link":
            return 200, chunk, {"next": link(page), "last": link(last)}
        if page < last:
            links["next"] = link(page + 1)
            links["last"] = link(last)
        if page > 1:
            links["first"] = link(1)
            links["prev"] = link(page - 1)
        return 200, chunk, links


class GitHubTestServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, corpus: Corpus, token: str | None = None, rate_limit: int = 5000, latency: float = 0.0):
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = ServerState(corpus, token=token, rate_limit=rate_limit, remaining=rate_limit, latency=latency)
        corpus.base_url = self.url
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> GitHubTestServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    # -- test controls ----------------------------------------------------------------------

    def inject(self, pattern: str, kind: str, *, times: int = 1, skip: int = 0, **kw: Any) -> Fault:
        assert kind in FAULTS, kind
        fault = Fault(pattern, kind, times=times, skip=skip, **kw)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def requests(self) -> list[LoggedRequest]:
        with self.state.lock:
            return list(self.state.log)

    def clear_log(self) -> None:
        with self.state.lock:
            self.state.log.clear()
