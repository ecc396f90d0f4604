"""Classify what happened in a sandboxed run: one verdict, the failing stage, and the evidence.

The zygote's answer (exit status, time-out, resource use, output tail and the shim's events) is
parsed once, at the boundary, into a :class:`RunResult`. The events come from inside the sandbox, so
parsing reads every field defensively; the rules after it read attributes. The verdict is the first
of :data:`RULES` that applies, in order: the sandbox was violated, the run hung, the converter
crashed, ONNX Runtime failed, the outputs differ, the conversion passed, the script failed before
converting.
"""

from __future__ import annotations

import errno
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from issuemine.domain.converters import Knowledge, knowledge
from issuemine.domain.stages import NOT_DISTINGUISHABLE, StageRules, chain, frames, infer_stage
from issuemine.domain.tracebacks import stack_at_timeout, strip_ansi

VERDICTS = (
    "crash",
    "ort-load-fail",
    "wrong-model",
    "hang",
    "passes",
    "converted-not-compared",
    "not-runnable",
    "sandbox-violation",
)
__all__ = ["NOT_DISTINGUISHABLE", "RULES", "VERDICTS", "RunResult", "Verdict", "decide"]
MEMORY = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|std::bad_alloc|out of memory", re.I)
GPU = re.compile(r"CUDA|NVIDIA driver|cudnn|no GPU", re.I)
# Exporters that wrap the real error in a banner (torch.onnx's dynamo path: "... This is step 3/3 ...
# Next steps: ..."): the innermost cause says what failed.
BANNER = re.compile(r"This is step \d/\d|Next steps:")


@dataclass
class Verdict:
    verdict: str
    stage: str | None = None
    reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    reached_converter: bool = False


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any, limit: int = 500) -> str:
    return str(value)[:limit] if value is not None else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class RunResult:
    """One sandboxed run, as the zygote and the shim told it."""

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    timeout: Any = None
    output_exceeded: bool = False
    output_bytes: int | None = None
    leftover_processes: int = 0
    oom_kills: int = 0  # processes the kernel killed at the sandbox's memory limit (its control group)
    sandbox_failure: str | None = None
    tail: str = ""
    starts: list[dict[str, Any]] = field(default_factory=list)  # convert-start events
    calls: list[dict[str, Any]] = field(default_factory=list)  # convert events (finished calls)
    converted: int = 0  # conversions that returned, before ONNX Runtime was tried
    violations: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # uncaught: the script's, then other processes'

    @classmethod
    def parse(cls, answer: dict[str, Any]) -> RunResult:
        events = [e for e in _list(answer.get("events")) if isinstance(e, dict)]
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            by_kind.setdefault(_text(event.get("event"), 40), []).append(event)
        main_pid = next((e.get("pid") for e in by_kind.get("start", [])), None)
        main_exit = next((e for e in by_kind.get("exit", []) if e.get("pid") == main_pid), {})
        errors = [_dict(main_exit.get("error"))] if main_exit.get("status") == "exception" else []
        errors += [_dict(e.get("error")) for e in by_kind.get("uncaught", []) if e.get("pid") != main_pid]
        return cls(
            exit_code=_int(answer.get("exit_code")),
            signal=_int(answer.get("signal")),
            timed_out=bool(answer.get("timed_out")),
            timeout=answer.get("timeout"),
            output_exceeded=bool(answer.get("output_exceeded")),
            output_bytes=_int(answer.get("output_bytes")),
            leftover_processes=_int(answer.get("leftover_processes")) or 0,
            oom_kills=_int(answer.get("oom_kills")) or 0,
            sandbox_failure=_text(answer["sandbox_failure"]) if answer.get("sandbox_failure") else None,
            tail=_text(answer.get("tail"), 1_000_000),
            starts=by_kind.get("convert-start", []),
            calls=by_kind.get("convert", []),
            converted=len(by_kind.get("converted", [])),
            violations=_server_findings(answer) + by_kind.get("violation", []),  # the server's own first
            errors=[e for e in errors if e],
        )

    @property
    def failed_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if c.get("status") == "error"]

    @property
    def converter_running(self) -> bool:
        """A conversion had started and not returned when the run ended."""
        return len(self.starts) > len(self.calls)


