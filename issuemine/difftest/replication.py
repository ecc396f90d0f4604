"""The study's Table 11 replicated: campaigns run under ``--protocol study`` (in a stack of the
study's time and in today's) beside the counts of the study's own artifact, per model size and in
total, with a chi-squared test of whether the outcome distributions differ, and, for each outcome
whose share moved by more than a threshold, the evidence that explains the move: which ONNX Runtime
kernels were missing then and now, how often the generator drew their operators, what conversion
failures say.

The artifact's counts (``data/artifact-table11.csv``, ``data/artifact-ort-kernels.csv``) were counted
from its per-model result files; ``data/PROVENANCE.md`` says how.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from issuemine.db import Database
from issuemine.difftest.campaign import campaign, models, outcome_under
from issuemine.difftest.report import message_pattern
from issuemine.errors import IssuemineError
from issuemine.markdown import table
from issuemine.resources import data_dir

# The artifact's columns, in Table 11's order, and the outcomes of ours each stands for. The
# artifact has no separate hang, worker crash or generation failure: those are its "other".
COLUMNS = ("success", "mismatch", "ort-failure", "conversion-failure", "other")
ARTIFACT_COLUMNS = {
    "match": "success",
    "mismatch": "mismatch",
    "ort_failure": "ort-failure",
    "conversion_failure": "conversion-failure",
    "other_failure": "other",
}
# The artifact's torch.onnx results record only whether find_mismatch raised, in export or in ONNX
# Runtime: its table has every such failure in one column (no conversion failures). Ours are
# compared the same way there.
ONE_FAILURE = frozenset({"torch.onnx"})
SHIFT = 0.08  # an outcome whose share moved by more than 8 points gets its evidence
KERNEL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\)")
# ONNX Runtime refusing a converted model: a type an operator does not take, an operator it does not know.
BAD_TYPE = re.compile(r"Type Error: Type '([^']+)' of input parameter \([^)]*\) of operator \((\w+)\)")
NO_OP = re.compile(r"In Node, \(\"[^\"]*\", (\w+), \"([^\"]*)\".*Error No Op")


def ort_refusal(error: str) -> str:
    """An ONNX Runtime failure other than a missing kernel, said briefly: the operator and the type
    it refused, the operator it does not know, else the error's first line with its numbers masked."""
    if found := BAD_TYPE.search(error):
        return f"invalid graph: {found.group(2)} does not take {found.group(1)}"
    if found := NO_OP.search(error):
        return f"invalid graph: no operator {found.group(1)} (domain '{found.group(2)}')"
    return message_pattern(error, 100)


def columns(converter: str) -> tuple[str, ...]:
    return ("success", "mismatch", "failure", "other") if converter in ONE_FAILURE else COLUMNS


def column(outcome: str, converter: str) -> str:
    if converter == "tf2onnx" and outcome == "framework-failure":
        # The artifact's tf2onnx results count every failure before ONNX Runtime as a conversion
        # failure, the model's own run (its oracle) included.
        return "conversion-failure"
    found = outcome if outcome in COLUMNS else "other"
    if converter in ONE_FAILURE and found in ("ort-failure", "conversion-failure"):
        return "failure"
    return found


