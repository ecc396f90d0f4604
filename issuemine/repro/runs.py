"""Run extracted candidates in the sandbox and store one verdict per (issue, environment).

Runs are resumable: an issue whose stored run used the same script in the same environment is
skipped unless ``rerun``. Each verdict is committed as soon as it is known, so a crash or Ctrl-C
loses at most the runs in flight. ``--jobs N`` keeps N sandboxes (each its own uid and PID
namespace) busy from one queue.
"""

from __future__ import annotations

import hashlib
import math
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from issuemine import interrupt
from issuemine.db import Database
from issuemine.db.models import ReproCandidate, ReproRun, SampleMember
from issuemine.db.rows import sample_id, upsert, utcnow
from issuemine.domain.converters import knowledge
from issuemine.domain.stages import StageRules
from issuemine.domain.tolerances import Policies, load_policies
from issuemine.domain.tracebacks import strip_ansi
from issuemine.errors import IssuemineError
from issuemine.repro.environments import Environment, features
from issuemine.repro.sandbox import Limits, Zygote, choose, layout_of
from issuemine.repro.verdicts import Verdict, decide

OUTPUT_TAIL_LINES = 200


def script_sha(script: str) -> str:
    return hashlib.sha256(script.encode()).hexdigest()


@dataclass
class RunOptions:
    env: Environment
    limits: Limits = field(default_factory=Limits)
    jobs: int = 1
    sandbox: str = "auto"
    require_sandbox: bool = False
    warm: bool = True
    policy: str | None = None
    rerun: bool = False
    executor: str = "threads"  # or "ray": the same sandboxes on Ray workers (issuemine.repro.ray_runs)
    address: str | None = None  # with ray: a cluster to join (default: a local instance on loopback)


AS_WRITTEN = "as-written"
LEGACY = "legacy-exporter"
# How each variant runs: variables for the shim inside the sandbox.
VARIANT_ENV = {AS_WRITTEN: {}, LEGACY: {"ISSUEMINE_SWITCH": "off"}}


@dataclass
class Job:
    issue_id: int | None
    script: str
    runnable: bool = True
    reason: str | None = None
    variant: str = AS_WRITTEN
    note: dict[str, Any] | None = None  # stored in the run's evidence (an era run: which stack and why)


def variants_of(provenance: dict[str, Any] | None, stack: dict[str, object] | None = None) -> list[str]:
    """A snippet written for the TorchScript exporter (no ``dynamo=`` of its own) also runs with it
    where the stack's default exporter is dynamo (torch >= 2.9), which is not what the reporter ran.
    ``stack`` is :func:`issuemine.repro.environments.features` of the environment; torch 1.x has one
    exporter and no ``dynamo`` keyword, so there the snippet runs as written only."""
    if (provenance or {}).get("exporter_written_for") != "torchscript":
        return [AS_WRITTEN]
    if stack is not None and not stack.get("onnx_export_dynamo_default"):
        return [AS_WRITTEN]
    return [AS_WRITTEN, LEGACY]


@dataclass
class Outcome:
    job: Job
    verdict: Verdict
    result: dict[str, Any]


@dataclass
class RunReport:
    candidates: int = 0
    skipped: int = 0
    ran: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    sandbox: str = ""
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidates": self.candidates,
            "skipped_already_run": self.skipped,
            "ran": self.ran,
            "verdicts": dict(self.verdicts),
            "sandbox": self.sandbox,
            "interrupted": self.interrupted,
        }


