"""Read back runs: one issue's runs (``repro show``) and the tie-back to labels (``repro report``).

The tie-back asks, per labeled symptom, whether the failure still happens on today's converter
(a labeled crash that still crashes, a labeled wrong model that still mismatches), and how often
the stage inferred from the crash agrees with the stage the raters chose. A model ONNX Runtime
refuses counts as still failing for both crash and wrong-model labels: raters filed such reports
under either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from issuemine.db import Database
from issuemine.db.labels import final_labels
from issuemine.db.models import Issue, Repository, ReproCandidate, ReproRun, SampleMember
from issuemine.db.rows import find_issue, sample_id, table_of
from issuemine.domain.converters import default_catalog_paths, knowledge, load_catalog
from issuemine.domain.stages import reading_of_pasted, rule_name
from issuemine.errors import IssuemineError
from issuemine.repro import same_error
from issuemine.repro.environments import ERA
from issuemine.repro.runs import AS_WRITTEN, LEGACY, shown_run
from issuemine.repro.verdicts import VERDICTS
from issuemine.repro.versions import major_minor

STILL_FAILING = {
    "crash": {"crash", "ort-load-fail"},
    "wrong-model": {"wrong-model", "ort-load-fail"},
    "hang": {"hang"},
}
NO_CODE = ("no code in the issue", "not fetched")
# torch 2.9 (released 2025-10-15) made dynamo torch.onnx.export's default exporter.
DYNAMO_DEFAULT_TORCH = (2, 9)
DYNAMO_DEFAULT_DATE = datetime(2025, 10, 15)


def issue_runs(db: Database, ref: str, env: str | None = None) -> dict[str, Any]:
    with db.session() as session:
        issue = find_issue(session, ref)
        repo = session.get(Repository, issue.repository_id)
        candidate = session.get(ReproCandidate, issue.id)
        query = select(ReproRun).where(ReproRun.issue_id == issue.id).order_by(ReproRun.env)
        if env:
            query = query.where(ReproRun.env == env)
        columns = [c.name for c in table_of(ReproRun).columns]
        runs = [shown_run({c: getattr(r, c) for c in columns}) for r in session.scalars(query)]
        pasted = list(candidate.tracebacks or []) if candidate is not None else []
        for run in runs:
            found = same_error.compare(pasted, run["verdict"], run.get("evidence") or {})
            if found is not None:
                run["reported_error"] = found
        return {
            "issue": f"{repo.full_name if repo else '?'}#{issue.number}",
            "issue_id": issue.id,
            "title": issue.title,
            "candidate": None
            if candidate is None
            else {
                "runnable": candidate.runnable,
                "reason": candidate.reason,
                "script": candidate.script,
                "conversions": candidate.conversions,
                "provenance": candidate.provenance,
                "tracebacks": candidate.tracebacks,
            },
            "runs": runs,
        }


@dataclass
class Crosstab:
    """Counts of verdicts (columns, in VERDICTS order) per row key (a converter, a labeled symptom...)."""

    index: str
    columns: list[str]
    rows: list[tuple[str, list[int]]]

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "columns": self.columns, "rows": [[k, v] for k, v in self.rows]}


@dataclass
class StageAgreement:
    """Labeled stage vs the stage inferred (from a re-run crash, or a pasted traceback)."""

    pairs: list[tuple[str, str]] = field(default_factory=list)  # (labeled, inferred)
    rules: dict[str, list[int]] = field(default_factory=dict)  # deciding rule -> [raters agreed, fired]

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def agree(self) -> int:
        return sum(1 for labeled, inferred in self.pairs if labeled == inferred)

    @property
    def share(self) -> float | None:
        return self.agree / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "n": self.n,
            "share": self.share,
            "pairs": [{"labeled": a, "inferred": b} for a, b in self.pairs],
            "rules": [{"rule": r, "agreed": a, "fired": f} for r, (a, f) in self.rules.items()],
        }


@dataclass
class TiebackReport:
    """`repro report`: coverage, verdicts by converter and by label, and stage agreement."""

    env: str
    sample: str | None
    coverage: dict[str, int]
    by_converter: Crosstab
    by_symptom: Crosstab
    by_stage: Crosstab
    reproduction: list[str]
    stage_agreement: StageAgreement
    traceback_stage_agreement: StageAgreement
    by_variant: Crosstab | None = None  # every run, by variant and the exporter it used
    comparison: EnvComparison | None = None
    era: EraOutcomes | None = None  # --env era: reproduced in the stack of its time, and since

    def as_dict(self) -> dict[str, Any]:
        data = {
            "env": self.env,
            "sample": self.sample,
            "coverage": self.coverage,
            "by_converter": self.by_converter.as_dict(),
            "by_symptom": self.by_symptom.as_dict(),
            "by_stage": self.by_stage.as_dict(),
            "reproduction": self.reproduction,
            "stage_agreement": self.stage_agreement.as_dict(),
            "traceback_stage_agreement": self.traceback_stage_agreement.as_dict(),
            "by_variant": self.by_variant.as_dict() if self.by_variant else None,
        }
        if self.comparison is not None:
            data["comparison"] = self.comparison.as_dict()
        if self.era is not None:
            data["era"] = self.era.as_dict()
        return data


ERA_COLUMNS = (
    "same error",  # fails in its stack with the error the reporter pasted
    "another error",
    "fails, nothing to compare",  # a wrong model, or no readable error in the thread
    "passes in its era",
    "no result",  # not runnable, converted but not compared, sandbox
    "fixed since",  # fails in its stack, passes today
    "still failing today",
)


@dataclass
class EraOutcomes:
    """Labeled failures re-run in the stack of their time, per converter and labeled symptom, and what
    today's stack says of the same snippet."""

    rows: list[tuple[str, str, list[int]]]  # (converter, labeled symptom, counts in ERA_COLUMNS order)
    strongest: int  # labeled crashes that crash in their era with the reported error and pass today
    stage_by_stack: list[tuple[str, str, str, int]]  # (stack, labeled stage, stage of the era crash, n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "columns": list(ERA_COLUMNS),
            "rows": [[c, s, counts] for c, s, counts in self.rows],
            "strongest": self.strongest,
            "stage_by_stack": [list(row) for row in self.stage_by_stack],
        }


