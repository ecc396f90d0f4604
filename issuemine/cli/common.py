"""What every command shares: options, the error handler, output helpers."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import DBAPIError

from issuemine.domain.converters import Converter, default_catalog_paths, load_catalog
from issuemine.errors import IssuemineError

if TYPE_CHECKING:
    from issuemine.db import Database

# Off a terminal (a pipe, a file) nothing is cut at 80 columns: tables take the width they need.
PIPE_WIDTH = 400
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)
err = Console(stderr=True)

DbOption = typer.Option(
    None,
    "--db",
    help="Database: a file path or SQLAlchemy URL (postgresql://user@host/db). "
    "Default: $ISSUEMINE_DB, else issuemine.db in the working directory.",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")
CatalogOption = typer.Option(
    None,
    "--catalog",
    help="Extra converter catalog TOML file(s), read after the bundled one (also $ISSUEMINE_CATALOG).",
    exists=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Expected failures become one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IssuemineError as exc:
            # The message carries user data (file names, values): printed as text, never as markup.
            err.print(Text.assemble(("error:", "bold red"), " ", printable(str(exc))), highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted: everything stored so far is kept; rerun the same command to resume")
            raise typer.Exit(130) from None
        except DBAPIError as exc:  # the database refused (read-only, full, gone): its own words, one line
            reason = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
            what = "the database refused the change (what this command was writing was rolled back)"
            message = Text.assemble(("error:", "bold red"), f" {what}: ", printable(reason))
            err.print(message, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


# C0 and C1 control characters but newline and tab: escape sequences, carriage returns, bells.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Untrusted text (a snippet's output, an issue's text) with its control characters shown as
    ``\\x1b`` and the like, so that nothing in it can move the cursor, clear the screen, set the
    terminal's title or clipboard, or hide a line behind a carriage return."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def database(db: str | None, *, reads: bool = False) -> Database:
    """The database of ``--db``. A command that only ``reads`` never creates one: a missing file is
    an error naming the path looked for, instead of an empty database and a puzzling "no sample"."""
    from issuemine.db import open_db

    return open_db(db, must_exist=reads)


def catalog(extra: Sequence[Path] | None = None) -> dict[str, Converter]:
    paths = default_catalog_paths() + list(extra or [])
    return load_catalog(paths)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


ReportFormatOption = typer.Option("md", "--format", help="md, csv or json.")


def check_report_format(value: str, allowed: tuple[str, ...] = ("md", "csv", "json")) -> str:
    if value not in allowed:
        raise IssuemineError(f"--format {value!r}: choose {', '.join(allowed[:-1])} or {allowed[-1]}")
    return value


def print_csv(rows: list[dict[str, Any]], missing: Any = "") -> None:
    """Rows of dicts as CSV on standard output, with the union of their keys as columns."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(dict.fromkeys(k for r in rows for k in r)), restval=missing)
    writer.writeheader()
    writer.writerows(rows)
    sys.stdout.write(buffer.getvalue())


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A table that never truncates: identifiers and numbers keep their full width; prose columns
    (values with spaces) take the rest of the line and wrap at words instead of ending in "…"."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    tab = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        values = [row[i] for row in cells if i < len(row)]
        widest = max((len(v) for v in values), default=0)
        prose = any(" " in v for v in values) and widest > 24
        if prose:
            tab.add_column(col, justify="left", overflow="fold", ratio=1, min_width=12)
            continue
        numeric = bool(values) and all(v.replace(".", "", 1).lstrip("-").isdigit() or not v for v in values)
        width = min(max([widest, *(len(w) for w in col.split())]), 40)
        tab.add_column(col, justify="right" if numeric and i else "left", no_wrap=True, min_width=width)
    for row in cells:
        tab.add_row(*row)
    return tab


def markdown_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A titled Markdown table: what ``--format md`` promises (a paper's or an issue's text, not box drawing)."""
    from issuemine.markdown import table as markdown

    return markdown(columns, rows, title)


def print_markdown(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    sys.stdout.write(markdown_table(title, columns, rows) + "\n")


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def token_from(option: str | None) -> str | None:
    return option or os.environ.get("GITHUB_TOKEN") or None
