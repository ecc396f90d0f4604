"""Each difftest test starts from the same NNSmith state.

`difftest run` points NNSmith at its campaign's operator cache for the rest of the process (the
environment variable its workers read, NNSmith's cache folder, the operator set already applied):
right for the command, whose process ends with it, but a test that runs the command in-process
(CliRunner) would hand the next test another campaign's cache. This restores them after each test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _nnsmith_state() -> Iterator[None]:
    from nnsmith import narrow_spec

    from issuemine.difftest import generate

    env, folder = os.environ.get(generate.CACHE_ENV), narrow_spec.NNSMITH_CACHE_DIR
    yield
    if env is None:
        os.environ.pop(generate.CACHE_ENV, None)
    else:
        os.environ[generate.CACHE_ENV] = env
    if folder != narrow_spec.NNSMITH_CACHE_DIR:
        narrow_spec.NNSMITH_CACHE_DIR = folder
        generate._APPLIED.clear()
