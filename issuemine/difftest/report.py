"""What differential-testing campaigns found, for ``difftest report`` and the analysis report:
Table 11 (outcomes), Table 12 (operator sequences of mismatched vs correct models), outcome shares
by model size, the most frequent failure messages grouped, and the localized diverging operators."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.models import DifftestCampaign, DifftestModel
from issuemine.difftest.campaign import campaign, models, outcome_under, policy_name, rounding_survivors, table_11
from issuemine.difftest.execute import TABLE_11
from issuemine.difftest.sequences import OpGraph, PartIndex, load_onnx_graph, table_12
from issuemine.domain.tracebacks import TB_EXCEPTION
from issuemine.errors import IssuemineError

FAILURES = ("conversion-failure", "ort-failure", "framework-failure", "generation-failure", "worker-crash", "timeout")


def campaign_ids(db: Database, only: int | None = None) -> list[int]:
    if only is not None:
        return [campaign(db, only).id]
    with db.session() as session:
        return list(session.scalars(select(DifftestCampaign.id).order_by(DifftestCampaign.id)))


def sequences(db: Database, campaign_id: int, policy: str | None = None, top: int = 15) -> dict[str, Any]:
    """Table 12 for one campaign: graphs of the models that mismatch vs those that match under
    ``policy`` (default: the campaign's), with the reduced mismatch-only sequences most mismatched
    models carry."""
    info = campaign(db, campaign_id)
    mismatched: list[OpGraph] = []
    correct: list[OpGraph] = []
    for model in models(db, campaign_id):
        if model.graph is None:
            continue
        verdict = outcome_under(model, policy)
        if verdict in ("mismatch", "success"):
            (mismatched if verdict == "mismatch" else correct).append(OpGraph.from_record(model.graph))
    table = table_12(mismatched, correct)
    data = table.as_dict()
    data.pop("carried")
    data["reduced_only_mismatched"] = len(table.reduced_only_mismatched)
    data["top_reduced"] = [{"sequence": " → ".join(s), "models": n} for s, n in list(table.carried.items())[:top]]
    data["targets"] = [list(s) for s in table.reduced_only_mismatched]
    return {"campaign": campaign_id, "converter": info.converter, "exporter": info.exporter, **data}


_NOISE = (
    (re.compile(r"0x[0-9a-fA-F]+"), "0x…"),
    (re.compile(r"(/[\w.\-]+)+\.(py|onnx|cc|h|cpp)(:\d+)?"), "<file>"),
    (re.compile(r"\b(v|n|node_|onnx::\w+_)\d+(_\d+)?\b"), "<name>"),
    (re.compile(r"\d+(\.\d+)?(e-?\d+)?"), "N"),
    # Printed shapes and arrays, whatever their length: the same error at rank 3 and rank 4 is one group.
    (re.compile(r"\[[N,\s.\-…]*\]"), "[…]"),
    (re.compile(r"\((?:\s*-?N\s*,)+\s*(?:-?N\s*)?\)"), "(…)"),
    (re.compile(r"\s+"), " "),
)


def message_pattern(error: str, width: int = 160) -> str:
    """An error's first meaningful line with numbers, addresses, paths and generated tensor names
    replaced, so that the same failure on different models groups together."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    head = next((line for line in lines if not line.startswith(("Traceback", "File ", "^"))), lines[0] if lines else "")
    for pattern, replacement in _NOISE:
        head = pattern.sub(replacement, head)
    return head[:width]


def error_groups(db: Database, ids: list[int], top: int = 10) -> list[dict[str, Any]]:
    """The most frequent failure messages per campaign, grouped by pattern, with one model to look at."""
    rows = []
    for campaign_id in ids:
        info = campaign(db, campaign_id)
        groups: dict[tuple[str, str], list[DifftestModel]] = {}
        for model in models(db, campaign_id):
            if model.outcome in FAILURES and model.error:
                groups.setdefault((model.outcome, message_pattern(model.error)), []).append(model)
        ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))[:top]
        for (outcome, pattern), found in ranked:
            rows.append(
                {
                    "campaign": campaign_id,
                    "converter": info.converter,
                    "exporter": info.exporter,
                    "outcome": outcome,
                    "stage": Counter(m.stage for m in found if m.stage).most_common(1)[0][0]
                    if any(m.stage for m in found)
                    else "",
                    "models": len(found),
                    "message": pattern,
                    "example": found[0].id,
                }
            )
    return rows


def localized(db: Database, ids: list[int]) -> list[dict[str, Any]]:
    """Every localized model of these campaigns: its first diverging operator and the reduced model."""
    rows = []
    for campaign_id in ids:
        info = campaign(db, campaign_id)
        for model in models(db, campaign_id):
            if model.localized:
                found = model.localized
                rows.append(
                    {
                        "campaign": campaign_id,
                        "converter": info.converter,
                        "exporter": info.exporter,
                        "model": model.id,
                        "operator": found.get("op_type") or "",
                        "node": found.get("node") or "",
                        "max_abs_diff": found.get("max_abs_diff"),
                        "reduced_nodes": found.get("reduced_nodes"),
                        "reduced": found.get("reduced") or "",
                    }
                )
    return rows


