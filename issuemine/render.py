"""Rendering issues for people: markdown bodies with long tracebacks folded.

A traceback is folded to its exception line and its innermost converter frames (paths under
torch/onnx, tf2onnx, tensorflow, onnxruntime, onnxscript), which is where a labeler looks to tell
the failure's stage; the full text stays one key away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONVERTER_PATHS = re.compile(r"(torch[/\\]onnx|tf2onnx|tensorflow|onnxruntime|onnxscript|[/\\]onnx[/\\])")
FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception|Exit|Interrupt|Failure)\b.*|^\w+: .+")
FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)


@dataclass
class FoldedTraceback:
    exception: str
    frames: list[str]  # innermost converter frames, outermost first
    hidden: int  # lines not shown


def fold_traceback(text: str, keep: int = 3) -> FoldedTraceback | None:
    lines = text.splitlines()
    if not any("Traceback (most recent call last)" in line for line in lines):
        return None
    frames = [(i, m) for i, line in enumerate(lines) if (m := FRAME.match(line))]
    converter = [f"{m['path']}:{m['line']} in {m['func']}" for _, m in frames if CONVERTER_PATHS.search(m["path"])]
    exception = next((line.strip() for line in reversed(lines) if EXCEPTION.match(line.strip())), lines[-1].strip())
    shown = converter[-keep:]
    return FoldedTraceback(exception, shown, max(len(lines) - len(shown) - 1, 0))


def fold_body(body: str, max_lines: int = 12) -> str:
    """The body as markdown, with long traceback blocks replaced by their folded summary."""

    def replace(match: re.Match[str]) -> str:
        block = match.group(1)
        folded = fold_traceback(block)
        if folded is None or len(block.splitlines()) <= max_lines:
            return match.group(0)
        frames = "\n".join(f"  > {f}" for f in folded.frames) or "  (no converter frame)"
        return f"```text\n[traceback folded: {folded.hidden} lines]\n{frames}\n{folded.exception}\n```"

    return FENCE.sub(replace, body)
