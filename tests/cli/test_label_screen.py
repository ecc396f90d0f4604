"""The label and adjudication screens as a rater sees them, at 80×24 and 160×48.

The program runs in a pseudo-terminal (pexpect) and its output goes through a terminal emulator
(pyte), so the assertions are about what is on the screen after each key, not about the byte
stream: the header and the question stay visible, the text pane scrolls, views replace the text.
The long issue (`threads/long-resize.md`) is written in the image of a real tf2onnx report: issue
template headings, an environment block of plain lines, an IPython 8 traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pyte
import pytest
from sqlalchemy import text

# Label sessions in subprocesses load the study model from the run's cache.
pytestmark = pytest.mark.usefixtures("warm_study_model")

LONG = (Path(__file__).parent / "threads" / "long-resize.md").read_text()
PGDN, PGUP, END = "\x1b[6~", "\x1b[5~", "\x1b[F"


class Terminal:
    """A program in a pty of ``rows``×``cols``, its output rendered by a terminal emulator."""

    def __init__(self, args: list[str], rows: int, cols: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm"
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(
            sys.executable, ["-m", "issuemine", *args], env=env, timeout=30, dimensions=(rows, cols)
        )

    def settle(self, quiet: float = 0.4, limit: float = 30.0) -> list[str]:
        """Read output until the program has been quiet for ``quiet`` seconds; the screen's lines."""
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < deadline:
            try:
                data = self.child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                if time.monotonic() - last >= quiet:
                    break
                continue
            except pexpect.EOF:
                break
            self.stream.feed(data)
            last = time.monotonic()
        return self.lines()

    def wait_for(self, needle: str, limit: float = 30.0) -> list[str]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if needle in "\n".join(self.settle(limit=2.0)):
                return self.lines()
        raise AssertionError(f"{needle!r} never showed; screen:\n" + "\n".join(self.lines()))

    def press(self, keys: str) -> list[str]:
        self.child.send(keys)
        return self.settle()

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def close(self) -> None:
        if self.child.isalive():
            self.child.sendline("q")
            self.child.expect(pexpect.EOF)


def queue(db) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """(issue id, number) of sample s in sample order."""
    with db.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT i.id, i.number FROM sample_members m JOIN issues i ON i.id = m.issue_id "
                    "JOIN samples s ON s.id = m.sample_id WHERE s.name = 's' ORDER BY m.position"
                )
            )
        ]


@pytest.fixture
def long_first(label_db):  # type: ignore[no-untyped-def]
    """The label database with the long report as the first issue's body; returns the issue numbers."""
    issues = queue(label_db)
    with label_db.engine.begin() as conn:
        conn.execute(text("UPDATE issues SET body = :b WHERE id = :i"), {"b": LONG, "i": issues[0][0]})
    return [n for _, n in issues]


def label(db_path: Path, rows: int, cols: int, *extra: str) -> Terminal:
    return Terminal(["label", "--sample", "s", "--rater", "ana", "--db", str(db_path), *extra], rows, cols)


def pane_rule(lines: list[str]) -> tuple[int, int, int]:
    """First line, last line and length of the text pane, from its rule."""
    for line in lines:
        found = re.search(r"(?:report|comments|codebook) · lines (\d+)-(\d+) of (\d+)", line)
        if found:
            first, last, total = (int(g) for g in found.groups())
            return first, last, total
    raise AssertionError("no text pane rule on screen:\n" + "\n".join(lines))


def assert_header_and_question(lines: list[str], number: int, question: str, rows: int) -> None:
    assert len(lines) == rows
    assert f"onnx/tensorflow-onnx#{number}" in lines[0] and lines[0].startswith("tf2onnx")
    assert "your labels:" in "\n".join(lines[:5])
    assert question in "\n".join(lines)
    assert "q quit" in "\n".join(lines[-3:])


@pytest.mark.parametrize(("rows", "cols"), [(24, 80), (48, 160)])
def test_header_and_question_stay_while_the_report_scrolls(long_first, db_path, rows, cols):
    term = label(db_path, rows, cols)
    lines = term.wait_for("In which stage")
    assert_header_and_question(lines, long_first[0], "In which stage", rows)
    first, last, total = pane_rule(lines)
    assert first == 1 and last < total  # the long report does not fit: it is cut, not pushed off
    shown = last - first + 1

    lines = term.press(PGDN)
    first2, _, total2 = pane_rule(lines)
    assert first2 == min(last, total - shown + 1) and total2 == total  # a line of overlap, as in less
    assert_header_and_question(lines, long_first[0], "In which stage", rows)

    lines = term.press(END)
    *_, last3, total3 = pane_rule(lines)
    assert last3 == total3
    assert "END-OF-REPORT-MARKER" in "\n".join(lines)
    assert_header_and_question(lines, long_first[0], "In which stage", rows)

    # The environment block keeps one item per line, as GitHub shows it.
    lines = term.press("\x1b[H")
    for _ in range(8):
        if any("TensorFlow Version" in line for line in lines) and any("Python version" in line for line in lines):
            break
        lines = term.press("\x1b[B")  # down one line
    stripped = [line.strip() for line in lines]
    at = next(i for i, line in enumerate(stripped) if line.startswith("TensorFlow Version"))
    assert stripped[at] == "TensorFlow Version: 2.15.1" and stripped[at + 1] == "Python version: 3.11.8"

    # The traceback is folded to its converter frames; t shows it whole (the text gets longer).
    folded = "\n".join(term.press(END) + term.press(PGUP))
    assert "tf2onnx/onnx_opset/nn.py" in folded or "nn.py" in "\n".join(term.lines())
    lines = term.press("t")
    assert "tracebacks in full" in "\n".join(lines)
    assert pane_rule(lines)[2] > total
    if rows == 48:
        assert shown > 24  # the bigger terminal shows more of the report
    term.close()


