"""Reading a failure's stage (taxonomy/stage.toml codes) from what a failure leaves behind.

The rules are data, one set per converter and format (``data/converters/*.toml``,
``data/formats.toml``), merged in catalog order. They are tried in this order:

1. exception types, from the innermost cause outwards;
2. messages (older releases raised plain RuntimeErrors);
3. frames, from the innermost cause's innermost frame outwards: the first rule matching a frame
   (a path fragment and an optional function regex) decides. The converters' frame rules are
   tried over the whole stack before the formats' (ONNX's checker, shape inference): when a
   converter calls ONNX's shape inference in the middle of converting a node, the converter's
   step is the stage, as raters read it; ONNX's frames decide only outside any converter step;
4. the converter's log lines (``[[stage.log]]``: tf2onnx's "Failed to convert node"), the latest
   in the text, then the exporter's own progress messages (the last one printed);
5. an import failure (the converter or a dependency cannot be imported): "not-distinguishable";
6. any other error: "node-conversion". Calibrated on the development set (tests/devset/): raters
   who see a conversion traceback that names no step place it in node conversion (most failures
   arise there); they keep "not distinguishable" for threads about building, importing, CI and
   features, which leave no conversion traceback.

With no error at all (a hang's stack, a killed interpreter) and nothing else to go on, the stage
stays "not-distinguishable".

An error is a dict as the sandbox shim records it and :func:`issuemine.domain.tracebacks.parse_traceback`
reads it from pasted text: ``type``, ``message``, ``frames`` (file, line, func) and ``cause``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from issuemine.domain.tracebacks import parse_traceback
from issuemine.errors import IssuemineError

NOT_DISTINGUISHABLE = "not-distinguishable"
FALLBACK = "node-conversion"
IMPORT_FAILURES = ("ModuleNotFoundError", "ImportError")
ANNOUNCEMENT = re.compile(r"^\[torch\.onnx\] (?P<text>.*?)\.\.\.(?P<mark> ✅| ❌)?\s*$", re.M)
FrameRule = tuple[str, "re.Pattern[str] | None", str]


@dataclass(frozen=True)
class StageRules:
    exceptions: tuple[tuple[str, str], ...] = ()
    frames: tuple[FrameRule, ...] = ()
    announcements: tuple[tuple[str, str], ...] = ()
    messages: tuple[tuple[re.Pattern[str], str], ...] = ()
    logs: tuple[tuple[re.Pattern[str], str], ...] = ()
    late_frames: tuple[FrameRule, ...] = ()  # tried after every frame rule above: a format's (ONNX's)

    def merged(self, other: StageRules) -> StageRules:
        return StageRules(
            self.exceptions + other.exceptions,
            self.frames + other.frames,
            self.announcements + other.announcements,
            self.messages + other.messages,
            self.logs + other.logs,
            self.late_frames + other.late_frames,
        )

    def as_late(self) -> StageRules:
        """These rules with their frame rules tried after the converters' (a format's rules)."""
        return replace(self, frames=(), late_frames=self.late_frames + self.frames)


def parse_stage_rules(raw: Any, where: str) -> StageRules:
    """``[[stage.exception]]`` (type, stage), ``[[stage.message]]`` (pattern, stage),
    ``[[stage.frame]]`` (path, function?, stage), ``[[stage.announcement]]`` (text, stage),
    ``[[stage.log]]`` (pattern, stage)."""
    if not isinstance(raw, dict):
        raise IssuemineError(f"{where} must be a table")
    unknown = set(raw) - {"exception", "frame", "announcement", "message", "log"}
    if unknown:
        raise IssuemineError(f"{where}: unknown rule kind(s) {', '.join(sorted(unknown))}")
    try:
        return StageRules(
            tuple((e["type"], e["stage"]) for e in raw.get("exception", [])),
            tuple(
                (f["path"], re.compile(f["function"]) if f.get("function") else None, f["stage"])
                for f in raw.get("frame", [])
            ),
            tuple((a["text"], a["stage"]) for a in raw.get("announcement", [])),
            tuple((re.compile(m["pattern"]), m["stage"]) for m in raw.get("message", [])),
            tuple((re.compile(m["pattern"], re.M), m["stage"]) for m in raw.get("log", [])),
        )
    except (KeyError, TypeError, re.error) as exc:
        raise IssuemineError(f"{where}: a rule lacks a field or has a bad pattern ({exc})") from None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int = 500) -> str:
    return str(value)[:limit] if value is not None else ""


def chain(error: dict[str, Any] | None) -> list[dict[str, Any]]:
    """An exception and its causes, innermost cause first."""
    found, seen, current = [], 0, _dict(error)
    while current and seen < 5:
        found.append(current)
        current, seen = _dict(current.get("cause")), seen + 1
    return list(reversed(found))


def frames(error: dict[str, Any]) -> list[dict[str, Any]]:
    value = error.get("frames")
    return [f for f in value if isinstance(f, dict)] if isinstance(value, list) else []


def last_announcement(tail: str) -> str | None:
    """The exporter's last progress message: the step it was in, or had just finished, when it stopped."""
    found = list(ANNOUNCEMENT.finditer(tail or ""))
    return found[-1]["text"] if found else None