class Runner:
    """Sandboxes for one environment; ``run`` classifies scripts, the caller decides what to keep."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.kind = choose(options.sandbox, options.require_sandbox)
        self.layout = layout_of(options.env.python)
        self.policies: Policies = load_policies()
        self.policy = self.policies.get(options.policy).name
        self.rules: StageRules = knowledge().stages

    def zygote(self, slot: int) -> Zygote:
        return Zygote(
            self.layout, self.kind, slot, self.options.limits, self.options.env.preload, warm=self.options.warm
        )

    def classify(self, zygote: Zygote, job: Job, timeout: float | None = None) -> Outcome:
        if not job.runnable:
            return Outcome(job, Verdict("not-runnable", None, job.reason or "no runnable candidate"), {})
        timeout = timeout or self.options.limits.timeout
        policies = [p.as_dict() for p in self.policies.policies]
        result = zygote.run(job.script, policies, timeout, VARIANT_ENV.get(job.variant, {}))
        result["timeout"] = timeout
        verdict = decide(result, self.policy, self.rules)
        return Outcome(job, verdict, result)

    def run_all(self, jobs: list[Job], on_outcome: Callable[[Outcome], None]) -> bool:
        """Run every job on ``options.jobs`` sandboxes; False when interrupted (Ctrl-C)."""
        if self.options.executor == "ray" and jobs:
            from issuemine.repro import ray_runs

            return ray_runs.run_all(self.options, jobs, on_outcome)
        todo: queue.Queue[Job | None] = queue.Queue()
        for job in jobs:
            todo.put(job)
        done: queue.Queue[Outcome | BaseException] = queue.Queue()
        stop = threading.Event()
        workers = max(1, min(self.options.jobs, len(jobs)))
        for _ in range(workers):
            todo.put(None)

        def work(slot: int) -> None:
            with self.zygote(slot) as zygote:
                while not stop.is_set():
                    job = todo.get()
                    if job is None:
                        return
                    try:
                        done.put(self.classify(zygote, job))
                    except BaseException as exc:  # the sandbox failed: report it, stop this worker
                        done.put(exc)
                        return

        threads = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in range(workers)]
        for thread in threads:
            thread.start()
        received = 0
        try:
            while received < len(jobs):
                try:
                    item = done.get(timeout=0.2)
                except queue.Empty:
                    interrupt.check()
                    if not any(t.is_alive() for t in threads):
                        break
                    continue
                if isinstance(item, BaseException):
                    raise item
                received += 1
                on_outcome(item)
                interrupt.check()
        except KeyboardInterrupt:
            return False
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
        return True


def json_safe(value: Any) -> Any:
    """Evidence as strict JSON: PostgreSQL (and most parsers) refuse Infinity and NaN, which a
    relative difference against a zero output produces; they are kept as the strings "inf"/"nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def stored_run(outcome: Outcome, runner: Runner) -> dict[str, Any]:
    """The run record: a ``repro_runs`` row (and what ``repro file`` prints)."""
    result, verdict = outcome.result, outcome.verdict
    peak = result.get("peak_rss_kb")
    calls = verdict.evidence.get("calls") or []
    exporter = next((c.get("exporter") for c in calls if isinstance(c, dict) and c.get("exporter")), None)
    return {
        "issue_id": outcome.job.issue_id,
        "env": runner.options.env.name,
        "variant": outcome.job.variant,
        "exporter": exporter,
        "script_sha": script_sha(outcome.job.script),
        "verdict": verdict.verdict,
        "stage": verdict.stage,
        "reason": verdict.reason,
        "policy": runner.policy,
        "reached_converter": verdict.reached_converter,
        "evidence": json_safe({**verdict.evidence, **(outcome.job.note or {})}),
        "versions": json_safe(result.get("versions", {})),
        "sandbox": result.get("isolation", "not run"),
        "mode": result.get("mode", "-"),
        "exit_code": result.get("exit_code"),
        "signal": result.get("signal"),
        "duration_s": result.get("duration"),
        "peak_mem_mb": peak / 1024 if isinstance(peak, int | float) else None,
        # Without terminal colours: the exporters print them, a database reader wants text.
        "output_tail": "\n".join(strip_ansi(str(result.get("tail", ""))).splitlines()[-OUTPUT_TAIL_LINES:]),
        "finished_at": utcnow(),
    }


