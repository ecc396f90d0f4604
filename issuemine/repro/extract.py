"""Find runnable conversion snippets in an issue thread, or say why there is none.

Reads the posts in thread order (``posts.py`` finds their code as a person would see it).
Tracebacks are kept as evidence and never executed. A *candidate* is the Python code of the first
post that calls a converter (or a renamed entry point the catalog knows), its blocks in order, with
the standard imports the snippet uses but never imports added and the mechanical repairs of
``repairs.py`` applied; every addition and repair is recorded in its provenance. A thread whose
extraction fails gets that failure as its reason, never stops a run. Nothing here runs code.
"""

from __future__ import annotations

import ast
import builtins
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from issuemine.domain.converters import CommandLine, Knowledge, knowledge
from issuemine.domain.tracebacks import find_tracebacks
from issuemine.repro.calls import aliases, called, dotted, through
from issuemine.repro.posts import Block, blocks_of, join_continuations
from issuemine.repro.repairs import GPU_ONLY, bound_names, repair
from issuemine.repro.versions import reported_versions

EXTRACTOR_VERSION = "2"
BUILTINS = set(dir(builtins))

CLI_CONVERSION = r"^\s*(?:\$\s*|!\s*)?(?:python[\d.]*|py)\s+-m\s+{module}\b.*$"
INPUT_FILE = re.compile(
    r"""["']([^"'\n]+\.(?:pth|pt|ckpt|h5|hdf5|pb|jpg|jpeg|png|bmp|npy|npz|bin|pkl|pickle|tflite|csv|txt|json|wav|onnx|keras|safetensors))["']""",
    re.I,
)
GPU = re.compile(r"\.cuda\s*\(|device\s*=\s*['\"]cuda|torch\.device\(\s*['\"]cuda|['\"]cuda:\d['\"]")
__all__ = ["EXTRACTOR_VERSION", "Block", "Candidate", "blocks_of_post", "extract", "missing_imports"]


@dataclass
class Candidate:
    runnable: bool
    reason: str | None
    script: str = ""
    conversions: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    tracebacks: list[str] = field(default_factory=list)


def _command_line(code: str, known: Knowledge) -> tuple[CommandLine, str] | None:
    """The first converter command line in a piece of text, and the catalog entry describing it."""
    text = join_continuations(code)
    for command_line in known.command_lines:
        found = re.search(CLI_CONVERSION.format(module=re.escape(command_line.module)), text, re.M)
        if found:
            return command_line, found.group(0)
    return None


def _anchors(known: Knowledge) -> list[re.Pattern[str]]:
    return [e.pattern() for e in known.entries] + [r.pattern() for r in known.renames]


def blocks_of_post(post: str, markdown: str | None, known: Knowledge | None = None) -> list[Block]:
    known = known or knowledge()
    return blocks_of(post, markdown, _anchors(known), lambda code: _command_line(code, known))


def conversions_in(code: str, known: Knowledge | None = None) -> list[str]:
    """The catalog's entry points (and renamed ones) the code calls, in catalog order, however it
    imported them (``from torch.onnx import export``, ``import torch.onnx as tonnx``: calls.py);
    code that does not parse is searched for the dotted names as written."""
    known = known or knowledge()
    resolved = called(code) or set()

    def calls(name: str, pattern: re.Pattern[str]) -> bool:
        return name in resolved or bool(pattern.search(code))

    found = [e.call for e in known.entries if calls(e.call, e.pattern())]
    return found + [r.old for r in known.renames if calls(r.old, r.pattern())]


def looked_for(known: Knowledge) -> str:
    """The entry points extraction looks for, for a reason that says what was missing."""
    return ", ".join(dict.fromkeys([*(e.call for e in known.entries), *(r.old for r in known.renames)]))


def _exporter(code: str, calls: list[str], known: Knowledge) -> str | None:
    """The exporter the code uses: the last called entry point's, switched by its keyword if set."""
    chosen = None
    for entry in known.entries:
        if entry.call not in calls:
            continue
        exporter = entry.exporter
        if entry.switch_keyword and re.search(rf"\b{re.escape(entry.switch_keyword)}\s*=\s*True\b", code):
            exporter = entry.switch_exporter
        chosen = exporter or chosen
    return chosen


def missing_imports(code: str, known: Knowledge | None = None) -> list[str]:
    """Standard imports for names the code uses but never binds."""
    imports = (known or knowledge()).imports
    unbound = _unbound(code)
    return [imports[name] for name in imports if name in unbound]


