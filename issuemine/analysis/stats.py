"""Statistics the study did not report: Wilson intervals and a test of converter differences."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (95% by default)."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Difference:
    """Whether two or more converters' distributions over categories differ."""

    test: str
    statistic: float | None
    p_value: float
    dof: int | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def converters_differ(counts: Any) -> Difference:
    """χ² test of independence on a categories × converters count table; Fisher's exact test
    for a 2×2 table or when an expected count is below 5 in a 2-column table (scipy)."""
    from scipy.stats import chi2_contingency, fisher_exact

    table = counts.loc[(counts.sum(axis=1) > 0), (counts.sum(axis=0) > 0)]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return Difference("none (one category or converter)", None, 1.0, None)
    chi2, p, dof, expected = chi2_contingency(table.values)
    if table.shape == (2, 2):
        _, p_exact = fisher_exact(table.values)
        return Difference("Fisher's exact", None, float(p_exact), None)
    return Difference(
        "chi-square" + (" (some expected counts < 5)" if (expected < 5).any() else ""), float(chi2), float(p), int(dof)
    )
