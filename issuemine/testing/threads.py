"""Fixture issue threads with the answers expected of them (the format of tests/repro/threads/).

A file is TOML front matter between ``+++`` lines, then the body; a line ``<!-- comment -->``
starts a comment. The tests check extraction against the answers; the thread benchmark also
re-runs the runnable ones."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMMENT = "<!-- comment -->"


@dataclass
class Thread:
    name: str
    expected: dict[str, Any]
    posts: list[tuple[str, str]]  # (post id, markdown), as extraction takes them

    @property
    def converter(self) -> str:
        return str(self.expected["converter"])


def load_thread(path: Path) -> Thread:
    text = path.read_text(encoding="utf-8")
    if not text.startswith("+++"):
        raise ValueError(f"{path}: no +++ front matter")
    _, front, body = text.split("+++", 2)
    parts = body.lstrip("\n").split(COMMENT)
    posts = [("body", parts[0])] + [(f"comment:{i}", part.lstrip("\n")) for i, part in enumerate(parts[1:], 1)]
    return Thread(path.stem, tomllib.loads(front), posts)


def load_threads(folder: Path) -> list[Thread]:
    return [load_thread(p) for p in sorted(folder.glob("*.md")) if p.name != "README.md"]
