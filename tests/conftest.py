"""Shared fixtures: a fresh database, the loopback GitHub server, a real PostgreSQL server."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from issuemine.db import Database, open_db
from issuemine.domain.converters import Converter, load_catalog
from issuemine.github.client import GitHubClient, RetryPolicy
from issuemine.testing.ghserver.corpus import Corpus, build_corpus
from issuemine.testing.ghserver.server import GitHubTestServer

FAST = RetryPolicy(max_retries=4, backoff_base=0.01, backoff_max=0.05, secondary_default_wait=0.2, timeout=10)


@pytest.fixture(scope="session", autouse=True)
def _suggest_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One study-model cache for the whole run (subprocesses inherit it), never the user's own."""
    old = os.environ.get("ISSUEMINE_CACHE")
    os.environ["ISSUEMINE_CACHE"] = str(tmp_path_factory.mktemp("issuemine-cache"))
    yield
    if old is None:
        os.environ.pop("ISSUEMINE_CACHE", None)
    else:
        os.environ["ISSUEMINE_CACHE"] = old


@pytest.fixture(scope="session")
def warm_study_model(_suggest_cache: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The study model trained once into the run's cache, before terminal sessions that wait for their
    first screen: a label session in a subprocess then loads it instead of training it (spaCy's
    start and the training take most of a screen's time limit on a busy machine)."""
    from issuemine.db import open_db
    from issuemine.domain.taxonomy import taxonomy
    from issuemine.suggest.store import train_study_model

    db = open_db(str(tmp_path_factory.mktemp("study-model") / "warm.db"))
    try:
        train_study_model(db, taxonomy())
    finally:
        db.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "issuemine.db"


@pytest.fixture
def fresh_db(db_path: Path) -> Iterator[Database]:
    db = open_db(str(db_path))
    yield db
    db.close()


@pytest.fixture(scope="session")
def catalog() -> dict[str, Converter]:
    return load_catalog()


@pytest.fixture
def corpus() -> Corpus:
    return build_corpus()


@pytest.fixture
def gh(corpus: Corpus) -> Iterator[GitHubTestServer]:
    server = GitHubTestServer(corpus).start()
    yield server
    server.stop()


@pytest.fixture
def client(gh: GitHubTestServer) -> GitHubClient:
    return GitHubClient(gh.url, policy=FAST)


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


# -- PostgreSQL ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on loopback for this test session (Debian's binaries)."""
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found; .ci/run must install the postgresql package")
        pytest.skip("PostgreSQL binaries not installed")
    root = Path(tempfile.mkdtemp(prefix="issuemine-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", str(root / "log"), "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        time.sleep(0.2)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[Database]:
    """A fresh database on the session's PostgreSQL server."""
    import psycopg

    name = f"t{os.getpid()}_{time.monotonic_ns()}"
    admin = postgres_url.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = open_db(postgres_url.rsplit("/", 1)[0] + f"/{name}")
    yield db
    db.close()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def reference(catalog: dict[str, Converter]) -> dict[str, list[tuple[object, ...]]]:
    """The snapshot a fault-free crawl of the default fixture corpus gives (built once)."""
    from issuemine.corpus.fetch import Fetcher
    from tests.helpers import snapshot

    server = GitHubTestServer(build_corpus()).start()
    try:
        with tempfile.TemporaryDirectory() as d:
            db = open_db(f"{d}/reference.db")
            fetcher = Fetcher(db, GitHubClient(server.url, policy=FAST))
            for name in ("torch.onnx", "tf2onnx"):
                fetcher.fetch(catalog[name])
            snap = snapshot(db)
            db.close()
            return snap
    finally:
        server.stop()


def build_label_db(db: Database, catalog: dict[str, Converter], per_converter: int = 6) -> None:
    """Fixture issues (with bodies and comments) in a sample named 's', as a fetch would store them."""
    from issuemine.corpus.filters import run_filters
    from issuemine.corpus.sampling import create_sample
    from issuemine.corpus.store import mark_timeline, save_issue, save_timeline
    from issuemine.db.rows import ensure_repository

    corpus = build_corpus({"onnx/tensorflow-onnx": 40}, seed=3)
    repo = corpus.repos["onnx/tensorflow-onnx"]
    with db.session() as session:
        repo_id = ensure_repository(session, repo.full_name)
        for number, issue in repo.issues.items():
            issue_id = save_issue(session, repo_id, issue)
            save_timeline(session, issue_id, repo.timelines[number], replace=True)
            mark_timeline(session, issue_id, issue_updated_at=None, pages=1, last_page_count=1, etag=None)
    run_filters(db, [catalog["tf2onnx"]])
    create_sample(db, "s", [catalog["tf2onnx"]], per_converter, seed=1)


@pytest.fixture
def label_db(fresh_db: Database, catalog: dict[str, Converter]) -> Database:
    build_label_db(fresh_db, catalog)
    return fresh_db