def test_choices_fit_at_80x24_and_keys_are_explained(long_first, db_path):
    term = label(db_path, 24, 80)
    term.wait_for("In which stage")
    term.press("2")
    lines = term.press("1")
    assert_header_and_question(lines, long_first[0], "What caused", 24)
    screen = "\n".join(lines)
    for n, name in ((1, ""), (10, "Algorithmic"), (14, "Testing")):
        assert re.search(rf"\b{n} {name}", screen), screen  # all 14 causes are on screen
    assert "type its number, then Enter" in screen
    term.close()


def test_comments_and_codebook_replace_the_report(label_db, db_path):
    issues = queue(label_db)
    with label_db.engine.connect() as conn:
        counts = dict(
            conn.execute(text("SELECT issue_id, COUNT(*) FROM comments GROUP BY issue_id")).all()  # type: ignore[arg-type]
        )
    position = next(i for i, (issue_id, _) in enumerate(issues) if counts.get(issue_id, 0) >= 2)
    term = label(db_path, 24, 80, "--issue", str(issues[position][1]))
    lines = term.wait_for("In which stage")
    assert f"#{issues[position][1]}" in lines[0]
    lines = term.press("c")
    assert "comments · lines 1-" in "\n".join(lines)
    assert_header_and_question(lines, issues[position][1], "In which stage", 24)
    lines = term.press("?")
    screen = "\n".join(lines)
    assert "codebook · lines 1-" in screen and "codebook: In which stage" in screen
    assert_header_and_question(lines, issues[position][1], "In which stage", 24)
    lines = term.press("?")
    assert "report · lines 1-" in "\n".join(lines)
    empty = next(i for i, (issue_id, _) in enumerate(issues) if not counts.get(issue_id))
    term.press("g")
    lines = term.press(f"{issues[empty][1]}\r")
    assert f"#{issues[empty][1]}" in lines[0]
    assert "this issue has no comments" in "\n".join(term.press("c"))
    term.close()


def test_go_to_review_and_back_after_the_last_issue(long_first, db_path):
    term = label(db_path, 24, 80)
    term.wait_for("In which stage")
    term.press("2")
    term.press("1")
    lines = term.press("4\r")  # issue 1 done
    assert f"#{long_first[1]}" in lines[0]
    term.press("g")
    lines = term.press("onnx/tensorflow-onnx#999999\r")
    assert "is not in ana's queue" in "\n".join(lines)
    term.press("g")
    lines = term.press(f"https://github.com/onnx/tensorflow-onnx/issues/{long_first[0]}\r")
    assert f"#{long_first[0]}" in lines[0] and "stage=Node conversion" in "\n".join(lines[:6])
    assert "In which stage" in "\n".join(lines)  # a finished issue opens at its first question
    term.close()

    # A review pass walks only finished issues, from the first question, answers pre-selected.
    term = label(db_path, 24, 80, "--review")
    lines = term.wait_for("In which stage")
    assert f"#{long_first[0]}" in lines[0] and "review · issue 1 of 1" in "\n".join(lines[:3])
    assert "Enter alone accepts" in "\n".join(lines)
    term.press("\r")
    term.press("\r")
    lines = term.press("\r")  # crash, node conversion, shape problem kept
    assert "are reviewed by ana" in "\n".join(lines)
    lines = term.press("b")  # back from the end: the last issue, its last question
    assert f"#{long_first[0]}" in lines[0] and "What caused" in "\n".join(lines)
    term.close()


def test_bad_issue_option_is_one_line(long_first, db_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "issuemine",
            "label",
            "--sample",
            "s",
            "--rater",
            "ana",
            "--db",
            str(db_path),
            "--review",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2 and "needs a terminal" in result.stderr
    term = label(db_path, 24, 80, "--review")
    term.child.expect(pexpect.EOF)
    assert b"has finished no issue of sample 's' yet" in (term.child.before or b"")
    term = label(db_path, 24, 80, "--issue", "not-an-issue")
    term.child.expect(pexpect.EOF)
    assert b"is not an issue" in (term.child.before or b"")


@pytest.mark.parametrize(("rows", "cols"), [(24, 80), (48, 160)])
def test_adjudication_shows_the_issue_and_both_notes(long_first, label_db, db_path, tmp_path, rows, cols):
    number = long_first[0]
    path = tmp_path / "two.csv"
    path.write_text(
        "repo,number,rater,symptom,note\n"
        f"onnx/tensorflow-onnx,{number},ana,1,crashes in the Resize handler\n"
        f"onnx/tensorflow-onnx,{number},bob,2,converted model has wrong shape\n"
    )
    subprocess.run(
        [sys.executable, "-m", "issuemine", "labels", "import", str(path), "--sample", "pair", "--db", str(db_path)],
        check=True,
        capture_output=True,
    )
    term = Terminal(["adjudicate", "--sample", "pair", "--as", "carol", "--db", str(db_path)], rows, cols)
    lines = term.wait_for("disagreement 1 of 1")
    screen = "\n".join(lines)
    assert f"onnx/tensorflow-onnx#{number}" in lines[0]
    assert "crashes in the Resize handler" in screen and "converted model has wrong shape" in screen
    assert "report · lines 1-" in screen and "Describe the bug" in screen
    first, _, _ = pane_rule(term.press(PGDN))
    assert first > 1
    assert "disagreement 1 of 1" in "\n".join(term.lines()[:3])
    lines = term.press("2")
    assert "No open disagreements" in "\n".join(lines)
    term.close()