def _crosstab(rows: list[tuple[str, str]], index: str) -> Crosstab:
    keys = sorted({r for r, _ in rows})
    columns = [v for v in VERDICTS if any(verdict == v for _, verdict in rows)]
    counts = {k: [sum(1 for r, v in rows if r == k and v == col) for col in columns] for k in keys}
    return Crosstab(index, columns, [(k, counts[k]) for k in keys])


def busiest_env(db: Database) -> str | None:
    """The environment with the most runs (the report's default), or None before any run."""
    with db.session() as session:
        return session.execute(
            select(ReproRun.env).group_by(ReproRun.env).order_by(func.count().desc(), ReproRun.env).limit(1)
        ).scalar()


def _issues(db: Database, sample: str | None) -> list[tuple[int, str, str]]:
    """(issue id, repository, source) of the issues in scope."""
    query = (
        select(Issue.id, Repository.full_name, Issue.source)
        .join(Repository, Repository.id == Issue.repository_id)
        .where(Issue.is_pull_request.is_(False))
    )
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.join(SampleMember, (SampleMember.issue_id == Issue.id) & (SampleMember.sample_id == sid))
        return [tuple(r) for r in session.execute(query)]  # type: ignore[misc]


FAILING = {"crash", "ort-load-fail", "wrong-model", "hang"}
FAILING_SYMPTOMS = {"crash", "wrong-model", "hang", "bad-performance"}
CURRENT_ENV = "current"


@dataclass
class EnvComparison:
    """What changed from one environment's verdicts to another's, issue by issue."""

    env: str
    against: str
    both: int  # issues run in both with the same script
    transitions: list[tuple[str, str, int]]  # (verdict before, verdict after, issues)
    fixed: list[str]
    broke: list[str]
    changed: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "against": self.against,
            "both": self.both,
            "transitions": [{"from": a, "to": b, "issues": n} for a, b, n in self.transitions],
            "fixed": self.fixed,
            "broke": self.broke,
            "changed": self.changed,
        }


