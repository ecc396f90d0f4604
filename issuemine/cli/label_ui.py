"""The terminal front end of the labeling session: renders screens, reads single keys.

Works over SSH and inside tmux: plain ANSI output through rich, keys read in cbreak mode (no
curses, no full-screen takeover), so a closed terminal loses nothing already answered.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markdown import Markdown
from rich.panel import Panel
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from issuemine.cli.common import printable
from issuemine.errors import IssuemineError
from issuemine.labeling.adjudication import AdjudicationSession
from issuemine.labeling.issue_text import TextPane, fold_body
from issuemine.labeling.session import LabelSession, Screen

# Escape sequences of the keys that scroll the text pane (xterm, VT220 and tmux send these).
ESCAPES = {
    "\x1b[5~": "pgup",
    "\x1b[6~": "pgdn",
    "\x1b[A": "up",
    "\x1b[B": "down",
    "\x1b[H": "home",
    "\x1b[F": "end",
    "\x1b[1~": "home",
    "\x1b[4~": "end",
    "\x1bOH": "home",
    "\x1bOF": "end",
}


def _date(value: object) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "?"  # type: ignore[attr-defined]


class GithubMarkdown(Markdown):
    """Markdown as GitHub shows issues: a line break in the text is a line break on screen, so an
    environment block ("PyTorch version: 1.8 / OS: Linux / ...") keeps one item per line."""

    def __init__(self, markup: str) -> None:
        super().__init__(markup)
        for token in self.parsed:
            for child in token.children or ():
                if child.type == "softbreak":  # GitHub renders issues with breaks on
                    child.type = "hardbreak"


class _Lines:
    """Pre-rendered lines, printed as they are (no trailing newline, so a full screen does not scroll)."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for i, line in enumerate(self.lines):
            if i:
                yield Segment.line()
            yield from line


def _render(console: Console, renderable: RenderableType, width: int) -> list[list[Segment]]:
    return console.render_lines(renderable, console.options.update(width=width, height=None), pad=False)


def frame(
    console: Console, top: list[RenderableType], pane: TextPane, text: RenderableType, bottom: list[RenderableType]
) -> _Lines:
    """One screen: ``top`` and ``bottom`` always visible, the text pane between them gets the rest.

    The pane's window moves with PgUp/PgDn; its rule says which lines show and what the keys do. A
    terminal too small for everything keeps the header and question and shows three text lines.
    """
    width, height = console.size
    head = [line for part in top for line in _render(console, part, width)]
    foot = [line for part in bottom for line in _render(console, part, width)]
    body = _render(console, text, width)
    pane.page = max(3, height - len(head) - len(foot) - 1)
    first, last = pane.clamp(len(body))
    where = f"{pane.view} · lines {first + 1}-{last} of {len(body)}" if body else f"{pane.view} · empty"
    if last < len(body):
        where += " · PgDn for more"
    if first > 0:
        where += " · PgUp back"
    rule = _render(console, Rule(Text(where, style="dim"), align="left", style="dim"), width)
    window = body[first:last] + [[] for _ in range(pane.page - (last - first))]
    return _Lines(head + rule + window + foot)


