"""Reading record files: CSV, a JSON array, or JSON Lines, each record with where it came from."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from issuemine.errors import IssuemineError


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, or record number in a JSON array; record) in file order.

    A file that is not valid JSON fails with the line, so nothing is half-read unnoticed.
    """
    if not path.exists():
        raise IssuemineError(f"file not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        if path.suffix.lower() == ".csv":
            yield from enumerate(csv.DictReader(fh), start=2)
            return
        text = fh.read()
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