def compare_envs(db: Database, env: str, against: str, sample: str | None = None) -> EnvComparison:
    """What changed from environment ``against`` (say, the older release) to ``env``, issue by issue.

    Only issues run in both, with the same script, count. *fixed*: failing (crash, ort-load-fail,
    wrong-model, hang) in ``against`` and passing in ``env``; *broke*: the other way round;
    *changed*: any other change of verdict or stage."""
    ids = {i for i, _, _ in _issues(db, sample)}
    query = (
        select(
            ReproRun.issue_id,
            ReproRun.variant,
            ReproRun.env,
            ReproRun.verdict,
            ReproRun.stage,
            ReproRun.script_sha,
            Repository.full_name,
            Issue.number,
        )
        .join(Issue, Issue.id == ReproRun.issue_id)
        .join(Repository, Repository.id == Issue.repository_id)
        .where(ReproRun.env.in_([env, against]))
    )
    with db.session() as session:
        rows = [r for r in session.execute(query) if r.issue_id in ids]
    if not any(r.env == against for r in rows):
        raise IssuemineError(f"no runs in environment {against!r} to compare with: issuemine repro run --env {against}")
    # Keyed by (issue, variant): a snippet run with both exporters is compared exporter by exporter.
    new = {(r.issue_id, r.variant): r for r in rows if r.env == env}
    old = {(r.issue_id, r.variant): r for r in rows if r.env == against}
    both = sorted(i for i in new.keys() & old.keys() if new[i].script_sha == old[i].script_sha)
    transitions: dict[tuple[str, str], int] = {}
    fixed, broke, changed = [], [], []
    for issue_id in both:
        before, after = old[issue_id], new[issue_id]
        transitions[(before.verdict, after.verdict)] = transitions.get((before.verdict, after.verdict), 0) + 1
        address = f"{after.full_name}#{after.number}" + ("" if after.variant == AS_WRITTEN else f" ({after.variant})")
        if before.verdict in FAILING and after.verdict == "passes":
            fixed.append(address)
        elif before.verdict == "passes" and after.verdict in FAILING:
            broke.append(address)
        elif (before.verdict, before.stage) != (after.verdict, after.stage):
            changed.append(f"{address}: {before.verdict}/{before.stage or '-'} -> {after.verdict}/{after.stage or '-'}")
    steps = [(a, b, n) for (a, b), n in sorted(transitions.items())]
    return EnvComparison(env, against, len(both), steps, fixed, broke, changed)


def _era_variant(created: Any, provenance: dict[str, Any] | None, variants: dict[str, Any]) -> str:
    """The run that matches the issue's time: the legacy exporter for a snippet written before dynamo
    became torch.onnx.export's default (torch 2.9), by the versions it reports or else its date."""
    if LEGACY not in variants:
        return AS_WRITTEN if AS_WRITTEN in variants else next(iter(variants))
    torch = major_minor(((provenance or {}).get("reported_versions") or {}).get("torch"))
    if torch is not None:
        return LEGACY if torch < DYNAMO_DEFAULT_TORCH else AS_WRITTEN
    if created is not None and created >= DYNAMO_DEFAULT_DATE:
        return AS_WRITTEN
    return LEGACY


def _era_choices(db: Database, sample: str | None) -> dict[int, str]:
    from issuemine.repro import environments
    from issuemine.repro.era import plan

    return {issue_id: choice.stack.name for issue_id, choice in plan(db, sample, environments.load()).items()}


