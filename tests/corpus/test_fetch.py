"""`Fetcher` end to end against the loopback GitHub server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from issuemine.corpus.fetch import Fetcher
from issuemine.corpus.filters import run_filters
from issuemine.db import Database
from issuemine.db.models import FetchRun, Issue, Listing
from issuemine.github.client import GitHubClient
from issuemine.testing.ghserver.corpus import ts
from tests.conftest import FAST
from tests.helpers import counts, listed, snapshot, wants_timeline

TORCH, TF = "torch.onnx", "tf2onnx"


def crawl(db: Database, client: GitHubClient, catalog, names=(TORCH, TF), **kw):  # type: ignore[no-untyped-def]
    fetcher = Fetcher(db, client, **kw)
    return [fetcher.fetch(catalog[n]) for n in names]


def test_first_run_stores_everything(fresh_db, client, gh, corpus, catalog):
    reports = crawl(fresh_db, client, catalog)
    assert all(r.status == "completed" for r in reports)
    expected_issues = sum(len(listed(corpus, catalog[n])) for n in (TORCH, TF))
    expected_timelines = [
        (catalog[n], i) for n in (TORCH, TF) for i in listed(corpus, catalog[n]) if wants_timeline(catalog[n], i)
    ]
    expected_events = sum(len(corpus.repos[c.repo].timelines[i["number"]]) for c, i in expected_timelines)
    expected_comments = sum(i["comments"] for _, i in expected_timelines)
    got = counts(fresh_db)
    assert got["issues"] == expected_issues
    assert got["timeline_events"] == expected_events
    assert got["comments"] == expected_comments
    assert sum(r.timelines for r in reports) == len(expected_timelines)

    # Field values of one issue with a multi-page timeline, checked against the payload served.
    long_ones = [(c, i) for c, i in expected_timelines if len(corpus.repos[c.repo].timelines[i["number"]]) > 100]
    assert long_ones, "the fixture corpus must contain timelines longer than one page"
    conv, payload = long_ones[0]
    with fresh_db.session() as s:
        row = s.scalars(select(Issue).where(Issue.github_id == payload["id"])).one()
        assert (row.number, row.title, row.body, row.state) == (
            payload["number"],
            payload["title"],
            payload["body"],
            payload["state"],
        )
        assert row.author == payload["user"]["login"]
        assert row.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ") == payload["updated_at"]
        served = corpus.repos[conv.repo].timelines[payload["number"]]
        assert row.timeline_complete
        assert row.timeline_pages == (len(served) + 99) // 100 >= 2
        n_events = s.execute(text("SELECT count(*) FROM timeline_events WHERE issue_id = :i"), {"i": row.id}).scalar()
        assert n_events == len(served)
        stored_order = (
            s.execute(
                text("SELECT event_key FROM timeline_events WHERE issue_id = :i ORDER BY position"), {"i": row.id}
            )
            .scalars()
            .all()
        )
        assert stored_order[-1] == f"id:{served[-1]['id']}"
        labels = (
            s.execute(
                text(
                    "SELECT l.name FROM issue_labels il JOIN labels l ON l.id = il.label_id "
                    "WHERE il.issue_id = :i ORDER BY l.name"
                ),
                {"i": row.id},
            )
            .scalars()
            .all()
        )
        assert labels == sorted(x["name"] for x in payload["labels"])

    # Pull requests are stored, flagged, and get no timeline.
    with fresh_db.session() as s:
        prs = s.scalars(select(Issue).where(Issue.is_pull_request.is_(True))).all()
        assert prs and not any(p.timeline_complete for p in prs)
    # Requests: list pages plus one timeline request per issue page: at most 1.05 per issue here.
    total_requests = sum(r.requests for r in reports)
    assert total_requests <= 1.05 * expected_issues + 2


def test_second_run_without_changes_is_free_and_changes_nothing(fresh_db, client, gh, catalog):
    crawl(fresh_db, client, catalog)
    before = snapshot(fresh_db)
    gh.clear_log()
    reports = crawl(fresh_db, client, catalog)
    log = gh.requests()
    listing = [r for r in log if r.path.endswith("/issues")]
    assert len(listing) == 2 and all(r.status == 304 for r in listing)
    assert [r for r in log if r.counted] == []  # every request was a conditional one answered 304
    assert all(r.conditional for r in log)
    assert sum(r.counted for r in reports) == 0
    assert sum(r.saved for r in reports) == 0
    assert snapshot(fresh_db) == before


def test_changed_issue_and_new_cross_reference_are_picked_up(fresh_db, client, gh, corpus, catalog):
    crawl(fresh_db, client, catalog)
    run_filters(fresh_db, [catalog[TORCH]])
    repo = corpus.repos["pytorch/pytorch"]
    with fresh_db.engine.connect() as conn:
        unavailable = (
            conn.execute(
                text(
                    "SELECT i.number FROM filter_results f JOIN issues i ON i.id = f.issue_id "
                    "WHERE f.converter = 'torch.onnx' AND f.relevant AND NOT f.available ORDER BY i.number"
                )
            )
            .scalars()
            .all()
        )
    assert len(unavailable) >= 2
    edited, referenced = unavailable[0], unavailable[1]
    corpus.touch("pytorch/pytorch", edited, title="Edited: export fails for a scripted loop")
    corpus.add_comment("pytorch/pytorch", edited, "maintainer-a", "Reopening the discussion here.", corpus.tick())
    repo.issues[edited]["updated_at"] = ts(corpus.clock)
    updated_before = repo.issues[referenced]["updated_at"]
    corpus.add_cross_reference(
        "pytorch/pytorch", referenced, "pytorch/pytorch", 99_001, source_state="closed", source_is_pr=True
    )
    assert repo.issues[referenced]["updated_at"] == updated_before  # a cross-reference does not bump it

    report = crawl(fresh_db, client, catalog, names=(TORCH,))[0]
    assert report.saved == 1 and report.refresh_changed == 1
    run_filters(fresh_db, [catalog[TORCH]])
    with fresh_db.engine.connect() as conn:
        title = conn.execute(text("SELECT title FROM issues WHERE number = :n"), {"n": edited}).scalar()
        rule = conn.execute(
            text(
                "SELECT availability_rule FROM filter_results f JOIN issues i ON i.id = f.issue_id "
                "WHERE i.number = :n AND f.converter = 'torch.onnx'"
            ),
            {"n": referenced},
        ).scalar()
        comments = conn.execute(
            text("SELECT count(*) FROM comments c JOIN issues i ON i.id = c.issue_id WHERE i.number = :n"),
            {"n": edited},
        ).scalar()
    assert title == "Edited: export fails for a scripted loop"
    assert rule == "cross-referenced-closed"
    assert comments == repo.issues[edited]["comments"]


def test_refresh_policy_none_misses_cross_references(fresh_db, client, gh, corpus, catalog):
    crawl(fresh_db, client, catalog, names=(TORCH,))
    repo = corpus.repos["pytorch/pytorch"]
    number = next(
        n
        for n, issue in sorted(repo.issues.items())
        if wants_timeline(catalog[TORCH], issue)
        and "module: onnx" in {x["name"] for x in issue["labels"]}
        and corpus.truth[("pytorch/pytorch", n)] is None
    )
    corpus.add_cross_reference(
        "pytorch/pytorch", number, "pytorch/pytorch", 99_002, source_state="closed", source_is_pr=True
    )
    none = crawl(fresh_db, client, catalog, names=(TORCH,), refresh_timelines="none")[0]
    assert none.refreshed == 0 and none.refresh_changed == 0
    default = crawl(fresh_db, client, catalog, names=(TORCH,))[0]
    assert default.refresh_changed == 1
    assert default.counted == 1  # the changed timeline page; everything else answered 304


def test_page_of_issues_sharing_one_updated_at(fresh_db, client, gh, corpus, catalog):
    """A bulk edit gives 150 issues the same updated_at: the keyset must page within it."""
    crawl(fresh_db, client, catalog, names=(TF,))
    repo = corpus.repos["onnx/tensorflow-onnx"]
    same = ts(corpus.tick())
    bulk = sorted(repo.issues)[:150]
    for n in bulk:
        repo.issues[n]["updated_at"] = same
        repo.issues[n]["title"] = f"bulk retitled {n}"
    report = crawl(fresh_db, client, catalog, names=(TF,))[0]
    assert report.status == "completed"
    assert report.saved == 150
    with fresh_db.engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM issues WHERE title LIKE 'bulk retitled %'")).scalar()
    assert n == 150


@pytest.mark.parametrize(
    ("pattern", "kind", "times", "skip"),
    [
        (r"/timeline$", "502", 2, 5),
        (r"/issues$", "502", 1, 1),
        (r"/timeline$", "reset", 2, 10),
        (r"/issues$", "reset", 1, 0),
        (r"/timeline$", "truncate", 1, 3),
        (r"/issues$", "truncate", 1, 1),
        (r"/timeline$", "secondary", 1, 7),
        (r"/timeline$", "exhaust", 1, 12),
    ],
)
def test_transient_faults_end_in_a_complete_fetch(fresh_db, client, gh, catalog, reference, pattern, kind, times, skip):
    fault = gh.inject(pattern, kind, times=times, skip=skip, reset_in=1.5)
    reports = crawl(fresh_db, client, catalog)
    assert fault.times == 0, "the fault must have fired"
    assert all(r.status == "completed" for r in reports)
    if kind != "exhaust":
        assert sum(r.faults for r in reports) + (kind == "secondary") >= 1
    assert snapshot(fresh_db) == reference


def test_persistent_failure_is_a_clear_error_and_a_rerun_completes(fresh_db, client, gh, catalog, reference):
    from issuemine.errors import GitHubError

    gh.inject(r"/timeline$", "502", times=50, skip=40)
    with pytest.raises(GitHubError, match=r"kept failing .* HTTP 502 \(gave up after 5 attempts\)"):
        crawl(fresh_db, client, catalog)
    with fresh_db.session() as s:
        run = s.scalars(select(FetchRun).order_by(FetchRun.id.desc())).first()
        assert run is not None and run.status == "failed" and "502" in (run.message or "")
        # Nothing half-stored: every issue with a timeline has all of it.
        partial = s.execute(
            text(
                "SELECT count(*) FROM issues WHERE NOT is_pull_request AND timeline_complete AND timeline_pages IS NULL"
            )
        ).scalar()
        assert partial == 0
    gh.state.faults.clear()
    reports = crawl(fresh_db, client, catalog)
    assert all(r.status == "completed" for r in reports)
    assert snapshot(fresh_db) == reference


def test_rate_limit_no_wait_stops_cleanly_and_resumes(fresh_db, gh, catalog, reference):
    from issuemine.errors import RateLimitStop
    from issuemine.github.client import RetryPolicy

    gh.inject(r"/timeline$", "exhaust", times=1, skip=30, reset_in=60)
    no_wait = GitHubClient(gh.url, policy=RetryPolicy(**{**FAST.__dict__, "wait_on_rate_limit": False}))
    with pytest.raises(RateLimitStop, match=r"rate limit exhausted .* resets at .* rerun then to resume"):
        crawl(fresh_db, no_wait, catalog)
    with fresh_db.session() as s:
        assert s.scalars(select(FetchRun.status)).all()[-1] == "rate-limited"
        cursor = s.scalars(select(Listing.cursor)).first()
    gh.state.remaining = gh.state.rate_limit  # the reset came
    before = counts(fresh_db)
    assert before["issues"] > 0
    reports = crawl(fresh_db, GitHubClient(gh.url, policy=FAST), catalog)
    assert all(r.status == "completed" for r in reports)
    assert snapshot(fresh_db) == reference
    assert cursor is None or reports[0].cursor is not None


def test_resume_does_not_refetch_completed_issues(fresh_db, client, gh, catalog):
    from issuemine.errors import GitHubError

    gh.inject(r"/timeline$", "502", times=50, skip=150)
    with pytest.raises(GitHubError):
        crawl(fresh_db, client, catalog, names=(TORCH,))
    with fresh_db.engine.connect() as conn:
        complete = set(conn.execute(text("SELECT number FROM issues WHERE timeline_complete")).scalars())
    assert 100 < len(complete) <= 150  # 150 timeline requests, some of them second pages
    gh.state.faults.clear()
    gh.clear_log()
    crawl(fresh_db, client, catalog, names=(TORCH,))
    refetched = {
        int(r.path.split("/")[-2]) for r in gh.requests() if r.path.endswith("/timeline") and not r.conditional
    }
    assert refetched and not refetched & complete


def test_datetimes_are_naive_utc(fresh_db, client, gh, corpus, catalog):
    crawl(fresh_db, client, catalog, names=(TF,))
    with fresh_db.session() as s:
        issue = s.scalars(select(Issue).where(Issue.is_pull_request.is_(False))).first()
        assert issue is not None and issue.created_at is not None and issue.created_at.tzinfo is None
        payload = corpus.repos["onnx/tensorflow-onnx"].issues[issue.number]
        assert issue.created_at.strftime("%Y-%m-%dT%H:%M:%SZ") == payload["created_at"]
        assert issue.closed_at is None or issue.closed_at - issue.created_at >= timedelta(0)


@pytest.mark.parametrize(("pattern", "kind"), [(r"/timeline$", "self-link"), (r"/timeline$", "ignore-page")])
def test_pagination_that_loops_ends_the_fetch_with_an_error(fresh_db, client, gh, catalog, reference, pattern, kind):
    """A `next` link to a page already read, or a server that ignores `page`, is refused (GitHub never
    does this; a proxy or a broken Enterprise server can) instead of fetching until killed."""
    from issuemine.errors import GitHubError

    gh.inject(pattern, kind, times=1000)
    with pytest.raises(GitHubError, match="repeats"):
        crawl(fresh_db, client, catalog)
    assert len(gh.requests()) < 200  # it stopped at the first repeat, not after a long loop
    gh.state.faults.clear()
    assert all(r.status == "completed" for r in crawl(fresh_db, client, catalog))
    assert snapshot(fresh_db) == reference
