"""Open a database: resolve the URL, tune SQLite, apply pending migrations, fail clearly.

``open_db`` is the only way the rest of issuemine gets a database; it guarantees the schema is at
the newest revision this code knows, and refuses (with a one-line reason) a file that is not a
database or a database written by a newer issuemine.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from issuemine.errors import IssuemineError

if TYPE_CHECKING:
    from alembic.config import Config

T = TypeVar("T")

DEFAULT_DB = "issuemine.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def resolve_url(db: str | None) -> str:
    """A SQLAlchemy URL from ``--db`` (a path or a URL), ``ISSUEMINE_DB``, or the default file."""
    value = db or os.environ.get("ISSUEMINE_DB") or DEFAULT_DB
    if "://" in value:
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value
    return f"sqlite:///{Path(value).expanduser()}"


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        # WAL: readers (a status command, Datasette) never block the fetcher; NORMAL is durable
        # across application crashes, which is what interrupt-safety needs.
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _check_revision(connection: Connection) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        return
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise IssuemineError(
            f"the database has schema revision {current!r}, newer than this issuemine knows "
            f"(head {script.get_current_head()!r}); upgrade issuemine to open it"
        )


def _newest_file_revision() -> str | None:
    """The revision of the newest migration file (they are numbered, one line of history)."""
    files = sorted((MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return files[-1].name[:4] if files else None


def _at_head(engine: Engine) -> bool:
    """Whether the schema is already current, read with one query: most commands open a database
    that needs no migration, and importing Alembic to learn that costs a quarter of a second."""
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return False  # a new database: no version table yet
    return current == [_newest_file_revision()]


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations up to ``revision`` (each migration in its own transaction)."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

    with engine.begin() as connection:
        _check_revision(connection)
        command.upgrade(alembic_config(connection), revision)


@dataclass
class Database:
    """An open, migrated database: the engine plus a session factory."""

    url: str
    engine: Engine

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def write(self, work: Callable[[Session], T], attempts: int = 5) -> T:
        """Run ``work`` in one transaction, retried when concurrent writers collide.

        PostgreSQL aborts one of two transactions that deadlock (40P01) or conflict (40001), and
        two writers inserting the same new row at once can trip a unique index other than the
        upsert's ON CONFLICT target (23505); SQLite reports "database is locked" when its busy
        timeout runs out. All are safe to retry: the transaction was rolled back as a whole and the
        work is upserts, which find the other writer's row on the next attempt.
        """
        for attempt in range(1, attempts + 1):
            try:
                with self.session() as session:
                    return work(session)
            except DBAPIError as exc:
                if attempt == attempts or not _is_transient(exc):
                    raise
                time.sleep(0.05 * attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    def display_url(self) -> str:
        """The URL without its password, for messages and reports."""
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()


def _is_transient(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in ("40P01", "40001", "23505") or "database is locked" in str(exc.orig)


def sqlite_file(url: str) -> str | None:
    """The file an SQLite URL names (None: another database, or SQLite in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise IssuemineError(f"not a database path or URL: {url!r}") from None
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database
    if path and parsed.query.get("uri") == "true" and path.startswith("file:"):  # an SQLite URI filename
        path = path[len("file:") :].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def where_from(db: str | None) -> str:
    """Where the database name came from, for an error that says which one was looked for."""
    if db:
        return "given with --db"
    if os.environ.get("ISSUEMINE_DB"):
        return "from ISSUEMINE_DB"
    return "the default: set ISSUEMINE_DB or give --db"


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise IssuemineError(f"not a database path or URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path:
            parent = Path(path).parent
            if not parent.exists():
                raise IssuemineError(f"cannot create database {path}: folder {parent} does not exist")
        engine = create_engine(url)
        _tune_sqlite(engine)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # missing driver, bad URL parts
        raise IssuemineError(f"cannot use database {parsed.render_as_string()}: {exc}") from None


def open_db(db: str | None = None, *, upgrade: bool = True, must_exist: bool = False) -> Database:
    """Open (creating if needed) and migrate the database named by ``db``. ``must_exist``: a
    command that only reads creates nothing: an SQLite file that is not there is an error naming
    the path it looked for."""
    url = resolve_url(db)
    path = sqlite_file(url) if must_exist else None
    if path and not Path(path).exists():
        raise IssuemineError(
            f"no database at {path} ({where_from(db)}); commands that write one create it: "
            "issuemine fetch, issuemine load, or issuemine demo"
        )
    engine = _engine(url)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        if upgrade:
            migrate(engine)
        else:
            with engine.connect() as connection:
                _check_revision(connection)
    except IssuemineError:
        engine.dispose()
        raise
    except (DatabaseError, OperationalError) as exc:
        engine.dispose()
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
        raise IssuemineError(f"cannot open database {shown}: {reason}") from None
    return Database(url=url, engine=engine)


def table_names(database: Database) -> list[str]:
    return sorted(inspect(database.engine).get_table_names())