def repro_report(db: Database, env: str, sample: str | None = None) -> TiebackReport:
    from issuemine.domain.taxonomy import taxonomy

    issues = _issues(db, sample)
    ids = {i for i, _, _ in issues}
    converters = {c.repo.lower(): c.name for c in load_catalog(default_catalog_paths()).values()}
    converter_of = {i: converters.get(repo.lower(), repo) for i, repo, _ in issues}
    with db.session() as session:
        candidates = {
            r.issue_id: r
            for r in session.execute(
                select(
                    ReproCandidate.issue_id,
                    ReproCandidate.runnable,
                    ReproCandidate.reason,
                    ReproCandidate.tracebacks,
                    ReproCandidate.provenance,
                )
            )
        }
        if not ids & set(candidates):
            from issuemine.repro.runs import nothing_extracted

            raise nothing_extracted(sample)
        created = dict(session.execute(select(Issue.id, Issue.created_at).where(Issue.id.in_(ids))).all())
        by_issue: dict[int, dict[str, Any]] = {}
        # `--env era`: each issue's run in the stack of its time (the choice `repro run --env era` made).
        era = _era_choices(db, sample) if env == ERA else None
        wanted = sorted(set(era.values())) if era is not None else [env]
        for r in session.execute(
            select(
                ReproRun.issue_id,
                ReproRun.env,
                ReproRun.variant,
                ReproRun.exporter,
                ReproRun.verdict,
                ReproRun.stage,
                ReproRun.reached_converter,
                ReproRun.versions,
            ).where(ReproRun.env.in_(wanted))
        ):
            if r.issue_id in ids and (era is None or era.get(r.issue_id) == r.env):
                by_issue.setdefault(r.issue_id, {})[r.variant] = r
    in_scope = {i: c for i, c in candidates.items() if i in ids}
    runs = {}
    for issue_id, variants in by_issue.items():
        provenance = candidates[issue_id].provenance if issue_id in candidates else None
        runs[issue_id] = variants[_era_variant(created.get(issue_id), provenance, variants)]
    ran = [r for r in runs.values() if candidates.get(r.issue_id) is not None and candidates[r.issue_id].runnable]
    coverage = {
        "issues": len(issues),
        "fetched (text known)": sum(1 for _, _, source in issues if source != "stub"),
        "extracted": len(in_scope),
        "with code": sum(1 for c in in_scope.values() if not (c.reason or "").startswith(NO_CODE)),
        "runnable candidates": sum(1 for c in in_scope.values() if c.runnable),
        "run": len(ran),
        "reached the converter": sum(1 for r in ran if r.reached_converter),
        "run with both exporters": sum(1 for v in by_issue.values() if LEGACY in v and AS_WRITTEN in v),
    }
    # The same runs as the coverage's "run": one per issue, the variant of its time.
    by_converter = _crosstab([(converter_of[r.issue_id], r.verdict) for r in ran], "converter")
    by_variant = _crosstab(
        [(f"{r.variant} ({r.exporter or '-'})", r.verdict) for v in by_issue.values() for r in v.values()],
        "variant (exporter)",
    )
    switched = _exporter_switches(by_issue)

    labels = final_labels(db, taxonomy(), sample, converters)
    labeled = {int(row.issue_id): row for row in labels.itertuples()} if len(labels) else {}
    symptom_rows, stage_rows = [], []
    confusion: list[tuple[str, str]] = []
    for run in ran:
        label = labeled.get(run.issue_id)
        if label is None:
            continue
        symptom, stage = getattr(label, "symptom", None), getattr(label, "stage", None)
        if symptom:
            symptom_rows.append((str(symptom), run.verdict))
        if stage:
            stage_rows.append((str(stage), run.verdict))
        if run.verdict == "crash" and stage and run.stage:
            confusion.append((str(stage), str(run.stage)))
    traceback_agreement = _traceback_agreement(in_scope, labeled)
    lines = _reproduction_lines(symptom_rows, ran, labeled) + switched + _version_gap(ran, candidates)
    era_outcomes = (
        _era_outcomes(db, ran, candidates, labeled, converter_of, created) if env == ERA and labeled else None
    )
    return TiebackReport(
        env,
        sample,
        coverage,
        by_converter,
        _crosstab(symptom_rows, "labeled symptom"),
        _crosstab(stage_rows, "labeled stage"),
        lines,
        StageAgreement(confusion),
        traceback_agreement,
        by_variant=by_variant,
        era=era_outcomes,
    )


def _era_outcomes(
    db: Database,
    ran: list[Any],
    candidates: dict[int, Any],
    labeled: dict[int, Any],
    converter_of: dict[int, str],
    created: dict[int, Any],
) -> EraOutcomes:
    """Each labeled failure's run in its own stack, beside today's run of the same snippet."""
    today: dict[int, dict[str, Any]] = {}
    with db.session() as session:
        for r in session.execute(
            select(ReproRun.issue_id, ReproRun.variant, ReproRun.verdict).where(ReproRun.env == CURRENT_ENV)
        ):
            today.setdefault(r.issue_id, {})[r.variant] = r
    with db.session() as session:
        evidence = {
            (r.issue_id, r.env, r.variant): r.evidence or {}
            for r in session.execute(select(ReproRun.issue_id, ReproRun.env, ReproRun.variant, ReproRun.evidence))
        }
    counts: dict[tuple[str, str], list[int]] = {}
    strongest = 0
    stages: dict[tuple[str, str, str], int] = {}
    for run in ran:
        label = labeled.get(run.issue_id)
        symptom = getattr(label, "symptom", None) if label is not None else None
        if symptom not in FAILING_SYMPTOMS:
            continue
        row = counts.setdefault((converter_of[run.issue_id], str(symptom)), [0] * len(ERA_COLUMNS))
        pasted = list(candidates[run.issue_id].tracebacks or [])
        found = same_error.compare(pasted, run.verdict, evidence.get((run.issue_id, run.env, run.variant), {}))
        if run.verdict in FAILING:
            match = (found or {}).get("match", same_error.NOTHING)
            row[{same_error.SAME: 0, same_error.DIFFERENT: 1}.get(match, 2)] += 1
            now = today.get(run.issue_id)
            if now:
                provenance = candidates[run.issue_id].provenance
                verdict = now[_era_variant(created.get(run.issue_id), provenance, now)].verdict
                if verdict == "passes":
                    row[5] += 1
                    strongest += symptom == "crash" and run.verdict == "crash" and match == same_error.SAME
                elif verdict in FAILING:
                    row[6] += 1
            stage = getattr(label, "stage", None)
            if run.verdict == "crash" and run.stage and stage:
                key = (run.env, str(stage), str(run.stage))
                stages[key] = stages.get(key, 0) + 1
        elif run.verdict == "passes":
            row[3] += 1
        else:
            row[4] += 1
    rows = [(c, s, v) for (c, s), v in sorted(counts.items())]
    return EraOutcomes(rows, strongest, [(*k, n) for k, n in sorted(stages.items())])


