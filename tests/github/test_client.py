"""The client's retry and rate-limit policy, against the loopback server."""

from __future__ import annotations

import time

import pytest

from issuemine.errors import GitHubError, RateLimitStop
from issuemine.github.api import fetch_timeline, list_issues_page
from issuemine.github.client import GitHubClient, RetryPolicy
from tests.conftest import FAST

REPO = "onnx/tensorflow-onnx"


def waits(client: GitHubClient) -> list[tuple[str, float]]:
    seen: list[tuple[str, float]] = []
    client.on_wait = lambda reason, left: seen.append((reason, left))
    return seen


def test_secondary_limit_waits_retry_after(gh):
    client = GitHubClient(gh.url, policy=FAST)
    seen = waits(client)
    gh.inject(r"/issues$", "secondary", retry_after=1)
    start = time.monotonic()
    page = list_issues_page(client, REPO, "all", (), None)
    assert time.monotonic() - start >= 1.0
    assert len(page.data) == 100
    assert seen and all(reason == "secondary rate limit" for reason, _ in seen)
    statuses = [r.status for r in gh.requests()]
    assert statuses == [403, 200]


def test_primary_limit_is_waited_out_with_a_countdown(gh):
    client = GitHubClient(gh.url, policy=FAST)
    seen = waits(client)
    gh.inject(r"/issues$", "exhaust", reset_in=1.5)
    page = list_issues_page(client, REPO, "all", (), None)
    assert len(page.data) == 100
    assert seen and "rate limit exhausted, resets at" in seen[0][0]
    assert seen[0][1] > 1.0  # the countdown starts near the reset time
    assert [r.status for r in gh.requests()] == [403, 200]


def test_known_exhaustion_waits_before_asking(gh):
    """After a 200 that says remaining 0, the next request waits instead of spending a 403."""
    client = GitHubClient(gh.url, policy=FAST)
    gh.state.remaining, gh.state.reset_at = 2, time.time() + 1.5
    list_issues_page(client, REPO, "all", (), None)
    list_issues_page(client, REPO, "all", (), None, page=2)
    assert client.stats.rate_remaining == 0
    list_issues_page(client, REPO, "all", (), None, page=3)
    assert [r.status for r in gh.requests()] == [200, 200, 200]


def test_no_wait_stops_with_the_reset_time(gh):
    client = GitHubClient(gh.url, policy=RetryPolicy(**{**FAST.__dict__, "wait_on_rate_limit": False}))
    gh.inject(r"/issues$", "exhaust", reset_in=600)
    with pytest.raises(RateLimitStop) as info:
        list_issues_page(client, REPO, "all", (), None)
    assert info.value.reset_at == pytest.approx(time.time() + 600, abs=5)


def test_faults_are_retried_then_reported(gh):
    client = GitHubClient(gh.url, policy=FAST)
    gh.inject(r"/timeline$", "truncate", times=2)
    number = next(iter(gh.state.corpus.repos[REPO].issues))
    timeline = fetch_timeline(client, REPO, number)
    assert timeline.events == gh.state.corpus.repos[REPO].timelines[number]
    assert client.stats.faults == 2
    gh.inject(r"/timeline$", "truncate", times=10)
    with pytest.raises(GitHubError, match=r"truncated or invalid JSON body \(gave up after 5 attempts\)"):
        fetch_timeline(client, REPO, number)


def test_authentication_errors(corpus):
    from issuemine.testing.ghserver.server import GitHubTestServer

    server = GitHubTestServer(corpus, token="right").start()
    try:
        with pytest.raises(GitHubError, match=r"requires authentication .* set GITHUB_TOKEN"):
            list_issues_page(GitHubClient(server.url, policy=FAST), REPO, "all", (), None)
        with pytest.raises(GitHubError, match="rejected the token"):
            list_issues_page(GitHubClient(server.url, token="wrong", policy=FAST), REPO, "all", (), None)
        ok = list_issues_page(GitHubClient(server.url, token="right", policy=FAST), REPO, "all", (), None)
        assert len(ok.data) == 100
    finally:
        server.stop()


def test_unknown_repository(gh):
    with pytest.raises(GitHubError, match=r"not found on GitHub \(404\).*nobody/nothing"):
        list_issues_page(GitHubClient(gh.url, policy=FAST), "nobody/nothing", "all", (), None)


def test_conditional_request_answers_304_and_costs_nothing(gh):
    client = GitHubClient(gh.url, policy=FAST)
    first = list_issues_page(client, REPO, "all", (), None)
    again = list_issues_page(client, REPO, "all", (), None, etag=first.etag)
    assert again.not_modified and again.data is None
    assert (client.stats.counted, client.stats.not_modified) == (1, 1)
    assert gh.state.rate_limit - gh.state.remaining == 1


def test_an_answer_that_trickles_in_ends_at_the_deadline(gh):
    """requests' timeout restarts at every byte: a server sending one byte a second would hold the
    fetch forever without a deadline for the whole answer."""
    from dataclasses import replace

    client = GitHubClient(gh.url, policy=replace(FAST, deadline=1.0))
    # The server trickles for 4 s and then sends the rest: without the deadline the page would arrive.
    gh.inject(r"/issues$", "trickle", retry_after=0.2, reset_in=4.0)
    with pytest.raises(GitHubError, match=r"no complete answer .* within 1 s"):
        list_issues_page(client, REPO, "all", (), None)


def test_an_api_url_that_is_not_one_is_refused():
    for bad in ("not a url", "ftp://example.com", "https://"):
        with pytest.raises(GitHubError, match="not an API URL"):
            GitHubClient(bad, policy=FAST)


def test_a_listing_of_issues_without_numbers_is_refused_before_anything_is_stored(gh):
    client = GitHubClient(gh.url, policy=FAST)
    gh.inject(r"/issues$", "no-number")
    with pytest.raises(GitHubError, match="item 0 is not an issue: the issue has no 'number'"):
        list_issues_page(client, REPO, "all", (), None)
