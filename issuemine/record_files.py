"""Reading record files: CSV, a JSON array, or JSON Lines, each record with where it came from.

Spreadsheets export in several encodings: UTF-8 with a BOM and Windows-1252 are read too."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from issuemine.errors import IssuemineError


def read_text(path: Path) -> str:
    """A record file's text: UTF-8 (with or without a BOM, as Excel writes it), else Windows-1252 (older
    spreadsheet exports); a binary file or any other encoding is refused in one line."""
    if not path.exists():
        raise IssuemineError(f"file not found: {path}")
    if path.is_dir():
        raise IssuemineError(f"{path} is a directory; expected a file (CSV, JSON or JSON Lines)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IssuemineError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"\x00" in data[:65536]:
        raise IssuemineError(f"{path} is not a text file (binary data); expected CSV, JSON or JSON Lines")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise IssuemineError(f"{path}: neither UTF-8 nor Windows-1252 text; save it as UTF-8") from None


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, or record number in a JSON array; record) in file order.

    A file that is not valid JSON fails with the line, so nothing is half-read unnoticed.
    """
    text = read_text(path)
    if path.suffix.lower() == ".csv":
        yield from csv_rows(text, path)
        return
    if text.lstrip().startswith("["):
        yield from enumerate(_json(text, str(path)), start=1)
        return
    for line, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            yield line, _json(raw, f"{path}, line {line}")


def _json(text: str, where: str) -> Any:
    """JSON, refused in one line when it is not valid, nested too deeply or has a number too long
    to read (Python's limit on digits)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IssuemineError(f"{where}: not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise IssuemineError(f"{where}: JSON nested too deeply to read") from None
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise IssuemineError(f"{where}: unreadable JSON value: {exc}") from None


def csv_rows(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of a CSV text with a header; a row with more or fewer fields than the header, or
    a field beyond the csv module's limit (128 KB), is refused with its line."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    line = 1
    try:
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise IssuemineError(
                    f"{path}, line {line}: more fields than the header's {len(reader.fieldnames or [])}"
                )
            if any(value is None for value in row.values()):
                raise IssuemineError(
                    f"{path}, line {line}: fewer fields than the header's {len(reader.fieldnames or [])}"
                )
            yield line, row
    except csv.Error as exc:
        raise IssuemineError(f"{path}, line {line + 1}: not readable as CSV: {exc}") from None


def csv_header(text: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        return []
