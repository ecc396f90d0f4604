"""Mechanical repairs of a snippet, each recorded so a reader sees exactly what was changed.

Only changes a person re-running an old report would make without thinking, and never model code:

- calls of renamed or private entry points (``torch.onnx._export``, ``keras2onnx.convert_keras``) go
  to today's entry point, as the converter catalog says (``[[reproduce.rename]]``);
- keyword arguments the converter has removed (``example_outputs=``, ``enable_onnx_checker=``...)
  are dropped;
- an export with no output file gets a placeholder path, and one into a folder of the reporter's
  machine is written to the working directory instead;
- ``.cuda()`` / ``device='cuda'`` / ``map_location='cuda'`` run on the CPU, when nothing else in the
  snippet needs a GPU;
- a root folder the snippet uses but never defines (``os.path.join(ROOT, ...)``) is the working
  directory.

Edits are made on the source text at the positions ``ast`` gives, so the rest of the snippet (its
comments, its layout) is untouched.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from issuemine.domain.converters import Knowledge

PLACEHOLDER = "issuemine_output.onnx"
GPU_ONLY = re.compile(
    r"\btorch\.cuda\.(?!is_available\b|device_count\b|manual_seed)|\bcupy\b|\bpycuda\b|\btensorrt\b|"
    r"CUDAExecutionProvider|TensorrtExecutionProvider|\.half\(\)|\bnvidia\b",
)
ROOT_NAME = re.compile(r"(?i)^(?:[a-z_]*_)?(?:root|dir|path|folder|base)(?:_[a-z_]*)?$")
PATH_FUNCS = {"join", "Path", "exists", "isdir", "isfile", "makedirs", "mkdir", "listdir", "open"}


@dataclass(frozen=True)
class Repair:
    kind: str  # renamed-api | removed-argument | output-path | cpu | undefined-root
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


class _Source:
    """Text edits by ast positions (lines 1-based, columns in UTF-8 bytes)."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.starts = [0]
        for line in code.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        self.lines = code.splitlines(keepends=True)
        self.edits: list[tuple[int, int, str]] = []

    def offset(self, line: int, col: int) -> int:
        text = self.lines[line - 1] if line - 1 < len(self.lines) else ""
        return self.starts[line - 1] + len(text.encode()[:col].decode(errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def text(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.code[start:end]

    def replace(self, start: int, end: int, new: str) -> bool:
        """Plan an edit; one overlapping an earlier edit waits for the next pass (see ``repair``)."""
        if any(s < end and start < e for s, e, _ in self.edits):
            return False
        self.edits.append((start, end, new))
        return True

    def result(self) -> str:
        code = self.code
        for start, end, new in sorted(self.edits, reverse=True):
            code = code[:start] + new + code[end:]
        return code


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _drop_keyword(src: _Source, call: ast.Call, keyword: ast.keyword) -> bool:
    items: list[ast.AST] = sorted([*call.args, *call.keywords], key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]
    index = items.index(keyword)
    start, end = src.span(keyword)
    if index > 0:
        start = src.span(items[index - 1])[1]
    elif index + 1 < len(items):
        end = src.span(items[index + 1])[0]
    return src.replace(start, end, "")


def repair(code: str, known: Knowledge) -> tuple[str, list[Repair]]:
    """The repaired code and what was repaired (nothing when the code does not parse).

    Edits nested in one another (``torch.load(p, map_location='cuda').cuda()``) are made in passes,
    until a pass changes nothing."""
    done: list[Repair] = []
    for _ in range(4):
        code, made = _repair_once(code, known)
        if not made:
            break
        done += made
    return code, done


def _repair_once(code: str, known: Knowledge) -> tuple[str, list[Repair]]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code, []
    src = _Source(code)
    done: list[Repair] = []
    renames = {r.old: r for r in known.renames}
    removed_keywords = {k for r in known.removed if (k := r.keyword)}
    entries = {e.call: e for e in known.entries}
    needs_gpu = bool(GPU_ONLY.search(code))
    bound = bound_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            rename = renames.get(name)
            if rename and src.replace(*src.span(node.func), rename.new):
                done.append(
                    Repair(
                        "renamed-api", f"{name}(...) -> {rename.new}(...)" + (f": {rename.why}" if rename.why else "")
                    )
                )
                for keyword in node.keywords:
                    if keyword.arg in rename.keywords:
                        new = rename.keywords[keyword.arg]
                        if new:
                            key_start = src.offset(keyword.lineno, keyword.col_offset)
                            applied = src.replace(key_start, key_start + len(keyword.arg), new)
                        else:
                            applied = _drop_keyword(src, node, keyword)
                        if applied:
                            what = new + "=" if new else "(dropped)"
                            done.append(Repair("renamed-api", f"{keyword.arg}= -> {what}"))
            call = rename.new if rename else name
            if call in entries or rename:
                for keyword in node.keywords:
                    renamed_away = rename and keyword.arg in rename.keywords
                    if keyword.arg in removed_keywords and not renamed_away and _drop_keyword(src, node, keyword):
                        done.append(Repair("removed-argument", f"dropped {keyword.arg}= from {call}(...)"))
                _output_path(src, node, call, entries, done)
            if not needs_gpu:
                _cpu_call(src, node, done)
        elif isinstance(node, ast.keyword) and node.arg in ("device", "map_location") and not needs_gpu:
            value = node.value
            cuda = isinstance(value, ast.Constant) and isinstance(value.value, str) and value.value.startswith("cuda")
            if cuda and src.replace(*src.span(value), "'cpu'"):
                done.append(Repair("cpu", f"{node.arg}={value.value!r} -> {node.arg}='cpu'"))  # type: ignore[attr-defined]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            _rename_import(src, node, known, done)
    for name in _undefined_roots(tree, bound):
        done.append(Repair("undefined-root", f"{name} is never defined: set to the working directory"))
    repaired = src.result()
    roots = [r.detail.split(" ", 1)[0] for r in done if r.kind == "undefined-root"]
    if roots:
        repaired = "".join(f'{name} = "."  # issuemine: undefined root folder\n' for name in roots) + repaired
    device_strings = re.compile(r"""torch\.device\(\s*(['"])cuda(?::\d+)?\1\s*\)""")
    if not needs_gpu and device_strings.search(repaired):
        repaired = device_strings.sub("torch.device('cpu')", repaired)
        done.append(Repair("cpu", "torch.device('cuda') -> torch.device('cpu')"))
    return repaired, done


def _cpu_call(src: _Source, node: ast.Call, done: list[Repair]) -> None:
    """``x.cuda()`` -> ``x``; ``x.to('cuda')`` -> ``x.to('cpu')``."""
    if not isinstance(node.func, ast.Attribute):
        return
    if node.func.attr == "cuda" and src.replace(*src.span(node), src.text(node.func.value)):
        done.append(Repair("cpu", f"{src.text(node)} -> {src.text(node.func.value)}"))
        return
    target = node.args[0] if node.func.attr == "to" and node.args else None
    cuda = isinstance(target, ast.Constant) and str(target.value).startswith("cuda")
    if target is not None and cuda and src.replace(*src.span(target), "'cpu'"):
        done.append(Repair("cpu", f".to({target.value!r}) -> .to('cpu')"))  # type: ignore[attr-defined]


def _rename_import(src: _Source, node: ast.Import | ast.ImportFrom, known: Knowledge, done: list[Repair]) -> None:
    modules = {old: new for r in known.renames for old, new in r.modules.items()}
    names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    for name in names:
        top = name.split(".")[0]
        if top in modules:
            start, end = src.span(node)
            text = src.code[start:end]
            new = re.sub(rf"\b{re.escape(top)}\b", modules[top], text, count=1)
            if isinstance(node, ast.Import) and not any(a.asname for a in node.names):
                new = f"{new} as {top}" if len(node.names) == 1 else new
            if src.replace(start, end, new):
                done.append(Repair("renamed-api", f"{text} -> {new}"))


def _output_path(src: _Source, call: ast.Call, name: str, entries: dict, done: list[Repair]) -> None:
    """Exports write their model: a placeholder when the path is missing, the working directory
    instead of a folder on the reporter's machine."""
    entry = entries.get(name)
    if entry is None or entry.output_keyword is None:
        return
    position = entry.output_arg
    keyword_name = entry.output_keyword
    target: ast.AST | None = None
    if position is not None and len(call.args) > position:
        target = call.args[position]
    else:
        target = next((k.value for k in call.keywords if k.arg == keyword_name), None)
    if target is None:
        switched = any(
            k.arg == entry.switch_keyword and isinstance(k.value, ast.Constant) and k.value.value for k in call.keywords
        )
        if position is None or switched or any(k.arg is None for k in call.keywords):
            return  # the output is optional there, or **kwargs may carry it
        end = src.span(call)[1] - 1  # before the closing parenthesis
        last = [*call.args, *call.keywords]
        separator = ", " if last else ""
        if src.replace(end, end, f"{separator}{keyword_name}={PLACEHOLDER!r}"):
            done.append(Repair("output-path", f"no output file given: {keyword_name}={PLACEHOLDER!r}"))
        return
    if isinstance(target, ast.Constant) and isinstance(target.value, str):
        path = target.value
        if "/" in path.lstrip("./") or "\\" in path or path.startswith(("/", "~")):
            base = re.split(r"[\\/]", path)[-1] or PLACEHOLDER
            if src.replace(*src.span(target), repr(base)):
                done.append(Repair("output-path", f"{path!r} -> {base!r} (the working directory)"))


def bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds: assignments, imports, definitions, arguments."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound


def _undefined_roots(tree: ast.AST, bound: set[str]) -> list[str]:
    """Names like ROOT_DIR used as a path (joined, opened, listed) but never defined."""
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = _dotted(node.func) or ""
        if func.rsplit(".", 1)[-1] not in PATH_FUNCS:
            continue
        for arg in node.args[:1]:
            if isinstance(arg, ast.Name) and arg.id not in bound and ROOT_NAME.match(arg.id) and arg.id not in found:
                found.append(arg.id)
    return found
