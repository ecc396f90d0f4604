"""A fetch killed with SIGKILL mid-run leaves a consistent database; a rerun completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import text

from issuemine.db import open_db
from tests.corpus.test_fetch import crawl
from tests.helpers import snapshot


def start_fetch(gh, db_path, *, capture: bool) -> subprocess.Popen:  # type: ignore[no-untyped-def,type-arg]
    """`issuemine fetch` of both study converters in a subprocess, against a slowed-down server."""
    gh.state.latency = 0.003  # slow enough to be caught mid-crawl
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "issuemine",
            "fetch",
            "torch.onnx",
            "tf2onnx",
            "--api-url",
            gh.url,
            "--db",
            str(db_path),
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=out,
        stderr=out,
        text=True,
    )


def wait_for_timelines(gh, proc, count: int) -> None:  # type: ignore[no-untyped-def]
    """Until the server has answered ``count`` timeline requests; the fetch must still be running."""
    deadline = time.monotonic() + 120
    while len([r for r in gh.requests() if r.path.endswith("/timeline")]) < count:
        assert proc.poll() is None, f"the fetch ended before it could be stopped: {len(gh.requests())} requests"
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_kill_mid_run_then_resume(db_path, gh, catalog, reference):
    proc = start_fetch(gh, db_path, capture=False)
    wait_for_timelines(gh, proc, 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gh.state.latency = 0.0

    db = open_db(str(db_path))
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM issues")).scalar()
        # Each stored issue that needs a timeline has all of it, or is marked incomplete.
        broken = conn.execute(
            text("SELECT count(*) FROM issues i WHERE i.timeline_complete AND i.timeline_pages IS NULL")
        ).scalar()
        running = conn.execute(text("SELECT status FROM fetch_runs")).scalars().all()
    assert stored > 0 and broken == 0 and running == ["running"]
    from issuemine.github.client import GitHubClient
    from tests.conftest import FAST

    reports = crawl(db, GitHubClient(gh.url, policy=FAST), catalog)
    assert all(r.status == "completed" for r in reports)
    assert snapshot(db) == reference
    with db.engine.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM fetch_runs ORDER BY id")).scalars().all()
    assert statuses[0] == "interrupted"
    db.close()


def test_ctrl_c_stops_cleanly_and_a_rerun_completes(db_path, gh, catalog, reference):
    proc = start_fetch(gh, db_path, capture=True)
    wait_for_timelines(gh, proc, 60)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    gh.state.latency = 0.0
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr
    db = open_db(str(db_path))
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM fetch_runs")).scalars().all() == ["interrupted"]
    from issuemine.github.client import GitHubClient
    from tests.conftest import FAST

    crawl(db, GitHubClient(gh.url, policy=FAST), catalog)
    assert snapshot(db) == reference
    db.close()
