"""The release that fixed it: an issue's snippet across the stacks of the catalog, in release order.

``repro bisect`` starts from the stack of the issue's time (where it must fail as reported: the
same error, or a failure where the thread pasted none) and today's stack ('current'), and binary-
searches the stacks between them for the last where it fails and the first where it passes. A run
already stored for a stack and the same script is reused. With ``full``, every stack in between is
run instead, which also finds regressions (passes, then fails again). The result sits beside the
issue's close date and the commit or pull request its timeline says closed it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.models import Issue, Repository, ReproBisection, ReproCandidate, ReproRun, TimelineEvent
from issuemine.db.rows import find_issue, sample_id, upsert, utcnow
from issuemine.errors import IssuemineError
from issuemine.repro import environments as envs
from issuemine.repro import same_error
from issuemine.repro.era import choose, stacks_for
from issuemine.repro.runs import AS_WRITTEN, Job, Outcome, Runner, RunOptions, script_sha, stored_run

FAILING = {"crash", "ort-load-fail", "wrong-model", "hang"}
FAILS, PASSES, OTHER, UNAVAILABLE = "fails", "passes", "other", "unavailable"


@dataclass
class Step:
    stack: str
    released: str
    verdict: str
    match: str | None
    state: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Bisection:
    issue: str
    issue_id: int
    converter: str
    status: str  # fixed, still-failing, passes-in-its-era, regression, inconclusive, not-runnable
    last_failing: str | None = None
    first_passing: str | None = None
    steps: list[Step] = field(default_factory=list)
    closed_at: datetime | None = None
    closed_by: str | None = None
    summary: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "steps"}
        data["steps"] = [s.as_dict() for s in self.steps]
        data["closed_at"] = self.closed_at.date().isoformat() if self.closed_at else None
        return data


def state_of(verdict: str, match: str | None) -> str:
    """Fails as reported (a failure whose error is not another one), passes, or neither."""
    if verdict in FAILING and match != same_error.DIFFERENT:
        return FAILS
    return PASSES if verdict == "passes" else OTHER


def label(stack: envs.Environment, converter: str) -> str:
    """'torch 1.13 (Oct 2022)': the converter's version a stack stands for, and when it came out."""
    if stack.name == envs.CURRENT:
        return "today's stack"
    package = "tf2onnx" if converter == "tf2onnx" else "torch"
    version = stack.versions.get(package) or stack.name
    when = f" ({stack.released:%b %Y})" if stack.released else ""
    return f"{package} {version}{when}"


class Ladder:
    """The stacks an issue is run in, oldest first and today's last, and the runs made or reused."""

    def __init__(
        self,
        db: Database,
        options: RunOptions,
        converter: str,
        environments: dict[str, envs.Environment],
        build_missing: bool,
        on_run: Callable[[str], None] | None = None,
    ) -> None:
        stacks = stacks_for(converter, environments)
        if not build_missing:
            stacks = [s for s in stacks if s.built]
        self.stacks = [*stacks, environments[envs.CURRENT]]
        self.db, self.options, self.converter, self.build_missing, self.on_run = (
            db,
            options,
            converter,
            build_missing,
            on_run,
        )

    def step(self, index: int, issue_id: int, script: str, pasted: list[str]) -> Step:
        stack = self.stacks[index]
        row = self._stored(issue_id, stack.name, script)
        if row is None:
            if not stack.built:
                if not self.build_missing:
                    return Step(stack.name, _released(stack), "-", None, UNAVAILABLE)
                envs.build(stack)
            if self.on_run:
                self.on_run(stack.name)
            row = self._run(issue_id, script, stack)
        verdict, evidence = row["verdict"], row.get("evidence") or {}
        found = same_error.compare(pasted, verdict, evidence)
        match = found["match"] if found else None
        return Step(stack.name, _released(stack), verdict, match, state_of(verdict, match))

    def _stored(self, issue_id: int, env: str, script: str) -> dict[str, Any] | None:
        with self.db.session() as session:
            run = session.scalars(
                select(ReproRun).where(
                    ReproRun.issue_id == issue_id, ReproRun.env == env, ReproRun.variant == AS_WRITTEN
                )
            ).first()
            if run is None or run.script_sha != script_sha(script):
                return None
            return {"verdict": run.verdict, "evidence": run.evidence}

    def _run(self, issue_id: int, script: str, stack: envs.Environment) -> dict[str, Any]:
        runner = Runner(replace(self.options, env=stack))
        outcomes: list[Outcome] = []
        if not runner.run_all([Job(issue_id, script)], outcomes.append) or not outcomes:
            raise KeyboardInterrupt
        row = stored_run(outcomes[0], runner)
        self.db.write(lambda session: upsert(session, ReproRun, [row], ["issue_id", "env", "variant"]))
        return row


