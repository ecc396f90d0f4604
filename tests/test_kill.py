"""A fetch killed with SIGKILL mid-run leaves a consistent database; a rerun completes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import text

from issuemine.db import open_db
from tests.helpers import snapshot
from tests.test_fetch import crawl


def test_kill_mid_run_then_resume(db_path, gh, catalog, reference):
    gh.state.latency = 0.003  # slow enough to be caught mid-crawl
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
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
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len([r for r in gh.requests() if r.path.endswith("/timeline")]) < 120:
        assert proc.poll() is None, f"the fetch ended before it could be killed: {len(gh.requests())} requests"
        assert time.monotonic() < deadline
        time.sleep(0.01)
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
    gh.state.latency = 0.003
    proc = subprocess.Popen(
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
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len([r for r in gh.requests() if r.path.endswith("/timeline")]) < 60:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
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
