"""Storage: the schema (models), opening a database with migrations applied (engine)."""

from issuemine.db.engine import Database, open_db, resolve_url

__all__ = ["Database", "open_db", "resolve_url"]
