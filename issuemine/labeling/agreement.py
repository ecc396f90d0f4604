"""Inter-rater agreement per label dimension: Cohen's κ, Krippendorff's α, raw agreement.

Units are issues rated on the dimension by at least two raters. Cohen's κ is given
when exactly two raters rated the units; with more raters, κ is given per pair and Krippendorff's
α (nominal, the ``krippendorff`` package) summarizes them all. When every rating falls in one
category, κ and α are 0/0; we report 1.0 when the raters agree on every unit, as a study would.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from issuemine.domain.taxonomy import Taxonomy


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


def _kappa(confusion: np.ndarray) -> float | None:
    """Cohen's κ from a k×k confusion matrix of two raters' codes."""
    n = confusion.sum()
    if n == 0:
        return None
    observed = np.trace(confusion) / n
    expected = float(confusion.sum(axis=1) @ confusion.sum(axis=0)) / (n * n)
    if expected == 1.0:  # one category only: 0/0; perfect agreement by convention
        return 1.0 if observed == 1.0 else None
    return float((observed - expected) / (1 - expected))


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's κ of two raters' paired codes (the same value as scikit-learn's cohen_kappa_score).

    Computed here from the confusion matrix because importing sklearn.metrics alone takes 1.5 s,
    most of an `agree` run; tests check both agree.
    """
    categories = sorted(set(a) | set(b))
    index = {c: i for i, c in enumerate(categories)}
    confusion = np.zeros((len(categories), len(categories)), dtype=np.int64)
    np.add.at(confusion, ([index[x] for x in a], [index[y] for y in b]), 1)
    return _kappa(confusion)


def krippendorff_alpha(matrix: np.ndarray, categories: int) -> float | None:
    """Nominal α over a raters × units matrix of category indices (-1 = not rated)."""
    import krippendorff

    if categories == 0:
        return None
    present = np.unique(matrix[matrix >= 0])
    if len(present) == 1:
        return 1.0
    data = np.where(matrix >= 0, matrix, np.nan).astype(float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def _measure(sub: Any, dimension: str, scope: str) -> Agreement | None:
    import pandas as pd

    issues, issue_keys = pd.factorize(sub["issue_id"])
    raters, rater_names = pd.factorize(sub["rater"], sort=True)
    codes, categories = pd.factorize(sub["code"], sort=True)
    matrix = np.full((len(issue_keys), len(rater_names)), -1, dtype=np.int64)
    matrix[issues, raters] = codes
    matrix = matrix[(matrix >= 0).sum(axis=1) >= 2]
    if len(matrix) == 0:
        return None
    used = (matrix >= 0).any(axis=0)
    matrix, names = matrix[:, used], [str(r) for r, u in zip(rater_names, used, strict=True) if u]
    rated = matrix >= 0
    high = np.where(rated, matrix, -1).max(axis=1)
    low = np.where(rated, matrix, np.iinfo(np.int64).max).min(axis=1)
    result = Agreement(dimension, scope, len(matrix), names, float((high == low).mean()), None, None)
    result.alpha = krippendorff_alpha(matrix.T, len(categories))
    k = len(categories)
    for i, j in itertools.combinations(range(len(names)), 2):
        both = rated[:, i] & rated[:, j]
        pairs = matrix[both][:, [i, j]]
        confusion = np.bincount(pairs[:, 0] * k + pairs[:, 1], minlength=k * k).reshape(k, k)
        kappa = _kappa(confusion)
        result.pairwise.append({"raters": [names[i], names[j]], "n": int(both.sum()), "kappa": kappa})
        if len(names) == 2:
            result.kappa = kappa
            result.confusion = {
                str(categories[x]): {str(categories[y]): int(confusion[x, y]) for y in range(k) if confusion[x, y]}
                for x in range(k)
                if confusion[x].any()
            }
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
