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
    data = path.read_bytes()
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
        yield from enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2)
        return
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IssuemineError(f"{path}: not valid JSON: {exc.msg}") from None
        yield from enumerate(records, start=1)
        return
    for line, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            try:
                yield line, json.loads(raw)
            except json.JSONDecodeError as exc:
                raise IssuemineError(f"{path}, line {line}: not valid JSON: {exc.msg}") from None
