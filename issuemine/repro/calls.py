"""Which functions a snippet calls, by their full dotted names, however it imported them.

A reporter writes ``torch.onnx.export(...)``, or ``from torch.onnx import export`` then
``export(...)``, or ``import torch.onnx as tonnx`` then ``tonnx.export(...)``; onnx2torch's own
README says ``from onnx2torch import convert``. Names are resolved the way Python binds them:
``import X``, ``import X.Y`` (binds ``X``), ``import X as Y``, ``from X import f [as g]``,
``from X.Y import Z``, and attribute chains on any of those. Nothing here runs code.
"""

from __future__ import annotations

import ast


def aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in the code (in any scope: a
    snippet that imports inside a function still calls the converter)."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    bound.setdefault(head, head)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name != "*":
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name; None for anything else (a call's result...)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def called(code: str) -> set[str] | None:
    """The full dotted names of the functions ``code`` calls, through its imports (a name no import
    binds is kept as written: ``torch.onnx.export`` after a star import or a missing one). None when
    the code does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    bound = aliases(tree)
    return {
        through(name, bound) for node in ast.walk(tree) if isinstance(node, ast.Call) and (name := dotted(node.func))
    }


def through(name: str, bound: dict[str, str]) -> str:
    """``name`` as written (``o2t.convert``) with its first part replaced by what an import bound it to."""
    head, _, rest = name.partition(".")
    full = bound.get(head, head)
    return f"{full}.{rest}" if rest else full