def artifact_counts(path: Path | None = None) -> dict[str, dict[int, Counter[str]]]:
    """converter -> model size -> outcome counts, as the artifact's result files give them."""
    path = path or data_dir() / "artifact-table11.csv"
    found: dict[str, dict[int, Counter[str]]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                counts: Counter[str] = Counter()
                for theirs, ours in ARTIFACT_COLUMNS.items():
                    counts[column(ours, row["converter"])] += int(row[theirs])
                found.setdefault(row["converter"], {})[int(row["nodes"])] = counts
    except (OSError, KeyError, ValueError) as exc:
        raise IssuemineError(f"cannot read the artifact's Table 11 from {path}: {exc}") from exc
    return found


def artifact_kernels(path: Path | None = None) -> dict[str, Counter[str]]:
    """converter -> ONNX Runtime kernel (``ArgMax(13)``) -> models that failed for want of it."""
    path = path or data_dir() / "artifact-ort-kernels.csv"
    found: dict[str, Counter[str]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                found.setdefault(row["converter"], Counter())[row["kernel"]] += int(row["models"])
    except (OSError, KeyError, ValueError) as exc:
        raise IssuemineError(f"cannot read the artifact's kernels from {path}: {exc}") from exc
    return found


@dataclass
class Side:
    """One column group of the replication: the artifact, or one campaign."""

    name: str
    by_size: dict[int, Counter[str]] = field(default_factory=dict)
    kernels: Counter[str] = field(default_factory=Counter)  # models failing for want of each kernel
    operators: Counter[str] = field(default_factory=Counter)  # converted models containing each ONNX operator
    errors: Counter[str] = field(default_factory=Counter)  # conversion failures' messages
    others: Counter[str] = field(default_factory=Counter)  # what "other" holds: crashes, hangs...
    refusals: Counter[str] = field(default_factory=Counter)  # ONNX Runtime failures not for want of a kernel
    models: int = 0
    versions: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_size.values():
            total.update(counts)
        return total

    def share(self, outcome: str) -> float:
        total = self.total
        return total[outcome] / max(1, sum(total.values()))


def campaign_side(db: Database, campaign_id: int) -> tuple[str, Side]:
    info = campaign(db, campaign_id)
    name = f"{info.environment or 'today'} (campaign {campaign_id})"
    side = Side(name, versions=dict(info.versions or {}))
    for model in models(db, campaign_id):
        outcome = column(outcome_under(model, None), info.converter)
        if outcome == "other":
            side.others[model.outcome] += 1
        side.by_size.setdefault(model.nodes, Counter())[outcome] += 1
        side.models += 1
        side.operators.update(set((model.graph or {}).get("ops") or []))  # the converted model's ONNX operators
        if model.outcome == "ort-failure" and model.error:
            missing = {f"{op}({version})" for op, version in KERNEL.findall(model.error)}
            side.kernels.update(missing)
            if not missing:
                side.refusals[ort_refusal(model.error)] += 1
        if model.outcome == "conversion-failure" and model.error:
            side.errors[message_pattern(model.error, 100)] += 1
    return info.converter, side


def chi_squared(a: Counter[str], b: Counter[str], outcomes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Pearson's chi-squared test of whether two outcome distributions differ over ``outcomes``
    (default: every outcome either has); outcomes neither side has are left out, as a contingency
    table cannot hold an empty column."""
    from scipy.stats import chi2_contingency

    kept = [c for c in (outcomes or sorted(set(a) | set(b))) if a[c] + b[c] > 0]
    if len(kept) < 2 or not sum(a.values()) or not sum(b.values()):
        return {"chi2": None, "dof": 0, "p": None, "outcomes": kept}
    result = chi2_contingency([[a[c] for c in kept], [b[c] for c in kept]])
    return {"chi2": float(result[0]), "dof": int(result[2]), "p": float(result[1]), "outcomes": kept}


def _operator(kernel: str) -> str:
    return kernel.split("(")[0]


def evidence(outcome: str, side: Side, kernels_then: Counter[str], models_then: int) -> list[str]:
    """Why ``outcome``'s share differs between the artifact (its ``models_then`` models, of every size,
    missed ``kernels_then``) and ``side``, from what both recorded."""
    lines = []
    if outcome == "failure":  # export or ONNX Runtime, as the artifact counted them for torch.onnx
        return evidence("ort-failure", side, kernels_then, models_then) + evidence(
            "conversion-failure", side, kernels_then, models_then
        )
    if outcome == "ort-failure":
        for kernel, count in kernels_then.most_common(8):
            operator = _operator(kernel)
            lines.append(
                f"{kernel}: missing in {count} of {models_then} artifact models ({count / models_then:.1%}); "
                f"here missing in {side.kernels.get(kernel, 0)} of {side.models}, "
                f"and {side.operators.get(operator, 0)} converted models contain {operator}"
            )
        for kernel, count in side.kernels.most_common(5):
            if kernel not in kernels_then:
                lines.append(f"{kernel}: missing in {count} models here, not among the artifact's failures")
        for refusal, count in side.refusals.most_common(5):
            lines.append(f"{count} × {refusal}")
    elif outcome == "conversion-failure":
        for message, count in side.errors.most_common(5):
            lines.append(f"{count} × {message}")
        if not side.errors:
            lines.append("no conversion failed here")
    elif outcome == "mismatch":
        lines.append(
            "mismatches are decided by the protocol's policy on the artifact's inputs (one oracle input for "
            "torch.onnx, 10 random inputs for tf2onnx); rounding-sized ones are counted the same way"
        )
    elif outcome == "success":
        lines.append("follows from the failure and mismatch shares above")
    elif outcome == "other":
        lines.append(
            "; ".join(f"{count} × {what}" for what, count in side.others.most_common())
            + " (a worker that crashed, say with SIGSEGV in the converter or ONNX Runtime, or a model past its time)"
            if side.others
            else "none here"
        )
    return lines


def replication(db: Database, campaign_ids: list[int], artifact_path: Path | None = None) -> list[dict[str, Any]]:
    """Per converter: the artifact's Table 11 beside each campaign's, a chi-squared test per
    campaign against the artifact, and the evidence for every outcome that moved."""
    if not campaign_ids:
        raise IssuemineError("no campaign to compare: run `issuemine difftest run --protocol study` first")
    counts = artifact_counts(artifact_path)
    kernels = artifact_kernels(artifact_path.with_name("artifact-ort-kernels.csv") if artifact_path else None)
    grouped: dict[str, list[Side]] = {}
    for campaign_id in campaign_ids:
        converter, side = campaign_side(db, campaign_id)
        grouped.setdefault(converter, []).append(side)
    results = []
    for converter, sides in grouped.items():
        if converter not in counts:
            raise IssuemineError(f"the artifact has no Table 11 for {converter!r} (it has {', '.join(counts)})")
        sizes = sorted({n for side in sides for n in side.by_size})
        artifact = Side("artifact", {n: c for n, c in counts[converter].items() if n in sizes})
        artifact.models = sum(artifact.total.values())
        everything = sum(sum(c.values()) for c in counts[converter].values())  # the kernels count all sizes
        comparisons = []
        outcomes = columns(converter)
        for side in sides:
            moved = {
                outcome: (artifact.share(outcome), side.share(outcome))
                for outcome in outcomes
                if abs(artifact.share(outcome) - side.share(outcome)) > SHIFT
            }
            comparisons.append(
                {
                    "side": side.name,
                    "versions": side.versions,
                    "test": chi_squared(artifact.total, side.total, outcomes),
                    "moved": {
                        outcome: {
                            "artifact": then,
                            "here": now,
                            "evidence": evidence(outcome, side, kernels.get(converter, Counter()), everything),
                        }
                        for outcome, (then, now) in moved.items()
                    },
                }
            )
        rows = []
        for nodes in [*sizes, None]:  # None: every size
            row: dict[str, Any] = {"nodes": "all" if nodes is None else nodes}
            for side in [artifact, *sides]:
                cell = side.total if nodes is None else side.by_size.get(nodes, Counter())
                row[side.name] = {c: cell.get(c, 0) for c in outcomes} | {"models": sum(cell.values())}
            rows.append(row)
        results.append({"converter": converter, "outcomes": list(outcomes), "rows": rows, "comparisons": comparisons})
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    """The replication as Markdown: one table per converter and side, the test, the evidence."""
    short = {
        "success": "match",
        "mismatch": "mismatch",
        "ort-failure": "ORT fail",
        "conversion-failure": "conv. fail",
        "failure": "fail",
        "other": "other",
    }
    lines = []
    for result in results:
        lines.append(f"## {result['converter']}\n")
        if result["converter"] in ONE_FAILURE:
            lines.append("(fail: export or ONNX Runtime, one column as in the artifact's results)\n")
        outcomes = result["outcomes"]
        names = [name for name in result["rows"][0] if name != "nodes"]
        header = (
            ["nodes"] + [f"{name}: {short[c]}" for name in names for c in outcomes] + [f"{n}: models" for n in names]
        )
        rows = [
            [
                row["nodes"],
                *(row[name][c] for name in names for c in outcomes),
                *(row[name]["models"] for name in names),
            ]
            for row in result["rows"]
        ]
        lines.append(table(header, rows))
        for comparison in result["comparisons"]:
            test = comparison["test"]
            said = (
                f"χ² = {test['chi2']:.1f}, {test['dof']} degrees of freedom, p = {test['p']:.2g}"
                if test["chi2"] is not None
                else "no test (fewer than two outcomes)"
            )
            lines.append(f"**{comparison['side']}** against the artifact: {said}.\n")
            for outcome, moved in comparison["moved"].items():
                lines.append(f"- {outcome}: {moved['artifact']:.0%} in the artifact, {moved['here']:.0%} here")
                lines.extend(f"  - {line}" for line in moved["evidence"])
            lines.append("")
    return "\n".join(lines)
