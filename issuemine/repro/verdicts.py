"""Classify what happened in a sandboxed run: one verdict, the failing stage, and the evidence.

Pure functions over the zygote's answer (exit status, time-out, resource use, output tail and the
shim's events). The events come from inside the sandbox, so every field is read defensively.
"""

from __future__ import annotations

import errno
import re
import signal
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from issuemine.errors import IssuemineError
from issuemine.paths import data_dir

VERDICTS = ("crash", "ort-load-fail", "wrong-model", "hang", "passes", "not-runnable", "sandbox-violation")
NOT_DISTINGUISHABLE = "not-distinguishable"
CONVERTER_PATHS = ("torch/onnx/", "tf2onnx/", "onnxscript/", "onnx_ir/")
MEMORY = re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|std::bad_alloc|out of memory", re.I)
GPU = re.compile(r"CUDA|NVIDIA driver|cudnn|no GPU", re.I)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STACK_DUMP = re.compile(
    r"^(?:Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):\n((?:  File .*\n?)+)", re.M
)
DUMP_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>.+)$', re.M)
ANNOUNCEMENT = re.compile(r"^\[torch\.onnx\] (?P<text>.*?)\.\.\.(?P<mark> ✅| ❌)?\s*$", re.M)


@dataclass(frozen=True)
class Policy:
    name: str
    atol: float
    rtol: float
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "atol": self.atol, "rtol": self.rtol}


@dataclass(frozen=True)
class Policies:
    policies: tuple[Policy, ...]
    default: str

    def get(self, name: str | None) -> Policy:
        name = name or self.default
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise IssuemineError(f"unknown tolerance policy {name!r}; known: {', '.join(p.name for p in self.policies)}")


def load_policies(path: Path | None = None) -> Policies:
    path = path or data_dir() / "tolerance-policies.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        policies = tuple(
            Policy(p["name"], float(p["atol"]), float(p["rtol"]), p.get("source", "")) for p in doc["policy"]
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise IssuemineError(f"cannot read tolerance policies from {path}: {exc}") from exc
    default = doc.get("default", policies[0].name)
    return Policies(policies, default)


@dataclass(frozen=True)
class StageRules:
    exceptions: dict[str, str]
    frames: tuple[tuple[str, re.Pattern[str] | None, str], ...]
    announcements: tuple[tuple[str, str], ...]
    messages: tuple[tuple[re.Pattern[str], str], ...] = ()


def load_stage_rules(path: Path | None = None) -> StageRules:
    path = path or data_dir() / "repro-stages.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        return StageRules(
            {e["type"]: e["stage"] for e in doc.get("exception", [])},
            tuple(
                (f["path"], re.compile(f["function"]) if f.get("function") else None, f["stage"])
                for f in doc.get("frame", [])
            ),
            tuple((a["text"], a["stage"]) for a in doc.get("announcement", [])),
            tuple((re.compile(m["pattern"]), m["stage"]) for m in doc.get("message", [])),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, re.error) as exc:
        raise IssuemineError(f"cannot read stage rules from {path}: {exc}") from exc


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


def _chain(error: dict[str, Any]) -> list[dict[str, Any]]:
    """An exception and its causes, innermost cause first."""
    chain, seen = [], 0
    while error and seen < 5:
        chain.append(error)
        error, seen = _dict(error.get("cause")), seen + 1
    return list(reversed(chain))


def _frames(error: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in _list(error.get("frames")) if isinstance(f, dict)]


def touches_converter(error: dict[str, Any]) -> bool:
    return any(any(p in _text(f.get("file"), 1000) for p in CONVERTER_PATHS) for e in _chain(error) for f in _frames(e))


def last_announcement(tail: str) -> str | None:
    """The exporter's last progress message: the step it was in, or had just finished, when it stopped."""
    found = list(ANNOUNCEMENT.finditer(tail or ""))
    return found[-1]["text"] if found else None


def infer_stage(error: dict[str, Any] | None, tail: str, rules: StageRules) -> tuple[str, str]:
    """(stage, how it was decided) for a failure."""
    chain = _chain(error or {})
    for item in chain:
        kind = _text(item.get("type"), 300)
        if kind in rules.exceptions:
            return rules.exceptions[kind], f"exception {kind}"
    for item in chain:
        message = _text(item.get("message"), 4000)
        for regex, stage in rules.messages:
            if regex.search(message):
                return stage, f"message matching {regex.pattern!r}"
    for item in chain:
        for frame in reversed(_frames(item)):
            file, function = _text(frame.get("file"), 1000), _text(frame.get("func"), 300)
            for fragment, pattern, stage in rules.frames:
                if fragment in file and (pattern is None or pattern.search(function)):
                    return stage, f"frame {re.split(r'(?:site|dist)-packages/', file)[-1]}:{function}"
    text = last_announcement(tail)
    if text:
        for prefix, stage in rules.announcements:
            if text.startswith(prefix):
                return stage, f"exporter message '{text}...'"
    return NOT_DISTINGUISHABLE, "no converter frame, exception or message identifies the stage"