def bisect_issue(
    db: Database,
    ref: str | int,
    options: RunOptions,
    environments: dict[str, envs.Environment] | None = None,
    converter: str | None = None,
    full: bool = False,
    build_missing: bool = True,
    on_run: Callable[[str], None] | None = None,
) -> Bisection:
    environments = environments or envs.load()
    facts = _issue_facts(db, ref)
    converter = converter or facts["converter"]
    if converter is None:
        raise IssuemineError(f"{facts['issue']}: its repository belongs to no converter; pass --converter")
    result = Bisection(facts["issue"], facts["issue_id"], converter, "not-runnable")
    result.closed_at, result.closed_by = facts["closed_at"], facts["closed_by"]
    if not facts["runnable"]:
        result.summary = f"no runnable snippet ({facts['reason']})"
        return result
    ladder = Ladder(db, options, converter, environments, build_missing, on_run)
    created = facts["created_at"].date() if facts["created_at"] else None
    era = choose(converter, created, facts["reported"], environments).stack.name
    names = [s.name for s in ladder.stacks]
    start = names.index(era) if era in names else 0
    steps: dict[int, Step] = {}

    def at(index: int) -> Step:
        if index not in steps:
            steps[index] = ladder.step(index, facts["issue_id"], facts["script"], facts["pasted"])
        return steps[index]

    end = len(names) - 1
    if full:
        for index in range(start, end + 1):
            at(index)
    first, last = at(start), at(end)
    if first.state != FAILS:
        result.status = "passes-in-its-era" if first.state == PASSES else "inconclusive"
    elif last.state == FAILS:
        result.status, result.last_failing = "still-failing", names[end]
    elif last.state != PASSES:
        result.status = "inconclusive"
    else:
        low, high = start, end
        while high - low > 1:
            middle = (low + high) // 2
            if at(middle).state == FAILS:
                low = middle
            else:
                high = middle  # passes, or fails otherwise: the reported failure is gone there
        result.status, result.last_failing, result.first_passing = "fixed", names[low], names[high]
    ordered = [steps[i] for i in sorted(steps)]
    states = [s.state for s in ordered if s.state in (FAILS, PASSES)]
    if full and PASSES in states and FAILS in states[states.index(PASSES) :]:
        result.status = "regression"
    result.steps = ordered
    result.summary = _summary(result, ladder, converter)
    return result


def _summary(result: Bisection, ladder: Ladder, converter: str) -> str:
    by_name = {s.name: s for s in ladder.stacks}
    closed = ""
    if result.closed_at:
        closed = f"; closed in {result.closed_at:%b %Y}" + (f" by {result.closed_by}" if result.closed_by else "")
    if result.status == "fixed" and result.last_failing and result.first_passing:
        return (
            f"fails through {label(by_name[result.last_failing], converter)}, "
            f"passes from {label(by_name[result.first_passing], converter)}{closed}"
        )
    if result.status == "still-failing":
        return f"fails from its era to today's stack{closed}"
    if result.status == "regression":
        trail = ", ".join(f"{s.stack} {s.state}" for s in result.steps)
        return f"passes, then fails again: {trail}{closed}"
    if result.status == "passes-in-its-era":
        return f"does not fail in the stack of its time ({result.steps[0].stack}: {result.steps[0].verdict}){closed}"
    return "inconclusive: " + ", ".join(f"{s.stack} {s.verdict}" for s in result.steps) + closed


def store(db: Database, result: Bisection) -> None:
    row = {
        "issue_id": result.issue_id,
        "converter": result.converter,
        "status": result.status,
        "last_failing": result.last_failing,
        "first_passing": result.first_passing,
        "summary": result.summary,
        "steps": [s.as_dict() for s in result.steps],
        "closed_at": result.closed_at,
        "closed_by": result.closed_by,
        "computed_at": utcnow(),
    }
    db.write(lambda session: upsert(session, ReproBisection, [row], ["issue_id"]))


