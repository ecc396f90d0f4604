"""An issue as a rater reads it: markdown with long tracebacks folded.

A traceback is folded to its exception line and its innermost converter frames (the catalog's
converter, format and related source paths), which is where a labeler looks to tell the failure's
stage; the full text stays one key away.
"""

from __future__ import annotations

import re

from issuemine.domain.tracebacks import fold_traceback

FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)


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
