"""Choosing what to analyze: the labeled sample and its final labels."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from issuemine.db import Database
from issuemine.db.labels import final_labels, labeled_samples
from issuemine.domain.converters import Converter
from issuemine.domain.taxonomy import Taxonomy
from issuemine.errors import IssuemineError


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
