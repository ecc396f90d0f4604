"""Find runnable conversion snippets in an issue thread, or say why there is none.

Reads code from the issue body and comments in thread order: fenced blocks (```python, ```py,
bare ```, ~~~) and indented blocks. Tracebacks are kept as evidence and never executed. A
*candidate* is the Python code of the first post that calls a converter, its blocks in order,
with the standard imports the snippet uses but never imports added. Nothing here runs code:
parsing is done with ``ast``.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from issuemine.domain.converters import CommandLine, knowledge
from issuemine.domain.tracebacks import looks_like_traceback

EXTRACTOR_VERSION = "1"

FENCE = re.compile(r"^(?P<fence>```+|~~~+)[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.S | re.M)
PYTHON_LANGS = {"python", "py", "python3", "ipython", "pycon", ""}
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh", "shell-session"}
CLI_CONVERSION = r"^\s*(?:\$\s*)?python3?\s+-m\s+{module}\b.*$"
INPUT_FILE = re.compile(
    r"""["']([^"'\n]+\.(?:pth|pt|ckpt|h5|hdf5|pb|jpg|jpeg|png|bmp|npy|npz|bin|pkl|pickle|tflite|csv|txt|json|wav))["']""",
    re.I,
)
GPU = re.compile(r"\.cuda\s*\(|device\s*=\s*['\"]cuda|torch\.device\(\s*['\"]cuda|['\"]cuda:\d['\"]")


@dataclass
class Block:
    post: str  # "body" or "comment:<id>"
    index: int  # position of the block within its post
    kind: str  # python | shell | traceback | other
    code: str
    lang: str = ""


@dataclass
class Candidate:
    runnable: bool
    reason: str | None
    script: str = ""
    conversions: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    tracebacks: list[str] = field(default_factory=list)


def _dedent_prompts(code: str) -> str:
    """Strip interactive prompts (``>>>``/``...``) from a pasted session, dropping its output."""
    lines = code.splitlines()
    if not any(line.startswith(">>> ") for line in lines):
        return code
    kept = [line[4:] for line in lines if line.startswith((">>> ", "... "))]
    return "\n".join(kept) + "\n"


def _indented_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    previous_blank = True
    for line in text.splitlines():
        if (line.startswith("    ") or line.startswith("\t")) and (current or previous_blank):
            current.append(line[4:] if line.startswith("    ") else line[1:])
        else:
            if current:
                blocks.append("\n".join(current) + "\n")
                current = []
            previous_blank = not line.strip()
    if current:
        blocks.append("\n".join(current) + "\n")
    return blocks


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def classify(code: str, lang: str) -> str:
    lang = lang.lower()
    if looks_like_traceback(code):
        return "traceback"
    if lang in SHELL_LANGS or _command_line(code):
        return "shell"
    if lang in PYTHON_LANGS and _parses(_dedent_prompts(code)):
        return "python"
    return "other"


def blocks_of(post: str, markdown: str | None) -> list[Block]:
    """The code blocks of one post, in order."""
    text = (markdown or "").replace("\r\n", "\n")
    found: list[Block] = []
    for match in FENCE.finditer(text):
        code, lang = match["code"], match["lang"]
        kind = classify(code, lang)
        found.append(Block(post, len(found), kind, _dedent_prompts(code) if kind == "python" else code, lang))
    outside = FENCE.sub("", text)
    for code in _indented_blocks(outside):
        kind = classify(code, "")
        found.append(Block(post, len(found), kind, code, ""))
    return found


def conversions_in(code: str) -> list[str]:
    """The catalog's entry points the code calls, in catalog order."""
    return [e.call for e in knowledge().entries if e.pattern().search(code)]


def _command_line(code: str) -> tuple[CommandLine, str] | None:
    """The first converter command line in a shell block, and the catalog entry that describes it."""
    for command_line in knowledge().command_lines:
        found = re.search(CLI_CONVERSION.format(module=re.escape(command_line.module)), code, re.M)
        if found:
            return command_line, found.group(0)
    return None


