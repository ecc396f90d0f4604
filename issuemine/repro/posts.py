"""The code blocks of one post, as a person reading the thread would see them.

Issue posts are markdown written in a hurry: fenced blocks (closed or not: GitHub renders an
unclosed fence to the end of the post as code), fences indented inside lists, code on the fence
line, ``<details>`` sections, indented blocks, IPython sessions (``In [3]:``, ``...:``, ``Out[3]:``),
``>>>`` sessions, notebook ``!`` shell lines and ``%`` magics, and code pasted straight into a
paragraph. Nothing here runs code: Python is recognized with ``ast``.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from issuemine.domain.tracebacks import looks_like_traceback

PYTHON_LANGS = {"python", "py", "python3", "ipython", "ipython3", "pycon", "py3", "jupyter", ""}
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh", "shell-session", "cmd", "powershell", "bat"}
OPEN_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)$")
DETAILS = re.compile(r"</?details[^>]*>|<summary>.*?</summary>|</?summary>", re.I | re.S)
IPY_IN = re.compile(r"^\s*In \[\d*\]:[ ]?")
IPY_MORE = re.compile(r"^\s*\.\.\.+:[ ]?")
IPY_OUT = re.compile(r"^\s*Out\[\d*\]:")
MAGIC = re.compile(r"^\s*%")
BANG = re.compile(r"^\s*!")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
# bash \, cmd ^, PowerShell ` (after a blank, or it would be the end of an inline code span)
CONTINUATION = re.compile(r"(?:[ \t]*(?:\\|\^)|[ \t]+`)[ \t]*\n[ \t]*")
CODE_HINT = re.compile(r"[=()\[\]]|^\s*(?:import|from|def|class|for|with|if|return|print)\b")


@dataclass
class Block:
    post: str  # "body" or "comment:<id>"
    index: int  # position of the block within its post
    kind: str  # python | shell | traceback | other
    code: str
    lang: str = ""
    source: str = "fence"  # fence | unclosed-fence | indented | paragraph


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def strip_prompts(code: str) -> str:
    """Code of a pasted interactive session: ``>>>``/``...`` or IPython prompts, output dropped."""
    lines = code.splitlines()
    if any(line.startswith((">>> ", ">>>\t")) or line.rstrip() == ">>>" for line in lines):
        kept = [line[4:] for line in lines if line.startswith((">>> ", "... ", ">>>\t", "...\t"))]
        kept += [""] if not kept else []
        return "\n".join(kept) + "\n"
    if any(IPY_IN.match(line) for line in lines):
        kept, in_output = [], False
        for line in lines:
            if IPY_IN.match(line):
                kept.append(IPY_IN.sub("", line))
                in_output = False
            elif IPY_MORE.match(line) and not in_output:
                kept.append(IPY_MORE.sub("", line))
            elif IPY_OUT.match(line):
                in_output = True
            elif not line.strip():
                kept.append("")
            else:
                in_output = True  # printed output between prompts
        return "\n".join(kept) + "\n"
    return code


def notebook_lines(code: str) -> tuple[str, list[str]]:
    """Python with notebook ``!cmd`` lines and ``%magics`` taken out; the shell commands apart."""
    shell, kept = [], []
    for line in code.splitlines():
        if BANG.match(line):
            shell.append(BANG.sub("", line))
        elif MAGIC.match(line):
            continue
        else:
            kept.append(line)
    return "\n".join(kept) + "\n", shell


def classify(code: str, lang: str, is_command_line: bool) -> str:
    lang = lang.lower()
    if looks_like_traceback(code) and not parses(code):
        return "traceback"
    if lang in SHELL_LANGS or is_command_line:
        return "shell"
    if lang in PYTHON_LANGS and parses(code):
        return "python"
    return "traceback" if looks_like_traceback(code) else "other"


def _fenced(text: str) -> tuple[list[tuple[str, str, str]], str]:
    """(code, info string, source) of each fence, and the text outside them."""
    lines = text.split("\n")
    blocks: list[tuple[str, str, str]] = []
    outside: list[str] = []
    i = 0
    while i < len(lines):
        opening = OPEN_FENCE.match(lines[i])
        if not opening:
            outside.append(lines[i])
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        if info.endswith(fence[:3]) and len(info) > 3:  # ```code on one line```
            blocks.append((info[: -len(fence[:3])].strip() + "\n", "", "fence"))
            i += 1
            continue
        body, j, closed = [], i + 1, False
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                closed = True
                break
            body.append(lines[j])
            j += 1
        first = info.split()[0] if info.split() else ""
        lang = first.lower() if re.fullmatch(r"[\w+.-]*", first) and not CODE_HINT.search(info) else ""
        if info and not lang and CODE_HINT.search(info):
            body.insert(0, info)  # ```import torch  (code on the fence line)
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        blocks.append((code, lang, "fence" if closed else "unclosed-fence"))
        i = j + 1
    return blocks, "\n".join(outside)


def _indented(text: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    previous_blank = True
    for line in text.splitlines():
        if (line.startswith("    ") or line.startswith("\t")) and (current or previous_blank):
            current.append(line)
        else:
            if current:
                blocks.append(textwrap.dedent("\n".join(current)) + "\n")
                current = []
            previous_blank = not line.strip()
    if current:
        blocks.append(textwrap.dedent("\n".join(current)) + "\n")
    return blocks


def paragraph_code(text: str, anchors: list[re.Pattern[str]]) -> list[str]:
    """Python pasted into a paragraph: around each line matching an anchor (a converter call), the
    largest run of lines that parses."""
    lines = text.split("\n")
    found: list[str] = []
    used_until = -1
    for i, line in enumerate(lines):
        if i <= used_until or not any(a.search(line) for a in anchors):
            continue
        best: tuple[int, int] | None = None
        for start in range(max(used_until + 1, i - 40), i + 1):
            for end in range(min(len(lines), i + 40), i, -1):
                if best and end - start <= best[1] - best[0]:
                    break
                chunk = textwrap.dedent("\n".join(lines[start:end]))
                if chunk.strip() and parses(chunk):
                    best = (start, end)
                    break
        if best:
            found.append(textwrap.dedent("\n".join(lines[best[0] : best[1]])).strip("\n") + "\n")
            used_until = best[1] - 1
    return found


def join_continuations(text: str) -> str:
    """Multi-line shell commands as one line each."""
    return CONTINUATION.sub(" ", text)


def blocks_of(post: str, markdown: str | None, anchors: list[re.Pattern[str]], is_command_line: object) -> list[Block]:
    """The code blocks of one post, in order. ``anchors`` find converter calls in paragraphs;
    ``is_command_line(code)`` tells a converter's command line."""
    text = DETAILS.sub("\n", (markdown or "").replace("\r\n", "\n"))
    found: list[Block] = []

    def add(code: str, lang: str, source: str) -> None:
        code = strip_prompts(code)
        python, shell = notebook_lines(code) if lang.lower() in PYTHON_LANGS else (code, [])
        for command in shell:
            found.append(Block(post, len(found), "shell", command + "\n", "bash", source))
        kind = classify(python, lang, bool(is_command_line(python)))  # type: ignore[operator]
        found.append(Block(post, len(found), kind, python if kind == "python" else code, lang, source))

    fenced, outside = _fenced(text)
    for code, lang, source in fenced:
        add(code, lang, source)
    for code in _indented(outside):
        add(code, "", "indented")
    without_indented = "\n".join(line for line in outside.split("\n") if not line.startswith(("    ", "\t")))
    for code in paragraph_code(without_indented, anchors):
        found.append(Block(post, len(found), "python", code, "", "paragraph"))
    for line in join_continuations(without_indented).split("\n"):
        for piece in [line, *INLINE_CODE.findall(line)]:  # the line, or `code spans` in it
            command = BANG.sub("", piece.strip().strip("`"))
            if is_command_line(command):  # type: ignore[operator]
                found.append(Block(post, len(found), "shell", command + "\n", "", "paragraph"))
                break
    return found
