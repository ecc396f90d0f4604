"""Reading a failure's stage (taxonomy/stage.toml codes) from what a failure leaves behind.

The rules are data, one set per converter and format (``data/converters/*.toml``,
``data/formats.toml``), merged in catalog order. They are tried in this order:

1. exception types, from the innermost cause outwards;
2. messages (older releases raised plain RuntimeErrors);
3. frames, from the innermost cause's innermost frame outwards: the first rule matching a frame
   (a path fragment and an optional function regex) decides;
4. the exporter's own progress messages (the last one printed);
5. otherwise "not-distinguishable".

An error is a dict as the sandbox shim records it and :func:`issuemine.domain.tracebacks.parse_traceback`
reads it from pasted text: ``type``, ``message``, ``frames`` (file, line, func) and ``cause``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from issuemine.domain.tracebacks import parse_traceback
from issuemine.errors import IssuemineError

NOT_DISTINGUISHABLE = "not-distinguishable"
ANNOUNCEMENT = re.compile(r"^\[torch\.onnx\] (?P<text>.*?)\.\.\.(?P<mark> ✅| ❌)?\s*$", re.M)
FrameRule = tuple[str, "re.Pattern[str] | None", str]


@dataclass(frozen=True)
class StageRules:
    exceptions: tuple[tuple[str, str], ...] = ()
    frames: tuple[FrameRule, ...] = ()
    announcements: tuple[tuple[str, str], ...] = ()
    messages: tuple[tuple[re.Pattern[str], str], ...] = ()

    def merged(self, other: StageRules) -> StageRules:
        return StageRules(
            self.exceptions + other.exceptions,
            self.frames + other.frames,
            self.announcements + other.announcements,
            self.messages + other.messages,
        )


def parse_stage_rules(raw: Any, where: str) -> StageRules:
    """``[[stage.exception]]`` (type, stage), ``[[stage.message]]`` (pattern, stage),
    ``[[stage.frame]]`` (path, function?, stage), ``[[stage.announcement]]`` (text, stage)."""
    if not isinstance(raw, dict):
        raise IssuemineError(f"{where} must be a table")
    unknown = set(raw) - {"exception", "frame", "announcement", "message"}
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
    for item in causes:
        for frame in reversed(frames(item)):
            file = _text(frame.get("file"), 1000).replace("\\", "/")
            function = _text(frame.get("func"), 300)
            for fragment, pattern, stage in rules.frames:
                if fragment in file and (pattern is None or pattern.search(function)):
                    return stage, f"frame {re.split(r'(?:site|dist)-packages/', file)[-1]}:{function}"
    text = last_announcement(tail)
    if text:
        for prefix, stage in rules.announcements:
            if text.startswith(prefix):
                return stage, f"exporter message '{text}...'"
    return NOT_DISTINGUISHABLE, "no converter frame, exception or message identifies the stage"


def stage_from_pasted(tracebacks: list[str], rules: StageRules) -> str | None:
    """The stage the first readable traceback a reporter pasted implies (None when none is readable)."""
    for text in tracebacks:
        error = parse_traceback(str(text))
        if error:
            return infer_stage(error, "", rules)[0]
    return None