def sample_issues(db: Database, sample: str) -> list[int]:
    """The sample's issues with a runnable candidate."""
    from issuemine.db.models import SampleMember

    with db.session() as session:
        sid = sample_id(session, sample)
        query = (
            select(ReproCandidate.issue_id)
            .join(SampleMember, SampleMember.issue_id == ReproCandidate.issue_id)
            .where(SampleMember.sample_id == sid, ReproCandidate.runnable.is_(True))
            .order_by(ReproCandidate.issue_id)
        )
        return list(session.scalars(query))


def _released(stack: envs.Environment) -> str:
    return stack.released.isoformat() if stack.released else "today"


def _issue_facts(db: Database, ref: str | int) -> dict[str, Any]:
    from issuemine.domain.converters import default_catalog_paths, load_catalog

    converters = {c.repo.lower(): c.name for c in load_catalog(default_catalog_paths()).values()}
    with db.session() as session:
        issue = session.get(Issue, ref) if isinstance(ref, int) else find_issue(session, ref)
        if issue is None:
            raise IssuemineError(f"no issue {ref!r} in the database")
        repo = session.get(Repository, issue.repository_id)
        candidate = session.get(ReproCandidate, issue.id)
        if candidate is None:
            raise IssuemineError(f"no candidate for {ref}: run `issuemine repro extract` first")
        events = session.scalars(
            select(TimelineEvent).where(TimelineEvent.issue_id == issue.id).order_by(TimelineEvent.position)
        ).all()
        return {
            "issue": f"{repo.full_name if repo else '?'}#{issue.number}",
            "issue_id": issue.id,
            "converter": converters.get((repo.full_name if repo else "").lower()),
            "created_at": issue.created_at,
            "closed_at": issue.closed_at,
            "closed_by": closed_by(list(events)),
            "runnable": candidate.runnable,
            "reason": candidate.reason,
            "script": candidate.script,
            "pasted": list(candidate.tracebacks or []),
            "reported": (candidate.provenance or {}).get("reported_versions") or {},
        }


def closed_by(events: list[TimelineEvent]) -> str | None:
    """The commit or pull request the timeline says closed the issue: a ``closed`` event's commit,
    else the last merged or closed pull request that cross-referenced it, else a referencing commit."""
    for event in reversed(events):
        if event.event == "closed" and event.commit_id:
            return f"commit {event.commit_id[:10]}"
    for event in reversed(events):
        if (
            event.event in ("cross-referenced", "connected")
            and event.source_is_pull_request
            and event.source_state in ("closed", "merged")
            and event.source_number
        ):
            return f"pull request {event.source_repo or ''}#{event.source_number}"
    for event in reversed(events):
        if event.event == "referenced" and event.commit_id:
            return f"commit {event.commit_id[:10]}"
    return None


def bisection_table(db: Database, sample: str | None = None) -> Any:
    """The stored bisections as a table: issue, converter, status, last failing and first passing
    stacks, the fixing stack's release date, close date, closing commit or pull request, days from
    the fix's release to the close, and whether it regressed."""
    import pandas as pd

    from issuemine.db.models import SampleMember

    environments = envs.load()
    query = (
        select(ReproBisection, Repository.full_name, Issue.number)
        .join(Issue, Issue.id == ReproBisection.issue_id)
        .join(Repository, Repository.id == Issue.repository_id)
    )
    with db.session() as session:
        if sample:
            try:
                sid = sample_id(session, sample)
            except IssuemineError:
                sid = None
            if sid is not None:
                query = query.join(SampleMember, (SampleMember.issue_id == Issue.id) & (SampleMember.sample_id == sid))
        rows = []
        for bisection, repo, number in session.execute(query.order_by(Repository.full_name, Issue.number)):
            passing = environments.get(bisection.first_passing or "")
            released = passing.released if passing is not None and passing.released else None
            if bisection.first_passing == envs.CURRENT:
                released = None
            closed = bisection.closed_at.date() if bisection.closed_at else None
            rows.append(
                {
                    "issue": f"{repo}#{number}",
                    "converter": bisection.converter,
                    "status": bisection.status,
                    "last failing": bisection.last_failing or "-",
                    "first passing": bisection.first_passing or "-",
                    "fixed in (released)": released.isoformat() if released else None,
                    "closed": closed.isoformat() if closed else None,
                    "closed by": bisection.closed_by or "-",
                    "days from fix release to close": (closed - released).days if closed and released else None,
                    "regression": bisection.status == "regression",
                }
            )
    return pd.DataFrame(rows)
