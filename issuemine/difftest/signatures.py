"""Distinct bugs, not mismatched models: failures and mismatches grouped into signatures.

Fuzzing work counts distinct bugs (NNSmith reported 72), not failing models: fifty models that
all break on the same exporter symbolic are one report. A signature is

- for a failure: its outcome, the stage and the error's normalized first line (numbers, paths and
  generated names masked, as in the grouped failures);
- for a mismatch: the first diverging operator the localizer found, with its ONNX node type, its
  scalar attributes and its inputs' types; a mismatch not localized yet is grouped as such, and
  one the noise-aware oracle calls rounding is left out (it is not a bug).

Each signature has its count, an example model and, for a localized mismatch, the reduced model
(the bug report's attachment), and the mined issues of the converter's repository that mention its
operator ("already reported?"). :func:`bug_report` writes one as Markdown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select

from issuemine.db import Database
from issuemine.db.models import DifftestModel, Issue, Repository
from issuemine.difftest.campaign import campaign, models, outcome_under
from issuemine.difftest.execute import NOISE_AWARE
from issuemine.difftest.report import FAILURES, campaign_ids, message_pattern
from issuemine.errors import IssuemineError

# Operator names in an error message: torch's `aten::name` and ONNX operator types in quotes.
OPERATOR_IN_MESSAGE = re.compile(r"aten::(\w+)|'([A-Z][A-Za-z]+)'")


@dataclass
class Signature:
    number: int
    campaign: int
    converter: str
    exporter: str
    kind: str  # the outcome
    where: str  # the stage, or the diverging operator
    detail: str  # the error pattern, or the ONNX node, attributes and input types
    models: list[int] = field(default_factory=list)
    reduced: str = ""
    max_abs_diff: float | None = None
    operators: list[str] = field(default_factory=list)  # what to look for in mined issues
    mentions: list[dict[str, Any]] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "signature": self.number,
            "campaign": self.campaign,
            "converter": self.converter,
            "exporter": self.exporter,
            "kind": self.kind,
            "where": self.where,
            "detail": self.detail,
            "models": len(self.models),
            "example": self.models[0] if self.models else None,
            "reduced": self.reduced,
            "already_reported": [f"{m['repo']}#{m['number']}" for m in self.mentions],
        }


def _key(model: DifftestModel, verdict: str) -> tuple[str, str, str, list[str]] | None:
    """(kind, where, detail, operators) of one model, or None when it is no bug (a success, rounding)."""
    if model.outcome in FAILURES and model.error:
        named = [a or b for a, b in OPERATOR_IN_MESSAGE.findall(model.error)][:3]
        return model.outcome, model.stage or "", message_pattern(model.error), named
    if verdict != "mismatch" or (model.policies or {}).get(NOISE_AWARE) is True:
        return None
    found = model.localized or {}
    if not found.get("op_type"):
        return "mismatch", "not localized", "run `difftest localize --all` to group it", []
    node = str(found.get("node") or "").split(" ")[0]
    # Input types without their ranks: the same symbolic broken at rank 2 and rank 3 is one bug.
    types = [str(t).split("[")[0] for t in found.get("input_types") or []]
    detail = f"ONNX {node or '?'}; {', '.join(found.get('attributes') or []) or 'no attributes'}; inputs "
    detail += ", ".join(types) or "?"
    return "mismatch", str(found["op_type"]), detail, [str(found["op_type"]), *([node] if node else [])]


def signatures(db: Database, only: int | None = None, policy: str | None = None) -> list[Signature]:
    """Every campaign's signatures, the most frequent first, numbered for ``--signature N``."""
    found: dict[tuple[Any, ...], Signature] = {}
    for campaign_id in campaign_ids(db, only):
        info = campaign(db, campaign_id)
        for model in models(db, campaign_id):
            key = _key(model, outcome_under(model, policy))
            if key is None:
                continue
            kind, where, detail, operators = key
            signature = found.setdefault(
                (campaign_id, kind, where, detail),
                Signature(0, campaign_id, info.converter, info.exporter, kind, where, detail, operators=operators),
            )
            signature.models.append(model.id)
            localized = model.localized or {}
            if not signature.reduced and localized.get("reduced"):
                signature.reduced = str(localized["reduced"])
            if model.max_abs_diff is not None:
                signature.max_abs_diff = max(signature.max_abs_diff or 0.0, model.max_abs_diff)
    ranked = sorted(found.values(), key=lambda s: (s.campaign, -len(s.models), s.kind, s.where, s.detail))
    for number, signature in enumerate(ranked, start=1):
        signature.number = number
        signature.mentions = mentions(db, _repo_of(signature.converter), signature.operators)
    return ranked


