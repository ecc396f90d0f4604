"""Choosing what to analyze: the labeled sample and its final labels."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from issuemine.db import Database
from issuemine.db.labels import final_labels, has_finished_labels, labeled_samples
from issuemine.domain.converters import Converter
from issuemine.domain.taxonomy import Taxonomy
from issuemine.errors import IssuemineError

ALL_LABELED = "all labeled issues"


def choose_sample(db: Database, sample: str | None) -> str | None:
    """The sample to analyze: the one named, else the only one with labels, else (labels imported
    without a sample) every labeled issue, as ``None``."""
    if sample:
        return sample
    found = labeled_samples(db)
    if len(found) == 1:
        return found[0]
    if found:
        choices = " ".join(f"--sample {name}" for name in found)
        raise IssuemineError(f"several samples have labels; choose one: {choices}")
    if has_finished_labels(db):
        return None  # `labels import FILE --rater R` without --sample: analyze what was imported
    raise IssuemineError("nothing labeled yet: import labels (`issuemine labels import FILE`) or label a sample")


def load_final(
    db: Database, taxonomy: Taxonomy, sample: str | None, catalog: dict[str, Converter], converters: Sequence[str] = ()
) -> tuple[str | None, pd.DataFrame]:
    """The sample chosen (``None``: every labeled issue) and its final labels."""
    name = choose_sample(db, sample)
    repos = {c.repo: c.name for c in catalog.values()}
    final = final_labels(db, taxonomy, name, repos)
    if converters:
        unknown = set(converters) - set(final["converter"])
        if unknown:
            raise IssuemineError(f"{_what(name)} has no labeled issues of {', '.join(sorted(unknown))}")
        final = final[final["converter"].isin(converters)]
    if final.empty:
        raise IssuemineError(f"{_what(name)} has no final labels yet")
    return name, final


def _what(name: str | None) -> str:
    return f"sample {name!r}" if name else ALL_LABELED