def stack_at_timeout(tail: str) -> dict[str, Any] | None:
    """The main thread's stack as the shim dumped it when time ran out (faulthandler format)."""
    dumps = list(STACK_DUMP.finditer(tail or ""))
    if not dumps:
        return None
    current = next((d for d in dumps if d.group(0).startswith("Current thread")), dumps[-1])
    frames = [{"file": m["file"], "line": int(m["line"]), "func": m["func"]} for m in DUMP_FRAME.finditer(current[1])]
    return {"type": "timeout", "message": "stack when time ran out", "frames": list(reversed(frames))}


# CPython's "Traceback (most recent call last):", and IPython/Colab's "ErrorType   Traceback (most recent call last)".
TB_START = re.compile(r"^(?:[\w.]+[ \t]+)?Traceback \(most recent call last\):?[ \t]*$", re.M)
TB_FRAME = re.compile(
    r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)'
    # IPython: "/path/x.py in func(args)", Colab: "[/path/x.py](https://localhost:8080/#) in func(args)"
    r"|^\[?(?P<ifile>(?:/|[A-Za-z]:\\)[^\s\[\]()]+\.py)\]?(?:\([^)\s]*\))? in (?P<ifunc>[\w<>.]+)",
    re.M,
)
TB_EXCEPTION = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure))(?::[ \t]*(?P<message>.*))?$", re.M
)


def parse_traceback(text: str) -> dict[str, Any] | None:
    """A pasted Python traceback as the shim would have recorded it: type, message, frames, causes.

    Chained tracebacks ("During handling of the above exception...") become the cause chain."""
    blocks = TB_START.split(text or "")[1:]
    error: dict[str, Any] | None = None
    for block in blocks:
        matches = list(TB_FRAME.finditer(block))
        frames = [
            {"file": m["file"] or m["ifile"], "line": int(m["line"] or 0), "func": m["func"] or m["ifunc"]}
            for m in matches
        ]
        after = block[matches[-1].end() :] if matches else block
        exception = TB_EXCEPTION.search(after)
        if not frames and not exception:
            continue
        current: dict[str, Any] = {
            "type": exception["type"] if exception else "",
            "message": (exception["message"] or "") if exception else "",
            "frames": frames,
        }
        if error:
            current["cause"] = error
        error = current
    return error


def _summary(error: dict[str, Any]) -> str:
    message = ANSI.sub("", _text(error.get("message"), 2000)).strip().splitlines()
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


def _violation(kind: str, reason: str, evidence: dict[str, Any], reached: bool) -> Verdict:
    return Verdict("sandbox-violation", None, reason, {**evidence, "violation": kind}, reached)


