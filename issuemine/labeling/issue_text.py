"""An issue as a rater reads it: markdown with long tracebacks folded.

A traceback is folded to its exception line and its innermost converter frames (the catalog's
converter, format and related source paths), which is where a labeler looks to tell the failure's
stage; the full text stays one key away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


@dataclass
class TextPane:
    """What the scrollable text pane shows (the report, comments or the codebook) and where.

    The front end knows the terminal: it sets ``page`` to the lines that fit and clamps ``scroll``
    to the text it rendered; the session only moves the window.
    """

    view: str = "report"
    scroll: int = 0
    page: int = 10
    unfold: bool = False

    def reset(self) -> None:
        self.view, self.scroll = "report", 0

    def toggle(self, view: str) -> None:
        """Comments and the codebook replace the report; the same key brings the report back."""
        self.view = "report" if self.view == view else view
        self.scroll = 0

    def press(self, key: str) -> bool:
        """Handle a scrolling or unfolding key; False for any other key."""
        page = max(1, self.page - 1)  # a page overlaps the previous by one line, as in less
        if key in ("pgdn", " "):
            self.scroll += page
        elif key == "pgup":
            self.scroll = max(0, self.scroll - page)
        elif key == "down":
            self.scroll += 1
        elif key == "up":
            self.scroll = max(0, self.scroll - 1)
        elif key == "home":
            self.scroll = 0
        elif key == "end":
            self.scroll = 1 << 30  # clamped to the last page when drawn
        elif key == "t":
            self.unfold, self.scroll = not self.unfold, 0
        else:
            return False
        return True

    def clamp(self, lines: int) -> tuple[int, int]:
        """Fit the window to a text of ``lines`` lines; returns the first and last line shown (0-based, exclusive)."""
        self.scroll = max(0, min(self.scroll, lines - self.page))
        return self.scroll, min(lines, self.scroll + self.page)