def _exporter(code: str, calls: list[str]) -> str | None:
    """The exporter the code uses: the last called entry point's, switched by its keyword if set."""
    chosen = None
    for entry in knowledge().entries:
        if entry.call not in calls:
            continue
        exporter = entry.exporter
        if entry.switch_keyword and re.search(rf"\b{re.escape(entry.switch_keyword)}\s*=\s*True\b", code):
            exporter = entry.switch_exporter
        chosen = exporter or chosen
    return chosen


def missing_imports(code: str) -> list[str]:
    """Standard imports for names the code uses but never binds."""
    tree = ast.parse(code)
    bound: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    imports = knowledge().imports
    return [imports[name] for name in imports if name in used - bound]


def extract(posts: list[tuple[str, str | None]]) -> Candidate:
    """A candidate from a thread given as (post id, markdown) in thread order."""
    blocks = [b for post, text in posts for b in blocks_of(post, text)]
    tracebacks = [b.code for b in blocks if b.kind == "traceback"]
    if not blocks:
        return Candidate(False, "no code in the issue")
    runnable = [b for b in blocks if b.kind in ("python", "shell")]
    if not runnable:
        reason = "only a traceback, no code to run" if tracebacks else "code blocks are not Python (or do not parse)"
        return Candidate(False, reason, tracebacks=tracebacks)
    for post in dict.fromkeys(b.post for b in runnable):
        mine = [b for b in runnable if b.post == post]
        python = [b for b in mine if b.kind == "python"]
        code = "\n".join(b.code.rstrip() + "\n" for b in python)
        kinds = conversions_in(code)
        if kinds:
            return _python_candidate(post, python, code, kinds, tracebacks)
        for block in mine:
            if block.kind == "shell" and (found := _command_line(block.code)):
                return _cli_candidate(post, block, found[0], found[1], tracebacks)
    return Candidate(False, "no converter call (torch.onnx / tf2onnx) in the code", tracebacks=tracebacks)


def _python_candidate(post: str, blocks: list[Block], code: str, kinds: list[str], tracebacks: list[str]) -> Candidate:
    added = missing_imports(code)
    script = "\n".join(added) + ("\n\n" if added else "") + code
    provenance = {
        "post": post,
        "blocks": [b.index for b in blocks],
        "added_imports": added,
        "extractor": EXTRACTOR_VERSION,
    }
    exporter = _exporter(code, kinds)
    if exporter:
        provenance["exporter"] = exporter
    files = sorted(set(INPUT_FILE.findall(code)))
    problems = []
    if files:
        provenance["missing_files"] = files
        problems.append(f"needs external files: {', '.join(files)}")
    if GPU.search(code):
        problems.append("needs a GPU (.cuda() / device='cuda')")
    removed = [api.name for api in knowledge().removed if api.pattern.search(code)]
    if removed:
        provenance["removed_apis"] = removed
        problems.append(f"uses an API that no longer exists: {', '.join(removed)}")
    reason = "; ".join(problems) or None
    return Candidate(not problems, reason, script, kinds, provenance, tracebacks)


def _cli_candidate(
    post: str, block: Block, command_line: CommandLine, command: str, tracebacks: list[str]
) -> Candidate:
    words = shlex.split(command.strip().lstrip("$").strip())
    arguments = words[words.index(command_line.module) + 1 :]
    script = (
        "import subprocess\nimport sys\n\n"
        f"completed = subprocess.run([sys.executable, '-m', {command_line.module!r}, *{arguments!r}])\n"
        "sys.exit(completed.returncode)\n"
    )
    provenance = {"post": post, "blocks": [block.index], "command": command.strip(), "extractor": EXTRACTOR_VERSION}
    flags = set(command_line.input_flags)
    inputs = [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a.split("=")[0] in flags]
    inputs += [a.split("=", 1)[1] for a in arguments if "=" in a and a.split("=")[0] in flags]
    problems = [f"needs external files: {', '.join(inputs)}"] if inputs else []
    conversion = f"python -m {command_line.module}"
    return Candidate(not problems, "; ".join(problems) or None, script, [conversion], provenance, tracebacks)
