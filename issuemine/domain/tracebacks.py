"""Reading Python tracebacks: pasted in issues (CPython, IPython, Colab, Windows) or dumped by a run.

Pasted tracebacks come as people paste them: in fences or plain paragraphs, quoted with ``>``,
behind logging prefixes (``ERROR:root:``, ``2021-03-01 10:00:00,123 - ERROR - tf2onnx.tfonnx:``),
as pytest's ``E   `` lines, in bold or inline code, without their header line, or only as the
C++ message of a failed ``INTERNAL ASSERT`` (whose source file is then the innermost frame).
:func:`find_tracebacks` cleans that up and cuts each traceback out of a post.

One parser serves the label session (folding a long traceback to what a rater needs), extraction
(telling a traceback from code) and verdicts (the stage of a failure, from a run or a pasted
traceback). A parsed traceback has the shape the sandbox shim records: ``type``, ``message``,
``frames`` (file, line, func, innermost last) and, for chained exceptions, ``cause``.
"""

from __future__ import annotations

import re
import traceback
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
    r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Failure)"
    # ONNX Runtime's exceptions are named by status: Fail, InvalidGraph, NotImplemented...
    r"|[\w.]*onnxruntime_pybind11_state\.\w+)(?::[ \t]*(?P<message>.*))?$",
    re.M,
)
LOOKS_LIKE = re.compile(r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+", re.M)
STACK_DUMP = re.compile(
    r"^(?:Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):\n((?:  File .*\n?)+)", re.M
)
DUMP_FRAME = re.compile(r'^  File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>.+)$', re.M)


CPP_ASSERT = re.compile(r'INTERNAL ASSERT FAILED at "(?P<file>[^"]+)":(?P<line>\d+)')
QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+(?!-)")
LOG_PREFIX = re.compile(
    r"^(?:\[?\d{4}-\d\d-\d\d[ T][\d:.,]+\]?[ \t]*(?:-[ \t]*)?)?"  # a timestamp
    r"(?:(?:ERROR|WARNING|WARN|INFO|DEBUG|CRITICAL|FATAL)(?::[\w.]*:|[ \t]+-[ \t]+(?:[\w.]+:[ \t]*)?))"
)
PYTEST_E = re.compile(r"^E {2,}")
# Bold and inline code; not __x__, which would eat Python's dunders.
EMPHASIS = re.compile(r"\*\*(.+?)\*\*|(?<![`\w])`([^`\n]+)`(?![`\w])")
PYTEST_LOCATION = re.compile(r"^(?P<file>\S+\.py):(?P<line>\d+): (?P<type>[A-Za-z_][\w.]*)$")
CHAIN = re.compile(r"^(?:During handling of the above exception|The above exception was the direct cause)")


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes (the dynamo exporter colours its messages)


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def exception_text(exc: BaseException) -> str:
    """The exception's type and message as Python prints them, without colour codes."""
    return strip_ansi("".join(traceback.format_exception_only(type(exc), exc))).strip()


def clean_lines(text: str) -> list[str]:
    """The lines of a post with quoting, logging prefixes, pytest markers and emphasis removed."""
    lines = []
    for line in (text or "").replace("\r\n", "\n").split("\n"):
        line = QUOTE.sub("", line)
        line = PYTEST_E.sub("", LOG_PREFIX.sub("", line))
        line = EMPHASIS.sub(lambda m: m.group(1) or m.group(2), line)
        lines.append(line.rstrip())
    return lines


def looks_like_traceback(text: str) -> bool:
    cleaned = "\n".join(clean_lines(text))
    return bool(LOOKS_LIKE.search(cleaned) or CPP_ASSERT.search(cleaned))


def _exception_end(lines: list[str], start: int, stop: int) -> int:
    """The index after the exception line (and its message's continuation) of a traceback at ``start``."""
    last_frame = start
    for i in range(start, stop):
        if TB_FRAME.match(lines[i]):
            last_frame = i
    for i in range(last_frame + 1, stop):
        if TB_EXCEPTION.match(lines[i].strip()):
            end = i + 1
            while end < stop and lines[end].strip() and end - i < 6 and not TB_START.match(lines[end]):
                end += 1
            return end
    return min(stop, last_frame + 2)


def _pytest_tracebacks(lines: list[str]) -> list[int]:
    """pytest's report of a failure (``E   SomeError: ...`` then ``path.py:42: SomeError``), rewritten
    in place as a CPython traceback; the indices of the tracebacks made."""
    starts = []
    for i in range(len(lines) - 1, -1, -1):
        location = PYTEST_LOCATION.match(lines[i].strip())
        if not location:
            continue
        exception = next((j for j in range(i - 1, max(i - 30, -1), -1) if TB_EXCEPTION.match(lines[j].strip())), None)
        if exception is None:
            continue
        message = lines[exception].strip()
        frame = f'  File "{location["file"]}", line {location["line"]}, in <unknown>'
        lines[exception : i + 1] = ["Traceback (most recent call last):", frame, message]
        starts.append(exception)
    return sorted(starts)


def find_tracebacks(text: str) -> list[str]:
    """Every traceback in a post, cleaned, chained ones kept together; a failed C++ assert with no
    Python traceback around it counts as one too."""
    lines = clean_lines(text)
    starts = [i for i, line in enumerate(lines) if TB_START.match(line)]
    if not starts:
        starts = _pytest_tracebacks(lines)
    if not starts:  # pasted without the header line: from the first CPython frame on
        frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "') and TB_FRAME.match(line)]
        if len(frames) >= 2:
            lines.insert(frames[0], "Traceback (most recent call last):")
            starts = [frames[0]]
    found: list[str] = []
    i = 0
    while i < len(starts):
        start, j = starts[i], i
        while True:  # chained tracebacks: up to the last block of the chain
            stop = starts[j + 1] if j + 1 < len(starts) else len(lines)
            end = _exception_end(lines, starts[j], stop)
            between = [line for line in lines[end:stop] if line.strip()]
            if j + 1 < len(starts) and between and CHAIN.match(between[0].strip()) and len(between) <= 2:
                j += 1
                continue
            break
        found.append("\n".join(lines[start:end]).strip("\n") + "\n")
        i = j + 1
    covered = "\n".join(found)
    for line in lines:
        assertion = CPP_ASSERT.search(line)
        if assertion and assertion[0] not in covered:
            found.append(line.strip() + "\n")
    return found


def _frame(match: re.Match[str]) -> dict[str, Any]:
    file = match["file"] or match["nfile"] or match["ifile"]
    line = match["line"] or match["nline"] or 0
    func = match["func"] or match["nfunc"] or match["ifunc"] or "<module>"
    return {"file": file, "line": int(line), "func": func}


def _cpp_frame(message: str) -> dict[str, Any] | None:
    found = CPP_ASSERT.search(message or "")
    if not found:
        return None
    return {"file": found["file"].replace("\\\\", "/").replace("\\", "/"), "line": int(found["line"]), "func": ""}


def parse_traceback(text: str) -> dict[str, Any] | None:
    """A pasted Python traceback as the shim would have recorded it: type, message, frames, causes.

    Chained tracebacks ("During handling of the above exception...") become the cause chain. The
    source file of a failed C++ assert in the message is the innermost frame; a C++ assert alone
    (no Python traceback) is a RuntimeError with that one frame."""
    text = "\n".join(clean_lines(text))
    blocks = TB_START.split(text)[1:]
    if not blocks:
        for line in text.splitlines():
            frame = _cpp_frame(line)
            if frame:
                message = line.split("RuntimeError:", 1)[-1].strip()
                return {"type": "RuntimeError", "message": message, "frames": [frame]}
        return None
    error: dict[str, Any] | None = None
    for block in blocks:
        matches = list(TB_FRAME.finditer(block))
        frames = [_frame(m) for m in matches]
        after = block[matches[-1].end() :] if matches else block
        exception = TB_EXCEPTION.search(after)
        if not frames and not exception:
            continue
        message = (exception["message"] or "") if exception else ""
        cpp = _cpp_frame(after)
        current: dict[str, Any] = {
            "type": exception["type"] if exception else "",
            "message": message,
            "frames": frames + ([cpp] if cpp else []),
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
