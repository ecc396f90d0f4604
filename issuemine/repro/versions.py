"""The versions a thread reports: ``torch 1.8.0``, ``onnx==1.12``, ``opset_version=11``, a
``collect_env`` block. Stored with the candidate so a report can say how far today's run is from
the reporter's, and which exporter the snippet was written for."""

from __future__ import annotations

import re

PACKAGES = {
    "torch": r"torch|pytorch",
    "onnx": r"onnx",
    "onnxruntime": r"onnxruntime(?:-gpu)?|ort",
    "tensorflow": r"tensorflow(?:-gpu|-cpu)?|tf",
    "tf2onnx": r"tf2onnx",
    "onnx2torch": r"onnx2torch",
    "onnx2tf": r"onnx2tf",
    "keras": r"keras",
    "python": r"python",
}
VERSION = r"v?(?P<version>\d+\.\d+(?:\.\d+)?(?:[.+\-]?(?:dev|post|rc|a|b)?[\w.]*)?)"
OPSET = re.compile(r"opset(?:[ _]version)?\s*(?:=|:|\s)\s*(?P<opset>\d{1,2})\b|--opset[ =](?P<cli>\d{1,2})\b", re.I)


def _pattern(names: str) -> re.Pattern[str]:
    # "torch 1.8.0", "torch==1.8.0", "PyTorch version: 1.13.1+cu117", "Torch Version : 1.8", "torch: 2.0",
    # and an issue form's heading with the answer below it ("### onnx2tf version number", blank, "1.13.11")
    return re.compile(
        rf"(?<![\w.-])(?:{names})(?![\w-])(?:[ \t]+version[ \t]+number[ \t]*\n\s*|"
        rf"(?:[ \t]*version)?[ \t]*(?:==|=|:|\bis\b|[ \t])[ \t]*){VERSION}",
        re.I,
    )


PATTERNS = {name: _pattern(names) for name, names in PACKAGES.items()}


def reported_versions(text: str) -> dict[str, str]:
    """The first version the thread gives for each package it names (and the ONNX opset)."""
    found: dict[str, str] = {}
    for name, pattern in PATTERNS.items():
        match = pattern.search(text or "")
        if match:
            found[name] = match["version"].rstrip(".,")
    opset = OPSET.search(text or "")
    if opset:
        found["opset"] = opset["opset"] or opset["cli"]
    return found


def major_minor(version: str | None) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(found[1]), int(found[2])) if found else None
