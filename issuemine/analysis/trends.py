"""Failures over time against ONNX opset releases: the study's Figure 6 and RQ3.

RQ3 protocol (study §5.2.3): for each opset release, its operator changes (added + updated) and the
failures opened from its release until the next one; opsets 2-7 are merged into one release (dated
at opset 2, changes summed); the first and the latest release are dropped; Spearman's ρ between the
two series. The cause-share variant uses the share of incompatibility and type-problem failures
among the failures of each window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from issuemine.analysis.opsets import Opset

MARK_CHANGES = 5  # releases drawn on Figure 6
STRUCTURAL = ("incompatibility", "type-problem")


def quarterly(final: pd.DataFrame) -> pd.DataFrame:
    """Cumulative failures opened per quarter per converter, all and incompatibility + type only."""
    dated = final.dropna(subset=["created_at"]).copy()
    if dated.empty:
        return pd.DataFrame(columns=["quarter", "converter", "all", "structural"])
    dated["quarter"] = dated["created_at"].dt.to_period("Q")
    dated["structural"] = dated["cause"].isin(STRUCTURAL)
    quarters = pd.period_range(dated["quarter"].min(), dated["quarter"].max(), freq="Q")
    frames = []
    for converter, part in dated.groupby("converter"):
        counts = part.groupby("quarter").agg(all=("issue_id", "size"), structural=("structural", "sum"))
        counts = counts.reindex(quarters, fill_value=0).cumsum()
        counts["converter"] = converter
        frames.append(counts.rename_axis("quarter").reset_index())
    return pd.concat(frames, ignore_index=True)


def releases(history: dict[int, Opset], merge: tuple[int, int] = (2, 7)) -> list[tuple[str, date, int]]:
    """(label, release date, operator changes) per release, with ``merge`` opsets as one."""
    out: list[tuple[str, date, int]] = []
    lo, hi = merge
    merged = [history[v] for v in sorted(history) if lo <= v <= hi and history[v].released]
    for version in sorted(history):
        opset = history[version]
        if opset.released is None or lo <= version <= hi:
            continue
        out.append((str(version), opset.released, opset.changes))
    if merged:
        out.append((f"{lo}-{hi}", merged[0].released, sum(o.changes for o in merged)))  # type: ignore[arg-type]
    return sorted(out, key=lambda r: r[1])


@dataclass
class RQ3:
    table: pd.DataFrame  # release, released, changes, failures, structural, share
    rho_all: float | None
    p_all: float | None
    rho_share: float | None
    p_share: float | None
    dated: int
    undated: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rho_all": self.rho_all,
            "p_all": self.p_all,
            "rho_share": self.rho_share,
            "p_share": self.p_share,
            "dated": self.dated,
            "undated": self.undated,
            "releases": self.table.assign(released=self.table["released"].astype(str)).to_dict(orient="records"),
        }


def rq3(final: pd.DataFrame, history: dict[int, Opset]) -> RQ3:
    from scipy.stats import spearmanr

    dated = final.dropna(subset=["created_at"])
    opened = dated["created_at"]
    structural_mask = dated["cause"].isin(STRUCTURAL)
    rel = releases(history)
    rows = []
    for i, (label, released, changes) in enumerate(rel):
        end = pd.Timestamp(rel[i + 1][1]) if i + 1 < len(rel) else pd.Timestamp.max
        in_window = (opened >= pd.Timestamp(released)) & (opened < end)
        failures = int(in_window.sum())
        structural = int((in_window & structural_mask).sum())
        rows.append(
            {
                "release": label,
                "released": released,
                "changes": changes,
                "failures": failures,
                "structural": structural,
                "share": structural / failures if failures else 0.0,
            }
        )
    table = pd.DataFrame(rows)
    used = table.iloc[1:-1]  # the first and the latest release are dropped

    def rho(column: str) -> tuple[float | None, float | None]:
        if len(used) < 3:
            return None, None
        result = spearmanr(used["changes"], used[column])
        return float(result.statistic), float(result.pvalue)

    rho_all, p_all = rho("failures")
    rho_share, p_share = rho("share")
    return RQ3(table, rho_all, p_all, rho_share, p_share, len(dated), len(final) - len(dated))
