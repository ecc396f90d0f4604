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

EXTRACTOR_VERSION = "1"

FENCE = re.compile(r"^(?P<fence>```+|~~~+)[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.S | re.M)
PYTHON_LANGS = {"python", "py", "python3", "ipython", "pycon", ""}
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh", "shell-session"}
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+", re.M)
CONVERSIONS = {
    "torch.onnx.export": re.compile(r"\btorch\.onnx\.export\s*\("),
    "torch.onnx.dynamo_export": re.compile(r"\btorch\.onnx\.dynamo_export\s*\("),
    "tf2onnx.convert.from_keras": re.compile(r"\btf2onnx\.convert\.from_keras\s*\("),
    "tf2onnx.convert.from_function": re.compile(r"\btf2onnx\.convert\.from_function\s*\("),
    "tf2onnx.convert.from_graph_def": re.compile(r"\btf2onnx\.convert\.from_graph_def\s*\("),
    "tf2onnx.convert.from_saved_model": re.compile(r"\btf2onnx\.convert\.from_saved_model\s*\("),
}
DYNAMO = re.compile(r"\bdynamo\s*=\s*True\b")
CLI_INPUT_FLAGS = {"--saved-model", "--checkpoint", "--graphdef", "--tflite", "--keras", "--tfjs", "--input"}
CLI_CONVERSION = re.compile(r"^\s*(?:\$\s*)?python3?\s+-m\s+tf2onnx\.convert\b.*$", re.M)
# Names a snippet commonly uses without importing them, and the import that binds each.
STANDARD_IMPORTS = {
    "torch": "import torch",
    "nn": "import torch.nn as nn",
    "F": "import torch.nn.functional as F",
    "np": "import numpy as np",
    "numpy": "import numpy",
    "tf": "import tensorflow as tf",
    "onnx": "import onnx",
    "onnxruntime": "import onnxruntime",
    "ort": "import onnxruntime as ort",
    "tf2onnx": "import tf2onnx",
}
INPUT_FILE = re.compile(
    r"""["']([^"'\n]+\.(?:pth|pt|ckpt|h5|hdf5|pb|jpg|jpeg|png|bmp|npy|npz|bin|pkl|pickle|tflite|csv|txt|json|wav))["']""",
    re.I,
)
GPU = re.compile(r"\.cuda\s*\(|device\s*=\s*['\"]cuda|torch\.device\(\s*['\"]cuda|['\"]cuda:\d['\"]")
REMOVED_APIS = {
    "torch.onnx.export(example_outputs=...)": re.compile(r"\bexample_outputs\s*="),
    "torch.onnx.export(enable_onnx_checker=...)": re.compile(r"\benable_onnx_checker\s*="),
    "torch.onnx.export(use_external_data_format=...)": re.compile(r"\buse_external_data_format\s*="),
    "torch.onnx.export(_retain_param_name=...)": re.compile(r"\b_retain_param_name\s*="),
    "torch.onnx.export(strip_doc_string=...)": re.compile(r"\bstrip_doc_string\s*="),
    "TensorFlow 1 tf.Session": re.compile(r"\btf\.Session\s*\("),
    "TensorFlow 1 tf.placeholder": re.compile(r"\btf\.placeholder\s*\("),
}


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
    if TRACEBACK.search(code):
        return "traceback"
    if lang in SHELL_LANGS or CLI_CONVERSION.search(code):
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
    return [name for name, pattern in CONVERSIONS.items() if pattern.search(code)]


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
    return [STANDARD_IMPORTS[name] for name in STANDARD_IMPORTS if name in used - bound]


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
            if block.kind == "shell" and (cli := CLI_CONVERSION.search(block.code)):
                return _cli_candidate(post, block, cli.group(0), tracebacks)
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
    if "torch.onnx.dynamo_export" in kinds or ("torch.onnx.export" in kinds and DYNAMO.search(code)):
        provenance["exporter"] = "dynamo"
    elif "torch.onnx.export" in kinds:
        provenance["exporter"] = "torchscript"
    files = sorted(set(INPUT_FILE.findall(code)))
    problems = []
    if files:
        provenance["missing_files"] = files
        problems.append(f"needs external files: {', '.join(files)}")
    if GPU.search(code):
        problems.append("needs a GPU (.cuda() / device='cuda')")
    removed = [name for name, pattern in REMOVED_APIS.items() if pattern.search(code)]
    if removed:
        provenance["removed_apis"] = removed
        problems.append(f"uses an API that no longer exists: {', '.join(removed)}")
    reason = "; ".join(problems) or None
    return Candidate(not problems, reason, script, kinds, provenance, tracebacks)


def _cli_candidate(post: str, block: Block, command: str, tracebacks: list[str]) -> Candidate:
    words = shlex.split(command.strip().lstrip("$").strip())
    arguments = words[words.index("tf2onnx.convert") + 1 :]
    script = (
        "import subprocess\nimport sys\n\n"
        f"completed = subprocess.run([sys.executable, '-m', 'tf2onnx.convert', *{arguments!r}])\n"
        "sys.exit(completed.returncode)\n"
    )
    provenance = {"post": post, "blocks": [block.index], "command": command.strip(), "extractor": EXTRACTOR_VERSION}
    inputs = [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a.split("=")[0] in CLI_INPUT_FLAGS]
    inputs += [a.split("=", 1)[1] for a in arguments if "=" in a and a.split("=")[0] in CLI_INPUT_FLAGS]
    problems = [f"needs external files: {', '.join(inputs)}"] if inputs else []
    return Candidate(
        not problems, "; ".join(problems) or None, script, ["python -m tf2onnx.convert"], provenance, tracebacks
    )
