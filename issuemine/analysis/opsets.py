"""ONNX opset history: operators added and updated per opset, and release dates.

The study's history (``data/onnx-opset-history.json``, opsets 1-18) is the reference for
reproducing RQ3. ``from_onnx_defs`` computes the same from the installed ``onnx`` package's
schemas (every opset it knows, with no release dates), and ``compare`` reports the differences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from issuemine.errors import IssuemineError
from issuemine.resources import data_dir


@dataclass
class Opset:
    version: int
    added: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    released: date | None = None

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.updated)


def load_history(path: Path | None = None) -> dict[int, Opset]:
    path = path or data_dir() / "onnx-opset-history.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IssuemineError(f"opset history not found: {path}") from None
    return {
        int(v): Opset(
            int(v),
            set(e.get("added", [])),
            set(e.get("updated", [])),
            date.fromisoformat(e["date"]) if e.get("date") else None,
        )
        for v, e in raw.items()
    }


def from_onnx_defs() -> dict[int, Opset]:
    """Added/updated operators per opset of the default (ai.onnx) domain, from ``onnx.defs``."""
    from onnx import defs

    schemas = [s for s in defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx")]
    history: dict[int, Opset] = {}
    seen: set[str] = set()
    for schema in sorted(schemas, key=lambda s: (s.since_version, s.name)):
        opset = history.setdefault(schema.since_version, Opset(schema.since_version))
        (opset.updated if schema.name in seen else opset.added).add(schema.name)
        seen.add(schema.name)
    return history


@dataclass
class Difference:
    version: int
    only_reference_added: list[str]
    only_computed_added: list[str]
    only_reference_updated: list[str]
    only_computed_updated: list[str]


def compare(reference: dict[int, Opset], computed: dict[int, Opset]) -> list[Difference]:
    """Per opset of the reference, the operators the two histories disagree on."""
    diffs = []
    for version, ref in sorted(reference.items()):
        mine = computed.get(version, Opset(version))
        diff = Difference(
            version,
            sorted(ref.added - mine.added),
            sorted(mine.added - ref.added),
            sorted(ref.updated - mine.updated),
            sorted(mine.updated - ref.updated),
        )
        if any(
            (
                diff.only_reference_added,
                diff.only_computed_added,
                diff.only_reference_updated,
                diff.only_computed_updated,
            )
        ):
            diffs.append(diff)
    return diffs
