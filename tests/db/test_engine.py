"""Opening databases: migrations on open, the upgrade path, clear refusals."""

from __future__ import annotations

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from issuemine.db import open_db, resolve_url
from issuemine.db.engine import head_revision, migrate, table_names
from issuemine.db.models import Base
from issuemine.errors import IssuemineError

TABLES = {
    "converters",
    "repositories",
    "listings",
    "issues",
    "labels",
    "issue_labels",
    "comments",
    "timeline_events",
    "fetch_runs",
    "filter_results",
    "samples",
    "sample_members",
}


def test_new_database_has_every_table_the_view_and_wal(fresh_db):
    assert set(table_names(fresh_db)) >= TABLES
    with fresh_db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("SELECT count(*) FROM issue_overview")).scalar() == 0
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()


def test_models_and_migrations_agree(fresh_db):
    with fresh_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_database_at_first_revision_with_data_upgrades_intact(db_path):
    engine = create_engine(f"sqlite:///{db_path}")
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO repositories (full_name) VALUES ('o/r')"))
        conn.execute(
            text(
                "INSERT INTO issues (repository_id, number, title, is_pull_request, source, timeline_complete) "
                "VALUES (1, 7, 'kept across upgrades', 0, 'github', 0)"
            )
        )
        assert "filter_results" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    engine.dispose()
    db = open_db(str(db_path))  # applies 0002 and anything later
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT title FROM issues WHERE number = 7")).scalar() == "kept across upgrades"
        assert conn.execute(text("SELECT repo, number FROM issue_overview")).all() == [("o/r", 7)]
    db.close()


def test_opening_twice_is_idempotent(db_path):
    open_db(str(db_path)).close()
    db = open_db(str(db_path))
    assert set(table_names(db)) >= TABLES
    db.close()


def test_corrupt_file_is_refused(tmp_path):
    bad = tmp_path / "x.db"
    bad.write_bytes(b"\x00garbage" * 500)
    with pytest.raises(IssuemineError, match=r"cannot open database .*not a database"):
        open_db(str(bad))


def test_newer_schema_is_refused(db_path):
    open_db(str(db_path)).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'zz_newer'")
    with pytest.raises(IssuemineError, match="'zz_newer', newer than this issuemine"):
        open_db(str(db_path))


def test_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("ISSUEMINE_DB", raising=False)
    assert resolve_url(None) == "sqlite:///issuemine.db"
    assert resolve_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path}/a.db"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.setenv("ISSUEMINE_DB", "sqlite:///elsewhere.db")
    assert resolve_url(None) == "sqlite:///elsewhere.db"


def test_the_fast_head_check_agrees_with_alembic(tmp_path):
    # Opening a current database skips Alembic when the newest migration file is the head.
    from issuemine.db.engine import _at_head, _newest_file_revision, head_revision

    assert _newest_file_revision() == head_revision()
    db = open_db(str(tmp_path / "x.db"))
    assert _at_head(db.engine)
    with db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    assert not _at_head(db.engine)
