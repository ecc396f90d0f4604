"""Is a re-run's failure the one the reporter pasted? ("I reproduced it", as a maintainer means it.)

Both sides are reduced to a signature: the exception's class name and its message's first line,
normalized (paths, addresses, numbers, tensor and node names masked, case and spacing folded), and
the innermost frame in the converter's own code. Two failures are the same error when some
exception of one chain has the class and message of some exception of the other (messages match
when equal, when one starts with the other, a release having reworded its tail, or when they share
at least 70% of their words), and, where both show a converter frame, the innermost ones are the
same function of the same file. A re-run that fails but whose thread pasted no readable error is
``nothing-reported``; comparing needs both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from issuemine.domain.converters import Knowledge, knowledge
from issuemine.domain.stages import chain, frames
from issuemine.domain.tracebacks import parse_traceback, strip_ansi

SAME, DIFFERENT, NOTHING = "same-error", "different-error", "nothing-reported"
MASKS = (
    (re.compile(r"(?<!\w)(?:[A-Za-z]:)?(?:[\\/][\w.<>~-]+){2,}[\\/]?"), "<path>"),  # /a/b/c.py, C:\a\b
    (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
    (re.compile(r"%[\w.:]+"), "<value>"),  # TorchScript values: %x.1, %onnx::Add_3
    (re.compile(r"\b[\w.-]+(?:/[\w.:-]+)+"), "<node>"),  # TensorFlow node names: model/conv/BiasAdd:0
    (re.compile(r"\d+(?:\.\d+)*"), "<n>"),
)
SIMILAR_WORDS = 0.7


@dataclass(frozen=True)
class Signature:
    kind: str  # class name without its module
    message: str  # normalized first line
    frame: str | None  # innermost converter frame: "file.py:function"

    def shown(self) -> str:
        where = f" at {self.frame}" if self.frame else ""
        return f"{self.kind}: {self.message}{where}"


def normalize(message: str) -> str:
    lines = [line.strip() for line in strip_ansi(message or "").splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for pattern, mask in MASKS:
        text = pattern.sub(mask, text)
    return re.sub(r"\s+", " ", text).strip(" .:").lower()


def signatures(error: dict[str, Any] | None, known: Knowledge) -> list[Signature]:
    """One signature per exception of the chain, innermost cause first."""
    found = []
    for item in chain(error):
        kind = str(item.get("type") or "").rsplit(".", 1)[-1]
        if not kind and not item.get("message"):
            continue
        found.append(Signature(kind, normalize(str(item.get("message") or "")), _converter_frame(item, known)))
    return found


def _converter_frame(error: dict[str, Any], known: Knowledge) -> str | None:
    for frame in reversed(frames(error)):
        file = str(frame.get("file") or "").replace("\\", "/")
        if known.touches_converter(file):
            return f"{file.rsplit('/', 1)[-1]}:{frame.get('func')}"
    return None


def _messages_match(a: str, b: str) -> bool:
    if a == b or (a and b and (a.startswith(b) or b.startswith(a))):
        return True
    words_a, words_b = set(a.split()), set(b.split())
    if not words_a or not words_b:
        return False
    return len(words_a & words_b) / len(words_a | words_b) >= SIMILAR_WORDS


def same(reported: list[Signature], rerun: list[Signature]) -> bool:
    for want in reported:
        for got in rerun:
            if want.kind != got.kind or not _messages_match(want.message, got.message):
                continue
            if want.frame and got.frame and want.frame != got.frame:
                continue
            return True
    return False


def rerun_error(verdict: str, evidence: dict[str, Any]) -> dict[str, Any] | None:
    """The error a failing re-run ended with, from its stored evidence."""
    if verdict == "crash":
        if isinstance(evidence.get("error"), dict):
            return evidence["error"]
        for call in evidence.get("calls") or []:
            if isinstance(call, dict) and call.get("status") == "error" and isinstance(call.get("error"), dict):
                return call["error"]
    if verdict == "ort-load-fail":
        for call in evidence.get("calls") or []:
            ort = call.get("ort") if isinstance(call, dict) else None
            if isinstance(ort, dict) and isinstance(ort.get("error"), dict):
                return ort["error"]
    return None


def compare(
    pasted: list[str], verdict: str, evidence: dict[str, Any], known: Knowledge | None = None
) -> dict[str, Any] | None:
    """``same-error``, ``different-error`` or ``nothing-reported`` for a failing re-run, with both
    sides shown; None for a re-run that did not fail with an error."""
    known = known or knowledge()
    error = rerun_error(verdict, evidence)
    if error is None:
        return None
    rerun = signatures(error, known)
    reported: list[Signature] = []
    for text in pasted:
        parsed = parse_traceback(str(text))
        if parsed:
            reported = signatures(parsed, known)
            if reported:
                break
    shown = {"rerun": rerun[-1].shown() if rerun else ""}
    if not reported:
        return {"match": NOTHING, **shown, "reported": ""}
    match = SAME if same(reported, rerun) else DIFFERENT
    return {"match": match, **shown, "reported": reported[-1].shown()}