def nothing_extracted(sample: str | None) -> IssuemineError:
    """The error for a re-run or report before any snippet was extracted: what to run first."""
    scope = f" for sample {sample!r}" if sample else ""
    option = f" --sample {sample}" if sample else ""
    return IssuemineError(f"no snippets extracted yet{scope}: run `issuemine repro extract{option}` first")


def require_extracted(db: Database, sample: str | None) -> None:
    """Stop before any progress is shown when nothing was extracted for ``sample`` yet."""
    query = select(ReproCandidate.issue_id).limit(1)
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.join(
                SampleMember, (SampleMember.issue_id == ReproCandidate.issue_id) & (SampleMember.sample_id == sid)
            )
        if session.execute(query).first() is None:
            raise nothing_extracted(sample)


def pending_jobs(
    db: Database,
    env: Environment,
    sample: str | None,
    rerun: bool,
    notes: dict[int, dict[str, Any]] | None = None,
) -> tuple[list[Job], int]:
    """Candidates still to run in ``env`` (and how many were skipped as already run); with
    ``notes``, only the issues it names, each job carrying its note."""
    query = select(
        ReproCandidate.issue_id,
        ReproCandidate.script,
        ReproCandidate.runnable,
        ReproCandidate.reason,
        ReproCandidate.provenance,
    )
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.join(
                SampleMember, (SampleMember.issue_id == ReproCandidate.issue_id) & (SampleMember.sample_id == sid)
            )
        rows = session.execute(query.order_by(ReproCandidate.issue_id)).all()
        if not rows:
            raise nothing_extracted(sample)
        done = {
            (issue_id, variant): sha
            for issue_id, variant, sha in session.execute(
                select(ReproRun.issue_id, ReproRun.variant, ReproRun.script_sha).where(ReproRun.env == env.name)
            )
        }
    jobs, skipped = [], 0
    stack = features(env.python)
    for issue_id, script, runnable, reason, provenance in rows:
        if notes is not None and issue_id not in notes:
            continue
        for variant in variants_of(provenance, stack) if runnable else [AS_WRITTEN]:
            if not rerun and done.get((issue_id, variant)) == script_sha(script):
                skipped += 1
                continue
            jobs.append(Job(issue_id, script, runnable, reason, variant, (notes or {}).get(issue_id)))
    return jobs, skipped


def run_issues(
    db: Database,
    options: RunOptions,
    sample: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    notes: dict[int, dict[str, Any]] | None = None,
    report: RunReport | None = None,
) -> RunReport:
    """Run every pending candidate (of ``sample``; of the issues ``notes`` names) and store the
    verdicts one by one."""
    jobs, skipped = pending_jobs(db, options.env, sample, options.rerun, notes)
    report = report or RunReport()
    report.candidates += len(jobs) + skipped
    report.skipped += skipped
    runner = Runner(options)
    report.sandbox = runner.kind
    if on_start:
        on_start(len(jobs))

    def keep(outcome: Outcome) -> None:
        row = stored_run(outcome, runner)
        db.write(lambda session: upsert(session, ReproRun, [row], ["issue_id", "env", "variant"]))
        report.ran += 1
        report.verdicts[outcome.verdict.verdict] += 1
        if on_outcome:
            on_outcome(outcome)

    report.interrupted = not runner.run_all(jobs, keep) if jobs else False
    return report


def run_script(script: str, options: RunOptions) -> dict[str, Any]:
    """Run one script the same way (``issuemine repro file``): its run record, not stored."""
    runner = Runner(options)
    outcomes: list[Outcome] = []
    runner.run_all([Job(None, script)], outcomes.append)
    if not outcomes:
        raise KeyboardInterrupt
    return shown_run(stored_run(outcomes[0], runner))


def shown_run(row: dict[str, Any]) -> dict[str, Any]:
    """A run record as ``repro file`` and ``repro show`` print it: the row without its keys, times as text."""
    shown = {k: v for k, v in row.items() if k not in ("id", "issue_id")}
    shown["finished_at"] = row["finished_at"].isoformat(timespec="seconds")
    return shown