def _reproduction_lines(symptom_rows: list[tuple[str, str]], ran: list[Any], labeled: dict[int, Any]) -> list[str]:
    """Per labeled symptom: how many runs still fail as labeled, fail with another symptom, pass now,
    converted without a comparison, or reached no result."""
    lines = []
    for symptom, same in STILL_FAILING.items():
        matching = [v for s, v in symptom_rows if s == symptom]
        if not matching:
            continue
        still = sum(1 for v in matching if v in same)
        changed = sum(1 for v in matching if v in FAILING and v not in same)
        passes = sum(1 for v in matching if v == "passes")
        unchecked = sum(1 for v in matching if v == "converted-not-compared")
        other = len(matching) - still - changed - passes - unchecked
        line = (
            f"labeled {symptom}: {len(matching)} run; {still} still fail as labeled ({', '.join(sorted(same))}), "
            f"{changed} still fail with another symptom, {passes} pass now, {unchecked} converted but not "
            f"compared, {other} did not reach a result (not runnable, sandbox)"
        )
        if symptom == "crash":
            same_stage = sum(
                1
                for r in ran
                if r.issue_id in labeled
                and getattr(labeled[r.issue_id], "symptom", None) == "crash"
                and r.verdict == "crash"
                and r.stage == getattr(labeled[r.issue_id], "stage", None)
            )
            line += f"; {same_stage} crash at the labeled stage"
        lines.append(line)
    return lines


def _version_gap(ran: list[Any], candidates: dict[int, Any]) -> list[str]:
    """How far today's runs are from what the reporters ran (the torch versions threads report)."""
    reported: dict[str, int] = {}
    for run in ran:
        provenance = candidates[run.issue_id].provenance or {}
        version = major_minor((provenance.get("reported_versions") or {}).get("torch"))
        if version:
            key = f"{version[0]}.{version[1]}"
            reported[key] = reported.get(key, 0) + 1
    if not reported:
        return []
    today = sorted({str((r.versions or {}).get("torch")) for r in ran if (r.versions or {}).get("torch")})
    listed = ", ".join(f"{v} ({n})" for v, n in sorted(reported.items(), key=lambda kv: major_minor(kv[0]) or (0, 0)))
    return [f"reporters ran torch {listed}; the re-runs used torch {', '.join(today) or '?'}"]


def _exporter_switches(by_issue: dict[int, dict[str, Any]]) -> list[str]:
    """Issues whose verdict depends on the exporter: a pass that is only today's default exporter's."""
    flips = [
        (v[LEGACY].verdict, v[AS_WRITTEN].verdict)
        for v in by_issue.values()
        if LEGACY in v and AS_WRITTEN in v and v[LEGACY].verdict != v[AS_WRITTEN].verdict
    ]
    if not flips:
        return []
    masked = sum(1 for legacy, today in flips if legacy in FAILING and today == "passes")
    return [
        f"the exporter decides the verdict for {len(flips)} issue(s); {masked} fail with the exporter of their "
        "time but pass with today's default (the switch, not a fix)"
    ]


def _traceback_agreement(candidates: dict[int, Any], labeled: dict[int, Any]) -> StageAgreement:
    """The stage inferred from the traceback the reporter pasted, against the labeled stage.

    Needs no run at all, so it covers issues whose code cannot run (external files, old APIs)."""
    rules = knowledge().stages
    agreement = StageAgreement()
    for issue_id, candidate in sorted(candidates.items()):
        label = labeled.get(issue_id)
        stage = getattr(label, "stage", None) if label is not None else None
        if not stage:
            continue
        found = reading_of_pasted(candidate.tracebacks or [], rules)
        if found is not None:
            agreement.pairs.append((str(stage), found[0]))
            tally = agreement.rules.setdefault(rule_name(found[1]), [0, 0])
            tally[0] += str(stage) == found[0]
            tally[1] += 1
    agreement.rules = dict(sorted(agreement.rules.items(), key=lambda kv: -kv[1][1]))
    return agreement