def _repo_of(converter: str) -> str | None:
    from issuemine.domain.converters import load_catalog

    found = load_catalog().get(converter)
    return found.repo if found is not None else None


def mentions(db: Database, repo: str | None, operators: list[str], limit: int = 5) -> list[dict[str, Any]]:
    """Mined issues of ``repo`` whose title or body names one of ``operators`` as a word."""
    names = [o for o in dict.fromkeys(operators) if len(o) >= 3]
    if not repo or not names:
        return []
    with db.session() as session:
        rows = session.execute(
            select(Repository.full_name, Issue.number, Issue.title, Issue.body, Issue.html_url)
            .join(Repository, Repository.id == Issue.repository_id)
            .where(
                Repository.full_name == repo,
                or_(*[Issue.title.contains(n) for n in names], *[Issue.body.contains(n) for n in names]),
            )
            .order_by(Issue.number)
        ).all()
    words = [re.compile(rf"(?<![\w]){re.escape(n)}(?![\w])") for n in names]
    hits = []
    for full_name, number, title, body, url in rows:
        text = f"{title or ''}\n{body or ''}"
        if any(w.search(text) for w in words):
            hits.append({"repo": full_name, "number": number, "title": title, "url": url})
    return hits[:limit]


def bug_report(db: Database, number: int, policy: str | None = None) -> str:
    """Signature ``number`` as a ready bug report in Markdown."""
    found = next((s for s in signatures(db, None, policy) if s.number == number), None)
    if found is None:
        raise IssuemineError(f"no signature {number}; `issuemine difftest report --signatures` lists them")
    info = campaign(db, found.campaign)
    with db.session() as session:
        example = session.get(DifftestModel, found.models[0])
        assert example is not None
        session.expunge(example)
    versions = ", ".join(f"{k} {v}" for k, v in sorted((info.versions or {}).items()))
    title = (
        f"{found.converter}: {found.where} gives wrong outputs ({found.detail})"
        if found.kind == "mismatch"
        else f"{found.converter}: {found.kind} at {found.where or 'conversion'}: {found.detail}"
    )
    lines = [
        f"# {title}",
        "",
        f"Found by differential testing (issuemine, NNSmith `symbolic-cinit`): {len(found.models)} generated "
        f"model(s) of campaign {found.campaign} share this signature.",
        "",
        "## Versions",
        "",
        versions or "(not recorded)",
        "",
        "## What happens",
        "",
        f"- converter: {found.converter} ({found.exporter}), opset {info.opset}",
        f"- example model: seed {example.seed}, {example.node_count} operators: {' → '.join(example.operators[:30])}",
    ]
    if found.kind == "mismatch":
        localized = example.localized or {}
        lines += [
            f"- first diverging operator: {found.where}, ONNX node `{localized.get('node') or '?'}`",
            f"- max |expected − actual| there: {localized.get('max_abs_diff')}; at the model's outputs: "
            f"{example.max_abs_diff}",
            f"- the converted output is further from a float64 run than the framework's own float32 output "
            f"(noise-aware oracle: {(example.policies or {}).get(NOISE_AWARE)})",
        ]
    else:
        lines += ["", "```", (example.error or "").strip()[:3000], "```"]
    lines += ["", "## Reproduce", ""]
    if found.reduced:
        lines += [
            f"The reduced model, its inputs and the expected output are in `{found.reduced}` "
            "(`reduced.onnx`, `inputs.npz`, `expected.npz`):",
            "",
            "```python",
            "import numpy as np, onnxruntime as ort",
            f'folder = "{found.reduced}"',
            'session = ort.InferenceSession(f"{folder}/reduced.onnx", providers=["CPUExecutionProvider"])',
            'feeds = dict(np.load(f"{folder}/inputs.npz"))',
            'name, expected = next(iter(np.load(f"{folder}/expected.npz").items()))',
            "actual = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))[name]",
            'print("max |expected - actual|:", np.abs(expected - actual).max())',
            "```",
            "",
        ]
    lines += [
        "Regenerate and check the whole model (the seed determines it):",
        "",
        "```bash",
        f"issuemine difftest show {example.id}",
        *([f"issuemine difftest localize {example.id}"] if found.kind == "mismatch" else []),
        "```",
    ]
    if found.mentions:
        lines += ["", "## Already reported?", ""]
        lines += [f"- [{m['repo']}#{m['number']}]({m['url']}): {m['title']}" for m in found.mentions]
    return "\n".join(lines) + "\n"
