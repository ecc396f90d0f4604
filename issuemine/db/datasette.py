"""Datasette metadata for a database: table descriptions and canned queries (final labels of a
sample, Tables 8-10, disputed issues, re-run verdicts...).

Datasette keys metadata by the database's name, which is its file name without the extension, so
the shipped file (``data/datasette-metadata.json``, written for ``issuemine.db``) is re-keyed to the
file the user opens: ``issuemine datasette --db demo.db > metadata.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from issuemine.errors import IssuemineError
from issuemine.resources import data_dir

SHIPPED_NAME = "issuemine"


def metadata_for(url: str) -> dict[str, Any]:
    """The metadata, keyed to the SQLite file of ``url``."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        raise IssuemineError(f"Datasette opens SQLite files; {parsed.render_as_string(hide_password=True)} is not one")
    shipped = json.loads((data_dir() / "datasette-metadata.json").read_text(encoding="utf-8"))
    entry = shipped["databases"].pop(SHIPPED_NAME)
    shipped["databases"] = {Path(parsed.database).stem: entry}
    shipped["description"] = (
        f"Open with: datasette {parsed.database} -m METADATA.json (this file). "
        + shipped["description"].split(". ", 1)[-1]
    )
    return shipped
