"""Reading Python tracebacks: pasted in issues (CPython, IPython, Colab, Windows) or dumped by a run.

One parser serves the label session (folding a long traceback to what a rater needs), extraction
(telling a traceback from code) and verdicts (the stage of a failure, from a run or a pasted
traceback). A parsed traceback has the shape the sandbox shim records: ``type``, ``message``,
``frames`` (file, line, func, innermost last) and, for chained exceptions, ``cause``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# CPython's "Traceback (most recent call last):", and IPython/Colab's "ErrorType   Traceback (most recent call last)".
TB_START = re.compile(r"^(?:[\w.]+[ \t]+)?Traceback \(most recent call last\):?[ \t]*$", re.M)
TB_FRAME = re.compile(
    r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)'
    # IPython >= 8: "File /path/x.py:1402, in func(args)" (also "File ~/x.py:3", "File C:\\x.py:3")
    r"|^\s*File (?P<nfile>(?:/|~|[A-Za-z]:\\)[^\s,]+?\.py):(?P<nline>\d+)(?:, in (?P<nfunc>[\w<>.]+))?"
    # IPython < 8: "/path/x.py in func(args)", Colab: "[/path/x.py](https://localhost:8080/#) in func(args)"
    r"|^\[?(?P<ifile>(?:/|[A-Za-z]:\\)[^\s\[\]()]+\.py)\]?(?:\([^)\s]*\))? in (?P<ifunc>[\w<>.]+)",
    re.M,
)
TB_EXCEPTION = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure))(?::[ \t]*(?P<message>.*))?$", re.M
)
LOOKS_LIKE = re.compile(r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+", re.M)
STACK_DUMP = re.compile(
    r"^(?:Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):\n((?:  File .*\n?)+)", re.M
)
DUMP_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>.+)$', re.M)


def looks_like_traceback(text: str) -> bool:
    return bool(LOOKS_LIKE.search(text or ""))


def _frame(match: re.Match[str]) -> dict[str, Any]:
    file = match["file"] or match["nfile"] or match["ifile"]
    line = match["line"] or match["nline"] or 0
    func = match["func"] or match["nfunc"] or match["ifunc"] or "<module>"
    return {"file": file, "line": int(line), "func": func}


def parse_traceback(text: str) -> dict[str, Any] | None:
    """A pasted Python traceback as the shim would have recorded it: type, message, frames, causes.

    Chained tracebacks ("During handling of the above exception...") become the cause chain."""
    blocks = TB_START.split(text or "")[1:]
    error: dict[str, Any] | None = None
    for block in blocks:
        matches = list(TB_FRAME.finditer(block))
        frames = [_frame(m) for m in matches]
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


def stack_at_timeout(tail: str) -> dict[str, Any] | None:
    """The main thread's stack as the shim dumped it when time ran out (faulthandler format)."""
    dumps = list(STACK_DUMP.finditer(tail or ""))
    if not dumps:
        return None
    current = next((d for d in dumps if d.group(0).startswith("Current thread")), dumps[-1])
    frames = [{"file": m["file"], "line": int(m["line"]), "func": m["func"]} for m in DUMP_FRAME.finditer(current[1])]
    return {"type": "timeout", "message": "stack when time ran out", "frames": list(reversed(frames))}


@dataclass
class FoldedTraceback:
    exception: str
    frames: list[str]  # innermost frames of interest, outermost first
    hidden: int  # lines not shown


def fold_traceback(text: str, keep: int = 3, shown: Callable[[str], bool] | None = None) -> FoldedTraceback | None:
    """The exception line and the innermost frames a rater looks at (by default: converter, format
    and related code of the catalog), or None when ``text`` holds no traceback."""
    error = parse_traceback(text)
    if error is None:
        return None
    if shown is None:
        from issuemine.domain.converters import knowledge

        shown = knowledge().shown
    causes = []
    current: dict[str, Any] | None = error
    while current:
        causes.append(current)
        current = current.get("cause")
    frames = [f for item in reversed(causes) for f in item["frames"]]
    kept = [f"{f['file']}:{f['line']} in {f['func']}" for f in frames if shown(f["file"])][-keep:]
    message = (error["message"] or "").strip().splitlines()
    exception = f"{error['type']}: {message[0]}" if message else error["type"] or text.strip().splitlines()[-1]
    return FoldedTraceback(exception, kept, max(len(text.splitlines()) - len(kept) - 1, 0))