def decide(result: dict[str, Any], policy: str, rules: StageRules) -> Verdict:
    """The verdict of one run under the named tolerance policy."""
    events = [e for e in _list(result.get("events")) if isinstance(e, dict)]
    tail = _text(result.get("tail"), 1_000_000)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_kind.setdefault(_text(event.get("event"), 40), []).append(event)
    starts, calls = by_kind.get("convert-start", []), by_kind.get("convert", [])
    main_pid = next((e.get("pid") for e in by_kind.get("start", [])), None)
    main_exit = next((e for e in by_kind.get("exit", []) if e.get("pid") == main_pid), {})
    errors = [_dict(main_exit.get("error"))] if main_exit.get("status") == "exception" else []
    errors += [_dict(e.get("error")) for e in by_kind.get("uncaught", []) if e.get("pid") != main_pid]
    errors = [e for e in errors if e]
    reached = bool(starts) or any(touches_converter(e) for e in errors)
    evidence: dict[str, Any] = {
        "calls": calls[:5],
        "exit_code": result.get("exit_code"),
        "signal": result.get("signal"),
    }
    if result.get("sandbox_failure"):
        return _violation("sandbox-server", _text(result["sandbox_failure"]), evidence, reached)

    violations = by_kind.get("violation", [])
    if violations:
        evidence["violations"] = violations[:20]
        kinds = list(dict.fromkeys(_text(v.get("kind"), 40) for v in violations))  # in the order tried
        first = _text(violations[0].get("detail"), 200)
        return _violation(kinds[0], f"tried what the sandbox forbids ({', '.join(kinds)}): {first}", evidence, reached)
    sig = result.get("signal")
    if result.get("output_exceeded"):
        size = result.get("output_bytes")
        reason = f"printed more than the output limit ({size} bytes read, then killed)"
        return _violation("output", reason, evidence, reached)
    if sig == signal.SIGXFSZ:
        return _violation("file-size", "exceeded the file-size limit writing a file", evidence, reached)
    failed_calls = [c for c in calls if c.get("status") == "error"]
    for error in errors + [_dict(c.get("error")) for c in failed_calls]:
        text = f"{_text(error.get('type'))} {_text(error.get('message'), 2000)}"
        if MEMORY.search(text):
            return _violation("memory", f"exceeded the memory limit: {_summary(error)}", evidence, reached)
        if "BlockingIOError" in text or "Resource temporarily unavailable" in text:
            return _violation("processes", f"exceeded the process limit: {_summary(error)}", evidence, reached)
        if error.get("errno") == errno.EFBIG or "File too large" in text:  # Python ignores SIGXFSZ
            return _violation("file-size", f"exceeded the file-size limit: {_summary(error)}", evidence, reached)
    if result.get("timed_out") or sig == signal.SIGXCPU:
        stack = stack_at_timeout(tail)
        if stack:
            evidence["stack"] = stack["frames"][-15:]
        stage = _hang_stage(starts, calls, tail, rules, stack)
        why = "CPU-time limit reached" if sig == signal.SIGXCPU else f"no result after {result.get('timeout', '?')} s"
        where = "inside the converter" if stage else "before the converter was called"
        return Verdict("hang", stage, f"{why} ({where})", evidence, reached)
    if result.get("leftover_processes"):
        count = result["leftover_processes"]
        return _violation("orphans", f"left {count} process(es) running after it ended (killed)", evidence, reached)

    if failed_calls:
        error = _dict(failed_calls[0].get("error"))
        stage, how = infer_stage(error, tail, rules)
        evidence["stage_from"] = how
        return Verdict("crash", stage, _summary(error), evidence, True)
    unfinished = len(starts) > len(calls) and len(by_kind.get("converted", [])) < len(starts)
    if sig is not None and unfinished:
        stage, how = infer_stage(None, tail, rules)
        evidence["stage_from"] = how
        return Verdict("crash", stage, f"the converter killed the interpreter (signal {sig})", evidence, True)
    if sig is not None and len(starts) > len(calls):
        return Verdict("ort-load-fail", None, f"ONNX Runtime killed the interpreter (signal {sig})", evidence, True)
    for call in calls:
        ort = _dict(call.get("ort"))
        if ort.get("status") == "load-fail":
            return Verdict("ort-load-fail", None, _summary(_dict(ort.get("error"))), evidence, True)
        if ort.get("status") == "run-fail":
            reason = f"ONNX Runtime loads the model but cannot run it: {_summary(_dict(ort.get('error')))}"
            return Verdict("ort-load-fail", None, reason, evidence, True)
        rows = [r for r in _list(call.get("compare")) if isinstance(r, dict)]
        bad = [r for r in rows if not _dict(r.get("within")).get(policy, False)]
        if bad:
            evidence["mismatched_outputs"] = bad
            worst = max(
                (r.get("max_abs") or 0.0 for r in bad if isinstance(r.get("max_abs"), int | float)), default=None
            )
            detail = f"max |Δ| {worst:.3g}" if worst is not None else _text(bad[0].get("problem"), 100)
            reason = f"{len(bad)} of {len(rows)} output(s) differ beyond policy {policy} ({detail})"
            return Verdict("wrong-model", None, reason, evidence, True)
    if calls:
        notes = [_text(c.get("compare_skipped")) for c in calls if c.get("compare_skipped")]
        if errors:
            notes.append(f"the script failed after the conversion: {_summary(errors[0])}")
        return Verdict("passes", None, "; ".join(notes) or None, evidence, True)
    if errors:
        converter_errors = [e for e in errors if touches_converter(e)]
        if converter_errors:
            stage, how = infer_stage(converter_errors[0], tail, rules)
            evidence["stage_from"] = how
            return Verdict("crash", stage, _summary(converter_errors[0]), evidence, True)
        evidence["error"] = errors[0]
        return Verdict("not-runnable", None, not_runnable_reason(errors[0]), evidence, False)
    if result.get("exit_code"):
        return Verdict(
            "not-runnable", None, f"exited with status {result['exit_code']} before any conversion", evidence
        )
    if sig is not None:
        return Verdict("not-runnable", None, f"killed by signal {sig} before any conversion", evidence)
    return Verdict("not-runnable", None, "the script never called a converter", evidence)


def _hang_stage(
    starts: list[Any], calls: list[Any], tail: str, rules: StageRules, stack: dict[str, Any] | None
) -> str | None:
    if len(starts) <= len(calls):
        return None  # the converter was not running when time ran out
    stage, _ = infer_stage(stack, tail, rules)
    return stage