def extract(posts: list[tuple[str, str | None]]) -> Candidate:
    """A candidate from a thread given as (post id, markdown) in thread order.

    Never raises: a thread that defeats extraction gets the failure as its reason."""
    try:
        return _extract(posts, knowledge())
    except Exception as exc:  # one odd thread must not stop a run over thousands
        return Candidate(False, f"extraction failed: {type(exc).__name__}: {exc}"[:300])


def _extract(posts: list[tuple[str, str | None]], known: Knowledge) -> Candidate:
    text = "\n\n".join(body or "" for _, body in posts)
    tracebacks = [t for _, body in posts for t in find_tracebacks(body or "")]
    versions = reported_versions(text)
    blocks = [b for post, body in posts for b in blocks_of_post(post, body, known)]
    if not blocks:
        return Candidate(False, "no code in the issue", tracebacks=tracebacks, provenance=_versions(versions))
    runnable = [b for b in blocks if b.kind in ("python", "shell")]
    if not runnable:
        reason = "only a traceback, no code to run" if tracebacks else "code blocks are not Python (or do not parse)"
        return Candidate(False, reason, tracebacks=tracebacks, provenance=_versions(versions))
    for post in dict.fromkeys(b.post for b in runnable):
        mine = [b for b in runnable if b.post == post]
        python = [b for b in mine if b.kind == "python"]
        code = "\n".join(b.code.rstrip() + "\n" for b in python)
        kinds = conversions_in(code, known)
        if kinds:
            earlier = _context_blocks(code, [b for b in runnable if b.kind == "python" and b.post != post], known)
            if earlier:
                code = "\n".join(b.code.rstrip() + "\n" for b in earlier) + code
            return _python_candidate(post, earlier + python, code, kinds, tracebacks, versions, known)
        for block in mine:
            if block.kind == "shell" and (found := _command_line(block.code, known)):
                return _cli_candidate(post, block, found[0], found[1], tracebacks, versions)
    reason = f"no converter call in the code (looked for {looked_for(known)})"
    return Candidate(False, reason, tracebacks=tracebacks, provenance=_versions(versions))


def _top_level_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _context_blocks(code: str, others: list[Block], known: Knowledge) -> list[Block]:
    """Earlier posts' blocks that define what the converting post uses but never defines: the
    model class in the report, the export in a later comment."""
    try:
        unbound = _unbound(code)
    except (SyntaxError, ValueError):
        return []
    unbound -= set(known.imports)  # standard imports are added anyway
    chosen = []
    for block in others:
        if unbound & _top_level_names(block.code) - {"torch", "tf", "np"}:
            chosen.append(block)
            unbound -= _top_level_names(block.code)
    return chosen


def _unbound(code: str) -> set[str]:
    """Names the code uses but never binds (nor Python's builtins)."""
    tree = ast.parse(code)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - bound_names(tree) - BUILTINS


def _versions(versions: dict[str, str]) -> dict[str, Any]:
    return {"reported_versions": versions, "extractor": EXTRACTOR_VERSION} if versions else {}


def _python_candidate(
    post: str,
    blocks: list[Block],
    code: str,
    kinds: list[str],
    tracebacks: list[str],
    versions: dict[str, str],
    known: Knowledge,
) -> Candidate:
    repaired, repairs = repair(code, known)
    added = missing_imports(repaired, known)
    script = "\n".join(added) + ("\n\n" if added else "") + repaired
    calls = conversions_in(repaired, known)
    provenance: dict[str, Any] = {
        "post": post,
        "blocks": [b.index for b in blocks],
        "block_sources": sorted({b.source for b in blocks}),
        "added_imports": added,
        "repairs": [r.as_dict() for r in repairs],
        "extractor": EXTRACTOR_VERSION,
    }
    if versions:
        provenance["reported_versions"] = versions
    exporter = _exporter(repaired, calls, known)
    if exporter:
        provenance["exporter"] = exporter
        if exporter == "torchscript" and not re.search(r"\bdynamo\s*=", repaired):
            provenance["exporter_written_for"] = "torchscript"  # written before dynamo was the default
    files = _input_files(repaired, {e.call: e.model_keyword for e in known.entries})
    problems = []
    if files:
        provenance["missing_files"] = files
        problems.append(f"needs external files: {', '.join(files)}")
    if GPU.search(repaired) or GPU_ONLY.search(repaired):
        problems.append("needs a GPU (.cuda() / device='cuda' with GPU-only code)")
    removed = [api.name for api in known.removed if api.pattern.search(repaired)]
    if removed:
        provenance["removed_apis"] = removed
        problems.append(f"uses an API that no longer exists: {', '.join(removed)}")
    reason = "; ".join(problems) or None
    return Candidate(not problems, reason, script, calls or kinds, provenance, tracebacks)


