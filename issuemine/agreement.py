"""Inter-rater agreement per label dimension: Cohen's κ, Krippendorff's α, raw agreement.

Units are issues rated on the dimension by at least two raters. Cohen's κ (scikit-learn) is given
when exactly two raters rated the units; with more raters, κ is given per pair and Krippendorff's
α (nominal, the ``krippendorff`` package) summarizes them all. When every rating falls in one
category, κ and α are 0/0; we report 1.0 when the raters agree on every unit, as a study would.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from issuemine.taxonomy import Taxonomy


@dataclass
class Agreement:
    dimension: str
    scope: str
    n: int
    raters: list[str]
    percent: float | None
    kappa: float | None
    alpha: float | None
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    pairwise: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if not a:
        return None
    if len(set(a) | set(b)) == 1:
        return 1.0
    value = float(cohen_kappa_score(a, b))
    return None if math.isnan(value) else value


def krippendorff_alpha(matrix: list[list[str | None]]) -> float | None:
    """Nominal α over a raters × units matrix of codes (None = not rated)."""
    import krippendorff

    values = sorted({v for row in matrix for v in row if v is not None})
    if not values:
        return None
    if len(values) == 1:
        return 1.0
    index = {v: i for i, v in enumerate(values)}
    data = np.array([[np.nan if v is None else index[v] for v in row] for row in matrix], dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def _measure(sub: Any, dimension: str, scope: str) -> Agreement | None:
    table = sub.pivot_table(index="issue_id", columns="rater", values="code", aggfunc="first")
    table = table[table.notna().sum(axis=1) >= 2]
    if table.empty:
        return None
    raters = [r for r in table.columns if table[r].notna().any()]
    table = table[raters]
    rows = [[None if isinstance(v, float) else v for v in row] for row in table.itertuples(index=False)]
    agree = sum(len({v for v in row if v is not None}) == 1 for row in rows)
    result = Agreement(dimension, scope, len(rows), [str(r) for r in raters], agree / len(rows), None, None)
    matrix = [[row[i] for row in rows] for i in range(len(raters))]
    result.alpha = krippendorff_alpha(matrix)
    for i, j in itertools.combinations(range(len(raters)), 2):
        pairs = [(str(row[i]), str(row[j])) for row in rows if row[i] is not None and row[j] is not None]
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        kappa = cohen_kappa(a, b)
        result.pairwise.append({"raters": [str(raters[i]), str(raters[j])], "n": len(pairs), "kappa": kappa})
        if len(raters) == 2:
            result.kappa = kappa
            confusion: dict[str, dict[str, int]] = {}
            for x, y in pairs:
                confusion.setdefault(x, {}).setdefault(y, 0)
                confusion[x][y] += 1
            result.confusion = confusion
    return result


def agreement(
    frame: Any, taxonomy: Taxonomy, dimensions: list[str] | None = None, by_converter: bool = True
) -> list[Agreement]:
    """Agreement per dimension over the ratings in ``frame`` (see ``labels.ratings_frame``)."""
    results: list[Agreement] = []
    for dimension in dimensions or taxonomy.label_dimensions():
        sub = frame[frame["dimension"] == dimension]
        if sub.empty:
            continue
        overall = _measure(sub, dimension, "all")
        if overall is None:
            continue
        results.append(overall)
        if by_converter and sub["converter"].nunique() > 1:
            for converter, part in sorted(sub.groupby("converter"), key=lambda kv: str(kv[0])):
                measured = _measure(part, dimension, str(converter))
                if measured is not None:
                    results.append(measured)
    return results