def real_architectures(db: Database, ids: list[int], policy: str | None = None) -> list[dict[str, Any]]:
    """The zoo campaigns' models (``difftest run --models zoo``): per architecture and setup, the
    outcome (under ``policy``, default the campaign's), max |Δ|, the policies it is within, and a
    failure's message in brief."""
    from issuemine.difftest.zoo import CATALOG

    rows = []
    for campaign_id in ids:
        info = campaign(db, campaign_id)
        if not info.architectures:
            continue
        for model in models(db, campaign_id):
            name = model.architecture or info.architectures[model.nodes - 1]
            arch = CATALOG.get(name)
            within = [p for p, ok in sorted((model.policies or {}).items()) if ok]
            rows.append(
                {
                    "architecture": name,
                    "family": arch.family if arch else "",
                    "campaign": campaign_id,
                    "setup": f"{info.converter} {info.exporter}" if info.converter != info.exporter else info.converter,
                    "outcome": outcome_under(model, policy),
                    "max_abs_diff": model.max_abs_diff,
                    "within": within,
                    "error": _brief(model.error),
                    "model": model.id,
                }
            )
    return rows


def _brief(error: str | None, width: int = 160) -> str:
    """A failure in brief: the exception's line (the last that names one), paths left out."""
    if not error:
        return ""
    # The exception's own line (as tracebacks are read): a message that prints arrays ends in a row
    # of numbers, not in it.
    named = [m.group(0) for m in TB_EXCEPTION.finditer(error)]
    chosen = named[-1] if named else error.strip().splitlines()[-1]
    return re.sub(r"(/[\w.\-]+)+/", "", chosen)[:width]


def shares(db: Database, ids: list[int], policy: str | None = None) -> list[dict[str, Any]]:
    """Per campaign and size, the share of models in each of Table 11's outcomes (the rest: other)."""
    rows = []
    for row in table_11(db, ids, policy):
        if not isinstance(row["nodes"], int) or not row["models"]:  # "all", or a zoo campaign's architecture
            continue
        label = f"{row['converter']} ({row['exporter']})" if row["converter"] != row["exporter"] else row["converter"]
        share = {o: row.get(o, 0) / row["models"] for o in TABLE_11}
        rows.append({"setup": label, "nodes": row["nodes"], **share, "other": 1 - sum(share.values())})
    return rows


def summary(db: Database, only: int | None = None, policy: str | None = None) -> dict[str, Any]:
    if policy is not None:
        policy = policy_name(policy)
    ids = campaign_ids(db, only)
    return {
        "table_11": table_11(db, ids, policy),
        "rounding": rounding_survivors(db, ids),
        "table_12": [sequences(db, i, policy) for i in ids],
        "errors": error_groups(db, ids),
        "localized": localized(db, ids),
        "shares": shares(db, ids, policy),
        "real_architectures": real_architectures(db, ids, policy),
    }


def coverage_of(
    db: Database, folder: Path, campaign_id: int | None = None, policy: str | None = None
) -> dict[str, Any]:
    """The share of the campaigns' reduced mismatch-only sequences that the ONNX models under
    ``folder`` contain (along one of their paths): the study's proposed test-suite coverage metric."""
    files = sorted(folder.rglob("*.onnx"))
    if not files:
        raise IssuemineError(f"{folder}: no .onnx files (searched its subfolders too)")
    graphs, unreadable = [], []
    for path in files:
        try:
            graphs.append(load_onnx_graph(path))
        except Exception as exc:  # a corrupt or non-ONNX file: say which, count the rest
            unreadable.append(f"{path}: {str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}")
    ids = campaign_ids(db, campaign_id)
    if not ids:
        raise IssuemineError("no campaign yet: run `issuemine difftest run` (the sequences to cover come from it)")
    per_campaign = []
    index = PartIndex(graphs)
    for i in ids:
        found = sequences(db, i, policy, top=10**9)
        targets = [tuple(t) for t in found["targets"]]
        carried = {t["sequence"]: t["models"] for t in found["top_reduced"]}
        covered = [t for t in targets if t in index]
        missing = sorted((t for t in targets if t not in index), key=lambda t: -carried.get(" → ".join(t), 0))
        per_campaign.append(
            {
                "campaign": i,
                "converter": found["converter"],
                "exporter": found["exporter"],
                "sequences": len(targets),
                "covered": len(covered),
                "share": len(covered) / len(targets) if targets else None,
                "uncovered_most_carried": [
                    {"sequence": " → ".join(t), "models": carried.get(" → ".join(t), 0)} for t in missing[:10]
                ],
            }
        )
    return {"folder": str(folder), "models": len(graphs), "unreadable": unreadable, "campaigns": per_campaign}
