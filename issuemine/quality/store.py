"""Quality measurements in the database, and the table a reader wants: per model × target, before → after."""

from __future__ import annotations

import platform
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.models import QualityRun
from issuemine.db.rows import upsert, utcnow
from issuemine.errors import IssuemineError
from issuemine.installed import versions as installed_versions
from issuemine.quality.measure import ORIGINAL, Metric

PACKAGES = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "tensorflow-cpu",
    "keras",
    "tf2onnx",
    "coremltools",
    "adversarial-robustness-toolbox",
    "scikit-learn",
    "numpy",
)


def versions() -> dict[str, str]:
    return {**installed_versions(PACKAGES), "platform": platform.platform()}


def save(db: Database, suite: str, metrics: list[Metric], params: dict[str, Any]) -> int:
    """Upsert one suite's measurements (keyed on suite, model, target, metric, setting)."""
    now, found = utcnow(), versions()
    rows = [{**m.__dict__, "suite": suite, "params": params, "versions": found, "measured_at": now} for m in metrics]
    with db.session() as session:
        upsert(session, QualityRun, rows, ["suite", "model", "target", "metric", "setting"])
    return len(rows)


def latest_suite(db: Database) -> str:
    with db.session() as session:
        suite = session.scalar(select(QualityRun.suite).order_by(QualityRun.measured_at.desc(), QualityRun.id.desc()))
    if suite is None:
        raise IssuemineError("no quality measurements yet: run `issuemine quality suite` or `issuemine quality model`")
    return str(suite)


def measurements(db: Database, suite: str | None = None) -> list[dict[str, Any]]:
    suite = suite or latest_suite(db)
    with db.session() as session:
        rows = session.scalars(select(QualityRun).where(QualityRun.suite == suite).order_by(QualityRun.id)).all()
        if not rows:
            raise IssuemineError(f"no quality measurements in suite {suite!r}")
        columns = [c.name for c in QualityRun.__table__.columns]
        return [{c: getattr(r, c) for c in columns} for r in rows]


# The report's columns: (heading, metric, setting); ratios are target / original of the same run.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("accuracy", "accuracy", ""),
    ("changed", "changed_predictions", ""),
    ("max |Δ|", "max_abs_diff", ""),
    ("p50 ms b1 t1", "latency_p50_ms", "batch=1,threads=1"),
    ("p95 ms b1 t1", "latency_p95_ms", "batch=1,threads=1"),
    ("p50 ms b32 t1", "latency_p50_ms", "batch=32,threads=1"),
    ("p50 ms b32 default", "latency_p50_ms", "batch=32,threads=default"),
    ("peak MB", "peak_memory_mb", "batch=32"),
    ("inference MB", "inference_memory_mb", "batch=32"),
    ("size KB", "size", ""),
)
# Robustness columns are made per attack and ε the suite measured (robustness_columns).
RATIOS = {"latency_p50_ms", "latency_p95_ms", "peak_memory_mb", "inference_memory_mb", "size"}


def robustness_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Per attack and ε measured: (heading, metric, setting) for the attack's success rate on the
    model, and how many examples fool only the original and only the converted model (the ICSME
    question: does conversion change what fools the model?)."""
    settings = sorted(
        {r["setting"] for r in rows if r["metric"] == "attack_success"},
        key=lambda s: (s.split(",")[0], float(s.rsplit("=", 1)[1]) if "=" in s else 0.0),
    )
    columns = []
    for setting in settings:
        parts = dict(p.split("=", 1) for p in setting.split(",") if "=" in p)
        name = f"{parts.get('attack', '?').upper()} ε={parts.get('eps', '?')}"
        columns += [
            (f"{name} success", "attack_success", setting),
            (f"{name} fools original only", "fools_original_only", setting),
            (f"{name} fools converted only", "fools_converted_only", setting),
        ]
    return columns


def report_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per model × target with the headline figures; latency, memory and size also as
    target/original ratios measured in the same run; the robustness of each attack and ε; a failed
    conversion keeps its error."""
    by_key: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
    order: list[tuple[str, str]] = []
    for r in rows:
        key = (r["model"], r["target"])
        if key not in by_key:
            by_key[key] = {}
            order.append(key)
        by_key[key][(r["metric"], r["setting"])] = r
    table = []
    for model, target in order:
        cells = by_key[(model, target)]
        base = by_key.get((model, ORIGINAL), {})
        any_row = next(iter(cells.values()))
        row: dict[str, Any] = {"model": model, "target": target, "route": any_row["route"]}
        for heading, metric, setting in (*COLUMNS, *robustness_columns(rows)):
            cell = cells.get((metric, setting))
            value = cell["value"] if cell else None
            if metric == "size" and value is not None:
                value = value / 1024
            row[heading] = value
            if metric in RATIOS and target != ORIGINAL and value is not None:
                reference = base.get((metric, setting))
                if reference and reference["value"]:
                    row[f"{heading} ×"] = (cell["value"] if cell else 0) / reference["value"]
            if cell and cell["low"] is not None:
                row[f"{heading} range"] = (cell["low"], cell["high"])
        converted = cells.get(("converted", ""))
        notes = [c["note"] for c in cells.values() if c["note"] and c["metric"] in ("converted", "accuracy")]
        row["note"] = "; ".join(dict.fromkeys(n for n in notes if not n.endswith("test inputs"))) or ""
        row["converted"] = target == ORIGINAL or bool(converted and converted["value"])
        table.append(row)
    return table