PRODUCER = re.compile(r"save|export|write|dump|convert|to_file|to_onnx|from_keras|from_function", re.I)
READER = re.compile(r"load|read|open|InferenceSession|from_tflite|from_saved_model|from_graph_def|Parse", re.I)
TRANSPARENT = {"join", "Path", "abspath", "expanduser", "str", "format", "print"}


def _input_files(code: str, entry_points: dict[str, str | None] | None = None) -> list[str]:
    """Files the snippet reads before writing them (a model it saves and loads back is fine; an
    ONNX file is an output unless something reads it first). A converter's entry point called with
    a path as its first argument, or as the keyword its catalog entry names, reads that model
    (``onnx2torch.convert("model.onnx")``, ``onnx2tf.convert(input_onnx_file_path="m.onnx")``),
    however the snippet imported it. ``entry_points``: call name -> that keyword (or None)."""
    entry_points = entry_points or {}
    named = set(INPUT_FILE.findall(code))
    if not named:
        return []
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return sorted(named)
    bound = aliases(tree)
    literals = _path_variables(tree, named)

    def path_of(node: ast.AST) -> str | None:
        """The file name a node stands for: a string literal, or a variable assigned one once."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in named:
            return node.value
        return literals.get(node.id) if isinstance(node, ast.Name) else None

    first_use: dict[str, str] = {}  # file -> the first call that takes it directly
    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
    for call in calls:
        name = ast.unparse(call.func).rsplit(".", 1)[-1]
        if name in TRANSPARENT:
            continue
        full = dotted(call.func)
        entry = through(full, bound) if full else None
        if entry in entry_points:
            keyword = entry_points[entry]
            given = [k.value for k in call.keywords if keyword and k.arg == keyword]
            for model in [*call.args[:1], *given]:
                path = path_of(model)
                if path:
                    first_use.setdefault(path, "load")  # the converter reads the model
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            for node in ast.walk(arg):
                path = path_of(node)
                if path:
                    first_use.setdefault(path, name)
    missing = []
    for file in sorted(named):
        user = first_use.get(file)
        if file.endswith(".onnx"):
            if user is not None and READER.search(user) and not PRODUCER.search(user):
                missing.append(file)
        elif user is None or not PRODUCER.search(user):
            missing.append(file)
    return missing


def _path_variables(tree: ast.AST, named: set[str]) -> dict[str, str]:
    """Variables assigned a file name exactly once (``onnx_path = "model.onnx"``), so a call that
    takes the variable takes the file."""
    seen: dict[str, list[str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            literal = value.value if isinstance(value, ast.Constant) and value.value in named else None
            for target in targets:
                if isinstance(target, ast.Name):
                    seen.setdefault(target.id, []).append(literal if len(targets) == 1 else None)
    return {name: values[0] for name, values in seen.items() if len(values) == 1 and values[0]}


def _cli_candidate(
    post: str,
    block: Block,
    command_line: CommandLine,
    command: str,
    tracebacks: list[str],
    versions: dict[str, str],
) -> Candidate:
    line = command.strip().lstrip("$!").strip()
    try:
        words = shlex.split(line)
    except ValueError:  # an unbalanced quote, a stray backslash: split on blanks as a shell would mostly do
        words = line.split()
    arguments = words[words.index(command_line.module) + 1 :] if command_line.module in words else []
    script = (
        "import subprocess\nimport sys\n\n"
        f"completed = subprocess.run([sys.executable, '-m', {command_line.module!r}, *{arguments!r}])\n"
        "sys.exit(completed.returncode)\n"
    )
    provenance: dict[str, Any] = {
        "post": post,
        "blocks": [block.index],
        "block_sources": [block.source],
        "command": line,
        "extractor": EXTRACTOR_VERSION,
    }
    if versions:
        provenance["reported_versions"] = versions
    flags = set(command_line.input_flags)
    inputs = [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a.split("=")[0] in flags]
    inputs += [a.split("=", 1)[1] for a in arguments if "=" in a and a.split("=")[0] in flags]
    problems = [f"needs external files: {', '.join(inputs)}"] if inputs else []
    conversion = f"python -m {command_line.module}"
    return Candidate(not problems, "; ".join(problems) or None, script, [conversion], provenance, tracebacks)