def render(screen: Screen, session: LabelSession, console: Console) -> RenderableType:
    if screen.finished:
        more = f"; {screen.skipped} skipped issue(s) remain" if screen.skipped else ""
        what = "reviewed" if screen.review else "labeled"
        return Panel(
            f"All {screen.total} issues of this sample are {what} by {screen.rater}{more}.\n"
            "b goes back to the last issue, g goes to any issue, q quits. "
            "`issuemine label --review` walks all your answers again.",
        )
    issue = screen.issue
    assert issue is not None
    top = [_header(screen, session)]
    height = console.size.height
    bottom: list[RenderableType] = []
    if screen.dimension:
        bottom.append(_question(screen, rows=max(4, height // 3)))
    elif screen.status == "flagged":
        bottom.append(Text("flagged: not a converter failure (u undoes, Enter goes on)", style="yellow"))
    if screen.message:
        bottom.append(Text(screen.message, style="yellow"))
    bottom.append(Text(screen.keys, style="reverse"))
    return frame(console, top, session.text, _pane_text(screen, session), bottom)


def _header(screen: Screen, session: LabelSession) -> RenderableType:
    issue = screen.issue
    assert issue is not None
    head = Text()
    head.append(f"{issue.converter}  {issue.repo}#{issue.number}  ", style="bold cyan")
    head.append(printable(issue.title), style="bold")
    minutes, seconds = divmod(int(screen.seconds), 60)
    mode = "review · " if screen.review else ""
    meta = Text(
        f"{mode}issue {screen.position} of {screen.total} · {screen.done} done · rater {screen.rater} · "
        f"{minutes}:{seconds:02d} · opened {_date(issue.created_at)} closed {_date(issue.closed_at)} · "
        f"labels: {', '.join(issue.labels) or '-'}  ",
        style="dim",
    )
    meta.append(issue.url or "", style="underline blue")
    return Group(head, meta, _answers(screen, session))


def _pane_text(screen: Screen, session: LabelSession) -> RenderableType:
    issue = screen.issue
    assert issue is not None
    if screen.pane == "codebook":
        return _codebook(session, screen)
    if screen.pane == "evidence":
        return _evidence(screen, session)
    if screen.pane == "comments":
        parts: list[RenderableType] = []
        for author, when, body in issue.comments:
            parts.append(Rule(Text(f"{printable(author)} {_date(when)}"), align="left", style="dim"))
            parts.append(GithubMarkdown(printable(body if session.text.unfold else fold_body(body))))
        return Group(*parts)
    count = len(issue.comments)
    comments = Text(
        f"[{count} comment{'' if count == 1 else 's'}: c shows them]" if count else "[no comments]", style="dim"
    )
    if not issue.body:
        return Group(Text("(the issue has no description)", style="dim"), comments)
    body = issue.body if session.text.unfold else fold_body(issue.body)
    return Group(GithubMarkdown(printable(body)), comments)


def _codebook(session: LabelSession, screen: Screen) -> RenderableType:
    table = Table(box=None, padding=(0, 1), show_header=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("definition", ratio=1)
    choices = screen.choices or [c for d in session.taxonomy.dimensions for c in session.taxonomy.dimension(d).codes]
    for i, code in enumerate(choices, start=1):
        table.add_row(str(i), code.name, code.definition + (f" {code.guidance}" if code.guidance else ""))
    return Group(Text(f"codebook: {screen.question or 'all dimensions'} (? returns to the report)"), table)


def _evidence(screen: Screen, session: LabelSession) -> RenderableType:
    """Why the model suggests what it does, per dimension (e returns to the report)."""
    issue = screen.issue
    assert issue is not None
    parts: list[RenderableType] = [Text("evidence behind the suggestions (e returns to the report)", style="dim")]
    for dim, (code, confidence, model) in issue.suggestions.items():
        head = Text(f"{dim}: ", style="bold")
        head.append(f"{session.taxonomy.display(dim, code)} {confidence:.0%}", style="bold green")
        head.append(f"  ({model})", style="dim")
        parts.append(head)
        parts.extend(Text(f"  · {reason}") for reason in issue.evidence.get(dim, []))
    return Group(*parts)


def _answers(screen: Screen, session: LabelSession) -> RenderableType:
    text = Text("your labels: ", style="dim")
    dims = session.dimensions()
    for dim in dims:
        style = "bold reverse" if dim == screen.dimension else ""
        text.append(f"{dim}=", style="dim")
        text.append(session.taxonomy.display(dim, screen.answers.get(dim)), style=style)
        text.append("  ")
    if screen.note:
        text.append(f"note: {screen.note}", style="italic")
    return text


def _columns(labels: list[str], rows: int) -> Table:
    """Numbered choices down as many columns as it takes to fit ``rows`` lines."""
    columns = max(1, -(-len(labels) // rows))
    per_column = max(1, -(-len(labels) // columns))
    cells: list[list[str]] = [[] for _ in range(per_column)]
    for i, label in enumerate(labels):
        cells[i % per_column].append(label)
    grid = Table.grid(padding=(0, 2))
    for row in cells:
        grid.add_row(*row, *[""] * (columns - len(row)))
    return grid


def _question(screen: Screen, rows: int) -> RenderableType:
    """The choices, in as many columns as it takes to fit ``rows`` lines (14 causes at 80×24)."""
    suggested = screen.suggestion[0] if screen.suggestion else None
    current = screen.answers.get(screen.dimension or "")
    labels = []
    for i, code in enumerate(screen.choices, start=1):
        mark = "→" if code.code == (current or suggested) else " "
        extra = f" ← {screen.suggestion[1]:.0%}" if code.code == suggested and screen.suggestion else ""
        labels.append(f"{mark}{i:>2} {code.name}{extra}")
    table = _columns(labels, rows)
    how = "type its number, then Enter" if len(screen.choices) > 9 else "press its number"
    hint = f" ({how}" + ("; Enter alone accepts →)" if current or suggested else ")")
    if screen.suggestion:
        hint += f" · suggested by {screen.suggestion[2]}"
    title = Text(screen.question, style="bold green")
    title.append(hint, style="green")
    if screen.typed:
        title.append(f"  typed: {screen.typed}", style="bold yellow")
    return Group(title, table)  # no border: at 80×24 every line is worth a choice


@contextmanager
def cbreak(fd: int) -> Iterator[None]:
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def read_key(fd: int) -> str:
    """One key press; an escape sequence (PgUp, arrows) becomes its name from ESCAPES."""
    data = os.read(fd, 1)
    if not data:
        raise EOFError
    if data == b"\x1b":
        # The rest of a sequence arrives within a few milliseconds; Esc alone does not continue.
        while select.select([fd], [], [], 0.05)[0]:
            more = os.read(fd, 1)
            if not more:
                break
            data += more
            if more.isalpha() or more == b"~":
                break
        return ESCAPES.get(data.decode(errors="ignore"), "escape")
    return data.decode(errors="ignore")


LABEL_NEEDS_TERMINAL = (
    "`issuemine label` is interactive and needs a terminal; without one, use "
    "`issuemine labels import FILE` to load labels and `issuemine labels export` to read them"
)


def require_terminal(why: str) -> None:
    """Refuse at once, before anything is prepared or stored, where there is no terminal to label in."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise IssuemineError(why)


def key_loop(
    why_terminal: str,
    start: Callable[[], object],
    draw: Callable[[Console], RenderableType],
    handle: Callable[[int, str], None],
    done: Callable[[], bool],
    console: Console | None = None,
) -> Console:
    """Draw, read one key, handle it, until ``done()``; Ctrl-C or a closed input ends the loop.
    Work is saved by ``handle`` as it happens, so leaving the loop loses nothing."""
    require_terminal(why_terminal)
    start()
    console = console or Console()
    fd = sys.stdin.fileno()
    try:
        with cbreak(fd):
            while not done():
                console.clear()
                console.print(draw(console), end="")
                handle(fd, read_key(fd))
    except (KeyboardInterrupt, EOFError):
        pass
    return console


def run(session: LabelSession, issue: str | None = None, console: Console | None = None) -> None:
    """The interactive labeling loop, from the resume point or ``issue``; returns when the rater quits."""

    def handle(fd: int, key: str) -> None:
        if key == "n":
            session.set_note(_line(fd, "note: "))
        elif key == "g":
            wanted = _line(fd, "go to issue (123, owner/repo#123 or its URL; empty stays): ")
            if wanted.strip():
                session.go_to(wanted)
        elif key == "o":
            _open(session)
        else:
            session.press(key)

    console = key_loop(
        LABEL_NEEDS_TERMINAL,
        lambda: session.start(issue),
        lambda con: render(session.screen(), session, con),
        handle,
        lambda: session.quit,
        console,
    )
    session.press("q")  # records the time spent on the issue on screen
    console.print(
        f"\nsaved. {session.screen().done} of {len(session.queue)} issues done by {session.rater}.", highlight=False
    )


def _line(fd: int, prompt: str) -> str:
    old = termios.tcgetattr(fd)
    restored = old.copy()
    restored[3] |= termios.ECHO | termios.ICANON
    termios.tcsetattr(fd, termios.TCSADRAIN, restored)
    try:
        return input(prompt)
    except EOFError:
        return ""
    finally:
        tty.setcbreak(fd)


def _open(session: LabelSession) -> None:
    view = session.screen().issue
    if view is None or not view.url:
        session.message = "this issue has no URL"
        return
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        session.message = f"no browser on this machine; the URL is {view.url}"
        return
    browser.open(view.url)
    session.message = f"opened {view.url}"


def render_adjudication(session: AdjudicationSession, console: Console) -> RenderableType:
    item = session.current
    if item is None:
        return Panel(f"No open disagreements left in sample {session.sample!r} ({session.decided} decided). q quits.")
    tax = session.taxonomy
    height = console.size.height
    head = Text(f"{item.repo}#{item.number}  ", style="bold cyan")
    head.append(item.title, style="bold")
    heading = Text(
        f"{item.dimension}: disagreement {session.index + 1} of {len(session.items)} · judge {session.judge}",
        style="dim",
    )
    sides = Table(box=None, padding=(0, 2), expand=True)
    sides.add_column("rater", no_wrap=True)
    sides.add_column(item.dimension, no_wrap=True)
    sides.add_column("note", ratio=1)
    for rater, code in item.codes.items():
        sides.add_row(rater, tax.display(item.dimension, code), item.notes.get(rater, "-"))
    chosen = set(item.codes.values())
    choices = session.choices()
    labels = [f"{i:>2} {c.name} {'←' if c.code in chosen else ' '}" for i, c in enumerate(choices, start=1)]
    grid = _columns(labels, max(4, height // 4))
    how = "type its number, then Enter" if len(choices) > 9 else "press its number"
    title = Text(f"final {item.dimension} ({how}; ← a rater's choice)", style="bold green")
    if session.typed:
        title.append(f"  typed: {session.typed}", style="bold yellow")
    bottom: list[RenderableType] = [sides, title, grid]
    if session.message:
        bottom.append(Text(session.message, style="yellow"))
    bottom.append(Text("number chooses · s skip · PgUp/PgDn scroll · t traceback · q quit", style="reverse"))
    body = item.body if session.text.unfold else fold_body(item.body)
    text = GithubMarkdown(printable(body)) if body else Text("(the issue has no description)", style="dim")
    return frame(console, [head, heading], session.text, text, bottom)


def run_adjudication(session: AdjudicationSession, console: Console | None = None) -> None:
    why = (
        "`issuemine adjudicate` is interactive and needs a terminal; `issuemine adjudicate --json` lists "
        "the disagreements, and `issuemine labels import` can load decided labels"
    )
    console = key_loop(
        why,
        session.start,
        lambda con: render_adjudication(session, con),
        lambda fd, key: session.press(key),
        lambda: session.quit,
        console,
    )
    console.print(f"\nsaved. {session.decided} disagreement(s) decided.", highlight=False)
