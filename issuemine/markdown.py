"""Markdown text for reports: GitHub-flavoured tables that a paper, an issue or a terminal can take."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def table(columns: Sequence[Any], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """A Markdown table (with a ``### title`` heading when given); pipes and line breaks inside
    cells are escaped, so a message with a ``|`` keeps its row."""

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = [f"### {title}", ""] if title is not None else []
    lines.append("| " + " | ".join(cell(c) for c in columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