def _server_findings(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """What the run server found wrong with the run itself: events the shim never writes (forged,
    flooded, malformed) and files the snippet left that cannot be deleted."""
    found = [{"kind": "events", "detail": _text(p)} for p in _list(answer.get("event_problems"))[:5]]
    if answer.get("server_stopped"):
        found.insert(0, {"kind": "server-stopped", "detail": _text(answer["server_stopped"])})
    left = [_text(p, 200) for p in _list(answer.get("cleanup_failed"))[:5]]
    if left:
        found.append({"kind": "cleanup", "detail": f"left what cannot be deleted: {', '.join(left)}"})
    return found


@dataclass(frozen=True)
class Context:
    policy: str
    rules: StageRules
    knowledge: Knowledge


def touches_converter(error: dict[str, Any], known: Knowledge) -> bool:
    return any(known.touches_converter(_text(f.get("file"), 1000)) for e in chain(error) for f in frames(e))


def root_summary(error: dict[str, Any]) -> str:
    """The summary of a crash: the innermost cause's when the outer error is only a banner."""
    if BANNER.search(_text(error.get("message"), 4000)):
        for cause in chain(error):  # innermost first
            if _text(cause.get("message")).strip() and not BANNER.search(_text(cause.get("message"), 4000)):
                return _summary(cause)
    return _summary(error)


def _summary(error: dict[str, Any]) -> str:
    message = strip_ansi(_text(error.get("message"), 2000)).strip().splitlines()
    return f"{_text(error.get('type'), 200).rsplit('.', 1)[-1]}: {message[0] if message else ''}"[:400]


def not_runnable_reason(error: dict[str, Any]) -> str:
    """Why a snippet failed before reaching the converter, in the words of extraction's reasons."""
    kind = _text(error.get("type"), 200)
    message = _text(error.get("message"), 2000)
    if kind.endswith("ModuleNotFoundError"):
        return f"missing module: {_text(error.get('name')) or message}"
    if kind.endswith("NameError"):
        return f"missing name: {_text(error.get('name')) or message}"
    if kind.endswith("FileNotFoundError") or error.get("errno") == 2:
        return f"missing file: {_text(error.get('filename')) or message}"
    if GPU.search(message):
        return f"needs a GPU: {message.splitlines()[0][:200] if message else kind}"
    if kind.endswith("TypeError") and "unexpected keyword argument" in message:
        return f"removed API: {message[:200]}"
    if kind.endswith("AttributeError") and re.search(r"module '(torch|tensorflow|tf2onnx|onnx)[\w.]*' has no", message):
        return f"removed API: {message[:200]}"
    return f"error before the conversion: {_summary(error)}"


class _Decision:
    """What the rules share for one run: the evidence gathered so far and whether it reached a converter."""

    def __init__(self, run: RunResult, context: Context) -> None:
        self.run, self.context = run, context
        self.reached = bool(run.starts) or any(touches_converter(e, context.knowledge) for e in run.errors)
        self.evidence: dict[str, Any] = {"calls": run.calls[:5], "exit_code": run.exit_code, "signal": run.signal}

    def verdict(self, kind: str, stage: str | None, reason: str | None, reached: bool | None = None) -> Verdict:
        return Verdict(kind, stage, reason, self.evidence, self.reached if reached is None else reached)

    def violation(self, kind: str, reason: str) -> Verdict:
        self.evidence["violation"] = kind
        return self.verdict("sandbox-violation", None, reason)

    def stage_of(self, error: dict[str, Any] | None) -> str:
        stage, how = infer_stage(error, self.run.tail, self.context.rules)
        self.evidence["stage_from"] = how
        return stage


Rule = Callable[[_Decision], Verdict | None]


def memory_as_a_whole(d: _Decision) -> Verdict | None:
    """The snippet's processes together went past the memory limit and the kernel killed one (the
    server itself, perhaps: the snippet's doing all the same)."""
    count = d.run.oom_kills
    if not count:
        return None
    return d.violation("memory", f"its processes together exceeded the memory limit (the kernel killed {count})")


def sandbox_failed(d: _Decision) -> Verdict | None:
    return d.violation("sandbox-server", d.run.sandbox_failure) if d.run.sandbox_failure else None


def forbidden_attempt(d: _Decision) -> Verdict | None:
    violations = d.run.violations
    if not violations:
        return None
    d.evidence["violations"] = violations[:20]
    kinds = list(dict.fromkeys(_text(v.get("kind"), 40) for v in violations))  # in the order tried
    first = _text(violations[0].get("detail"), 200)
    return d.violation(kinds[0], f"tried what the sandbox forbids ({', '.join(kinds)}): {first}")


def output_or_file_limit(d: _Decision) -> Verdict | None:
    if d.run.output_exceeded:
        return d.violation(
            "output", f"printed more than the output limit ({d.run.output_bytes} bytes read, then killed)"
        )
    if d.run.signal == signal.SIGXFSZ:
        return d.violation("file-size", "exceeded the file-size limit writing a file")
    return None


def resource_limit(d: _Decision) -> Verdict | None:
    for error in d.run.errors + [_dict(c.get("error")) for c in d.run.failed_calls]:
        text = f"{_text(error.get('type'))} {_text(error.get('message'), 2000)}"
        if MEMORY.search(text):
            return d.violation("memory", f"exceeded the memory limit: {_summary(error)}")
        if "BlockingIOError" in text or "Resource temporarily unavailable" in text:
            return d.violation("processes", f"exceeded the process limit: {_summary(error)}")
        if error.get("errno") == errno.EFBIG or "File too large" in text:  # Python ignores SIGXFSZ
            return d.violation("file-size", f"exceeded the file-size limit: {_summary(error)}")
    return None


def hang(d: _Decision) -> Verdict | None:
    run = d.run
    if not (run.timed_out or run.signal == signal.SIGXCPU):
        return None
    stack = stack_at_timeout(run.tail)
    if stack:
        d.evidence["stack"] = stack["frames"][-15:]
    # The stage only when the converter was running when time ran out.
    stage = infer_stage(stack, run.tail, d.context.rules)[0] if run.converter_running else None
    why = "CPU-time limit reached" if run.signal == signal.SIGXCPU else f"no result after {run.timeout or '?'} s"
    where = "inside the converter" if stage else "before the converter was called"
    return d.verdict("hang", stage, f"{why} ({where})")


def orphans(d: _Decision) -> Verdict | None:
    count = d.run.leftover_processes
    return d.violation("orphans", f"left {count} process(es) running after it ended (killed)") if count else None


def converter_crash(d: _Decision) -> Verdict | None:
    run = d.run
    if run.failed_calls:
        error = _dict(run.failed_calls[0].get("error"))
        d.evidence["error"] = error  # compared with what the reporter pasted (repro.same_error)
        return d.verdict("crash", d.stage_of(error), root_summary(error), True)
    if run.signal is not None and run.converter_running and run.converted < len(run.starts):
        stage = d.stage_of(None)
        return d.verdict("crash", stage, f"the converter killed the interpreter (signal {run.signal})", True)
    return None


def runtime_failure(d: _Decision) -> Verdict | None:
    run = d.run
    if run.signal is not None and run.converter_running:
        # ONNX Runtime runs in the checker, not here: the framework's own reference run died.
        reason = f"the interpreter was killed (signal {run.signal}) after the conversion, running the framework model"
        return d.verdict("converted-not-compared", None, reason, True)
    for call in run.calls:
        ort = _dict(call.get("ort"))
        if ort.get("status") == "load-fail":
            return d.verdict("ort-load-fail", None, _summary(_dict(ort.get("error"))), True)
        if ort.get("status") == "run-fail":
            reason = f"ONNX Runtime loads the model but cannot run it: {_summary(_dict(ort.get('error')))}"
            return d.verdict("ort-load-fail", None, reason, True)
    return None


def outputs_differ(d: _Decision) -> Verdict | None:
    policy = d.context.policy
    for call in d.run.calls:
        rows = [r for r in _list(call.get("compare")) if isinstance(r, dict)]
        bad = [r for r in rows if not _dict(r.get("within")).get(policy, False)]
        if bad:
            d.evidence["mismatched_outputs"] = bad
            worst = max(
                (r.get("max_abs") or 0.0 for r in bad if isinstance(r.get("max_abs"), int | float)), default=None
            )
            detail = f"max |Δ| {worst:.3g}" if worst is not None else _text(bad[0].get("problem"), 100)
            reason = f"{len(bad)} of {len(rows)} output(s) differ beyond policy {policy} ({detail})"
            return d.verdict("wrong-model", None, reason, True)
    return None


def converted(d: _Decision) -> Verdict | None:
    """A conversion that ran: ``passes`` only when outputs were compared, and then it says that the
    graph itself (a fusion, an attribute) was not judged; its operators are in the evidence."""
    run = d.run
    if not run.calls:
        return None
    compared = [c for c in run.calls if _list(c.get("compare"))]
    notes = [_text(c.get("compare_skipped")) for c in run.calls if c.get("compare_skipped")]
    notes += [f"the check failed: {_summary(_dict(c.get('check_error')))}" for c in run.calls if c.get("check_error")]
    if run.errors:
        notes.append(f"the script failed after the conversion: {_summary(run.errors[0])}")
    d.evidence["graph"] = [
        {k: c.get(k) for k in ("api", "opset", "nodes", "op_counts", "attributes") if c.get(k) is not None}
        for c in run.calls
    ]
    if not compared:
        reason = "; ".join(notes) or "converted, but nothing was compared"
        return d.verdict("converted-not-compared", None, reason, True)
    return d.verdict("passes", None, "; ".join(["outputs match; graph not judged", *notes]), True)


def script_failed(d: _Decision) -> Verdict | None:
    run = d.run
    if run.errors:
        converter_errors = [e for e in run.errors if touches_converter(e, d.context.knowledge)]
        if converter_errors:
            error = converter_errors[0]
            d.evidence["error"] = error
            return d.verdict("crash", d.stage_of(error), root_summary(error), True)
        d.evidence["error"] = run.errors[0]
        return d.verdict("not-runnable", None, not_runnable_reason(run.errors[0]), False)
    if run.exit_code:
        return d.verdict("not-runnable", None, f"exited with status {run.exit_code} before any conversion", False)
    if run.signal is not None:
        return d.verdict("not-runnable", None, f"killed by signal {run.signal} before any conversion", False)
    return d.verdict("not-runnable", None, "the script never called a converter", False)


RULES: tuple[Rule, ...] = (
    memory_as_a_whole,
    sandbox_failed,
    forbidden_attempt,
    output_or_file_limit,
    resource_limit,
    hang,
    orphans,
    converter_crash,
    runtime_failure,
    outputs_differ,
    converted,
    script_failed,
)


def decide(result: dict[str, Any] | RunResult, policy: str, rules: StageRules | None = None) -> Verdict:
    """The verdict of one run under the named tolerance policy: the first rule that applies."""
    known = knowledge()
    run = result if isinstance(result, RunResult) else RunResult.parse(result)
    decision = _Decision(run, Context(policy, rules or known.stages, known))
    for rule in RULES:
        verdict = rule(decision)
        if verdict is not None:
            return verdict
    raise AssertionError("script_failed always decides")  # pragma: no cover