def infer_stage(error: dict[str, Any] | None, tail: str, rules: StageRules) -> tuple[str, str]:
    """(stage, how it was decided) for a failure."""
    causes = chain(error)
    exceptions = dict(rules.exceptions)
    # Pasted tracebacks (IPython, Colab) often show only the class name.
    short = {name.rsplit(".", 1)[-1]: stage for name, stage in rules.exceptions}
    for item in causes:
        kind = _text(item.get("type"), 300)
        if kind in exceptions:
            return exceptions[kind], f"exception {kind}"
        if "." not in kind and kind in short:
            return short[kind], f"exception {kind}"
    for item in causes:
        message = _text(item.get("message"), 4000)
        for regex, stage in rules.messages:
            if regex.search(message):
                return stage, f"message matching {regex.pattern!r}"
    for frame_rules in (rules.frames, rules.late_frames):
        found = _by_frames(causes, frame_rules)
        if found:
            return found
    found = _by_log(tail, rules)
    if found:
        return found
    text = last_announcement(tail)
    if text:
        for prefix, stage in rules.announcements:
            if text.startswith(prefix):
                return stage, f"exporter message '{text}...'"
    if any(_text(item.get("type"), 300).endswith(IMPORT_FAILURES) for item in causes):
        return NOT_DISTINGUISHABLE, "an import failure: no conversion step ran"
    if any(item.get("type") or item.get("message") for item in causes):
        return FALLBACK, "a conversion error no rule places (raters place these in node conversion)"
    if any(frames(item) for item in causes):
        # A traceback cut before its exception line (a partial paste, a stack at a hang): on the
        # development set raters placed such threads in a stage, node conversion most often (4 of 6),
        # never in "not distinguishable", which they keep for threads with no trace of the failure.
        return FALLBACK, "a traceback without its exception line no rule places (raters: node conversion)"
    return NOT_DISTINGUISHABLE, "no converter frame, exception or message identifies the stage"


def _by_frames(causes: list[dict[str, Any]], frame_rules: tuple[FrameRule, ...]) -> tuple[str, str] | None:
    for item in causes:
        for frame in reversed(frames(item)):
            file = _text(frame.get("file"), 1000).replace("\\", "/")
            function = _text(frame.get("func"), 300)
            for fragment, pattern, stage in frame_rules:
                if fragment in file and (pattern is None or pattern.search(function)):
                    return stage, f"frame {re.split(r'(?:site|dist)-packages/', file)[-1]}:{function}"
    return None


def _by_log(tail: str, rules: StageRules) -> tuple[str, str] | None:
    """The converter's log line that comes last in the text decides."""
    best: tuple[int, str, str] | None = None
    for regex, stage in rules.logs:
        for match in regex.finditer(tail or ""):
            if best is None or match.start() >= best[0]:
                best = (match.start(), stage, f"log line matching {regex.pattern!r}")
    return (best[1], best[2]) if best else None


def stage_from_pasted(tracebacks: list[str], rules: StageRules) -> str | None:
    """The stage the first readable traceback a reporter pasted implies (None when none is readable)."""
    found = reading_of_pasted(tracebacks, rules)
    return found[0] if found else None


def reading_of_pasted(tracebacks: list[str], rules: StageRules) -> tuple[str, str] | None:
    """(stage, the rule that decided) for the first readable traceback a reporter pasted."""
    for text in tracebacks:
        error = parse_traceback(str(text))
        if error:
            return infer_stage(error, str(text), rules)
    return None


def rule_name(how: str) -> str:
    """A deciding rule by name: a frame's rule by the package path of its file (the same rule fires
    on many installs), others as they say it."""
    if not how.startswith("frame "):
        return how
    path = how[len("frame ") :].split(":")[0]
    found = re.search(r"(?:^|/)((?:torch|tf2onnx|onnx|onnxruntime|onnxscript|tensorflow|keras)/.*)", path)
    return f"frame {found.group(1) if found else path}"
