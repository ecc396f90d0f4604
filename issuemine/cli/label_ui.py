"""The terminal front end of the labeling session: renders screens, reads single keys.

Works over SSH and inside tmux: plain ANSI output through rich, keys read in cbreak mode (no
curses, no full-screen takeover), so a closed terminal loses nothing already answered.
"""

from __future__ import annotations

import os
import sys
import termios
import tty
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from issuemine.errors import IssuemineError
from issuemine.labeling.adjudication import AdjudicationSession
from issuemine.labeling.issue_text import fold_body
from issuemine.labeling.session import LabelSession, Screen

BODY_LINES = 40


def _date(value: object) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "?"  # type: ignore[attr-defined]


def _clip(text: str, lines: int) -> str:
    parts = text.splitlines()
    if len(parts) <= lines:
        return text
    return "\n".join(parts[:lines]) + f"\n\n*… {len(parts) - lines} more lines (o opens the issue)*"


def render(screen: Screen, session: LabelSession) -> RenderableType:
    if screen.finished:
        more = f"; {screen.skipped} skipped issue(s) remain" if screen.skipped else ""
        return Panel(f"All {screen.total} issues of this sample are labeled by {screen.rater}{more}. q quits.")
    issue = screen.issue
    assert issue is not None
    head = Text()
    head.append(f"{issue.converter}  {issue.repo}#{issue.number}  ", style="bold cyan")
    head.append(issue.title, style="bold")
    meta = (
        f"opened {_date(issue.created_at)}  closed {_date(issue.closed_at)}  labels: {', '.join(issue.labels) or '-'}"
    )
    parts: list[RenderableType] = [head, Text(meta, style="dim"), Text(issue.url or "", style="underline blue")]
    if issue.body:
        parts.append(Panel(Markdown(_clip(fold_body(issue.body), BODY_LINES)), title="report", title_align="left"))
    if issue.comments:
        if screen.show_comments:
            for author, when, body in issue.comments:
                parts.append(
                    Panel(
                        Markdown(_clip(fold_body(body), 15)),
                        title=f"{author} {_date(when)}",
                        title_align="left",
                        border_style="dim",
                    )
                )
        else:
            count = len(issue.comments)
            parts.append(Text(f"[{count} comment{'' if count == 1 else 's'} hidden: c shows them]", style="dim"))
    parts.append(_answers(screen, session))
    if screen.dimension:
        parts.append(_question(screen))
    elif screen.status == "flagged":
        parts.append(Text("flagged: not a converter failure (u undoes, Enter goes on)", style="yellow"))
    if screen.message:
        parts.append(Text(screen.message, style="yellow"))
    minutes, seconds = divmod(int(screen.seconds), 60)
    progress = f"issue {screen.position} of {screen.total} · {screen.done} done · rater {screen.rater}"
    footer = f"{screen.keys}\n{progress} · {minutes}:{seconds:02d} on this issue"
    parts.append(Text(footer, style="reverse"))
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


def _question(screen: Screen) -> RenderableType:
    table = Table.grid(padding=(0, 2))
    suggested = screen.suggestion[0] if screen.suggestion else None
    current = screen.answers.get(screen.dimension or "")
    for i, code in enumerate(screen.choices, start=1):
        mark = "→" if code.code == (current or suggested) else " "
        extra = ""
        if code.code == suggested and screen.suggestion:
            extra = f"suggested {screen.suggestion[1]:.0%} ({screen.suggestion[2]})"
        row = [f"{mark} {i:>2}", code.name, extra]
        if screen.show_help:
            row.append(code.definition + (f" {code.guidance}" if code.guidance else ""))
        table.add_row(*row)
    how = "type its number, then Enter" if len(screen.choices) > 9 else "press its number"
    hint = f" ({how}" + ("; Enter alone accepts →)" if current or suggested else ")")
    typed = f"  typed: {screen.typed}" if screen.typed else ""
    return Panel(table, title=f"{screen.question}{hint}{typed}", title_align="left", border_style="green")


@contextmanager
def cbreak(fd: int) -> Iterator[None]:
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def read_key(fd: int) -> str:
    data = os.read(fd, 1)
    if not data:
        raise EOFError
    return data.decode(errors="ignore")


def key_loop(
    why_terminal: str,
    start: Callable[[], object],
    draw: Callable[[], RenderableType],
    handle: Callable[[int, str], None],
    done: Callable[[], bool],
    console: Console | None = None,
) -> Console:
    """Draw, read one key, handle it, until ``done()``; Ctrl-C or a closed input ends the loop.
    Work is saved by ``handle`` as it happens, so leaving the loop loses nothing."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise IssuemineError(why_terminal)
    start()
    console = console or Console()
    fd = sys.stdin.fileno()
    try:
        with cbreak(fd):
            while not done():
                console.clear()
                console.print(draw())
                handle(fd, read_key(fd))
    except (KeyboardInterrupt, EOFError):
        pass
    return console


def run(session: LabelSession, console: Console | None = None) -> None:
    """The interactive labeling loop; returns when the rater quits."""

    def handle(fd: int, key: str) -> None:
        if key == "n":
            session.set_note(_line(fd, "note: "))
        elif key == "o":
            _open(session)
        else:
            session.press(key)

    why = (
        "`issuemine label` is interactive and needs a terminal; without one, use "
        "`issuemine labels import FILE` to load labels and `issuemine labels export` to read them"
    )
    console = key_loop(
        why, session.start, lambda: render(session.screen(), session), handle, lambda: session.quit, console
    )
    session.press("q")  # records the time spent on the issue on screen
    console.print(
        f"saved. {session.screen().done} of {len(session.queue)} issues done by {session.rater}.", highlight=False
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


def render_adjudication(session: AdjudicationSession) -> RenderableType:
    item = session.current
    if item is None:
        return Panel(f"No open disagreements left in sample {session.sample!r} ({session.decided} decided). q quits.")
    tax = session.taxonomy
    head = Text(f"{item.repo}#{item.number}  {item.title}", style="bold")
    heading = Text(f"{item.dimension}: disagreement {session.index + 1} of {len(session.items)}", style="bold")
    sides = Table()
    for rater in item.codes:
        sides.add_column(rater)
    sides.add_row(*(tax.display(item.dimension, code) for code in item.codes.values()))
    choices = Table.grid(padding=(0, 2))
    chosen = set(item.codes.values())
    for i, code in enumerate(session.choices(), start=1):
        choices.add_row(f"{i:>2}", code.name, "← a rater's choice" if code.code in chosen else "")
    parts: list[RenderableType] = [
        head,
        heading,
        sides,
        Panel(choices, title="final code (number)", title_align="left"),
    ]
    if session.message:
        parts.append(Text(session.message, style="yellow"))
    parts.append(Text(f"number chooses · s skip · q quit · judge {session.judge}", style="reverse"))
    return Group(*parts)


def run_adjudication(session: AdjudicationSession, console: Console | None = None) -> None:
    why = (
        "`issuemine adjudicate` is interactive and needs a terminal; `issuemine adjudicate --json` lists "
        "the disagreements, and `issuemine labels import` can load decided labels"
    )
    console = key_loop(
        why,
        session.start,
        lambda: render_adjudication(session),
        lambda fd, key: session.press(key),
        lambda: session.quit,
        console,
    )
    console.print(f"saved. {session.decided} disagreement(s) decided.", highlight=False)
