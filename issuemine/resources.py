"""Bundled data and codebooks, found the same way in a checkout, an editable install and a wheel.

The repository's top-level ``data/`` and ``taxonomy/`` are the one source of truth. The package
reaches them through its ``issuemine/data`` and ``issuemine/taxonomy`` links, which a wheel build
turns into real files (package data), so ``importlib.resources`` finds them wherever issuemine is
installed.

``ISSUEMINE_DATA`` points the bundled *data* elsewhere (say, a newer ``study-labels.csv``); the
codebooks move only with ``ISSUEMINE_TAXONOMY`` or ``--taxonomy``, never as a side effect of it.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path


def _bundled(name: str) -> Path:
    return Path(str(files("issuemine") / name))


def data_dir() -> Path:
    env = os.environ.get("ISSUEMINE_DATA")
    return Path(env) if env else _bundled("data")


def taxonomy_dir() -> Path:
    env = os.environ.get("ISSUEMINE_TAXONOMY")
    return Path(env) if env else _bundled("taxonomy")
