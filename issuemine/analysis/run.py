"""Choosing what to analyze and writing the tables out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from issuemine.analysis import tables
from issuemine.catalog import Converter
from issuemine.db import Database
from issuemine.db.models import Assignment, Rating, Sample, SampleMember
from issuemine.errors import IssuemineError
from issuemine.labels import final_labels
from issuemine.taxonomy import Taxonomy

TableFn = Callable[[pd.DataFrame, Taxonomy], pd.DataFrame]
TABLES: dict[str, TableFn] = {
    "stages": tables.stage_table,
    "symptoms": tables.symptom_table,
    "causes": tables.cause_table,
    "cause-subtypes": tables.subtype_table,
    "cause-by-symptom": tables.cause_by_symptom,
}
FORMATS = ("md", "csv", "latex", "json")


def labeled_samples(db: Database) -> list[str]:
    """Samples whose issues carry labels (from their assigned raters, where there is a plan)."""
    with db.session() as session:
        return sorted(
            session.scalars(
                select(Sample.name)
                .join(SampleMember, SampleMember.sample_id == Sample.id)
                .join(Rating, Rating.issue_id == SampleMember.issue_id)
                .join(
                    Assignment,
                    (Assignment.sample_id == Sample.id)
                    & (Assignment.issue_id == Rating.issue_id)
                    & (Assignment.rater_id == Rating.rater_id),
                    isouter=True,
                )
                .distinct()
            )
        )


def assigned_samples(db: Database) -> list[str]:
    """Samples with rater assignments: planned, imported with raters, or labeled in sessions. Only
    these say who was meant to label what, which agreement needs."""
    with db.session() as session:
        return sorted(
            session.scalars(select(Sample.name).join(Assignment, Assignment.sample_id == Sample.id).distinct())
        )


def choose_sample(db: Database, sample: str | None) -> str:
    if sample:
        return sample
    found = labeled_samples(db)
    if len(found) == 1:
        return found[0]
    if not found:
        raise IssuemineError("no labeled sample to analyze: import labels (`issuemine labels import`) or label one")
    raise IssuemineError(f"several samples have labels ({', '.join(found)}): choose one with --sample")


def load_final(
    db: Database, taxonomy: Taxonomy, sample: str | None, catalog: dict[str, Converter], converters: Sequence[str] = ()
) -> tuple[str, pd.DataFrame]:
    name = choose_sample(db, sample)
    repos = {c.repo: c.name for c in catalog.values()}
    final = final_labels(db, taxonomy, name, repos)
    if converters:
        unknown = set(converters) - set(final["converter"])
        if unknown:
            raise IssuemineError(f"sample {name!r} has no labeled issues of {', '.join(sorted(unknown))}")
        final = final[final["converter"].isin(converters)]
    if final.empty:
        raise IssuemineError(f"sample {name!r} has no final labels yet")
    return name, final


def write_tables(final: pd.DataFrame, taxonomy: Taxonomy, out: Path) -> list[Path]:
    """Every table in every format under ``out/tables``; returns the files written."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fn in TABLES.items():
        table = fn(final, taxonomy)
        for fmt in FORMATS:
            path = folder / f"{name}.{'tex' if fmt == 'latex' else fmt}"
            path.write_text(tables.render(table, fmt) + "\n", encoding="utf-8")
            written.append(path)
    return written
