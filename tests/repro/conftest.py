"""Sandboxed runners shared by the reproduction tests (starting a warm sandbox imports torch)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from issuemine.repro.environments import current
from issuemine.repro.runs import Job, Outcome, Runner, RunOptions
from issuemine.repro.sandbox import Limits, Zygote
from issuemine.resources import data_dir

SNIPPETS = data_dir() / "repro-examples"


class Harness:
    """A runner plus one live sandbox: ``run(script)`` gives the Outcome as `repro run` would."""

    def __init__(self, runner: Runner, zygote: Zygote) -> None:
        self.runner, self.zygote = runner, zygote

    def run(self, script: str, timeout: float | None = None) -> Outcome:
        return self.runner.classify(self.zygote, Job(None, script), timeout)

    def snippet(self, name: str, timeout: float | None = None) -> Outcome:
        return self.run((SNIPPETS / name).read_text(), timeout)


def make_harness(warm: bool, limits: Limits, slot: int = 0, sandbox: str = "auto") -> Iterator[Harness]:
    runner = Runner(RunOptions(env=current(), limits=limits, warm=warm, sandbox=sandbox))
    with runner.zygote(slot) as zygote:
        yield Harness(runner, zygote)


@pytest.fixture(scope="session")
def warm() -> Iterator[Harness]:
    yield from make_harness(True, Limits(timeout=90))


@pytest.fixture(scope="session")
def cold() -> Iterator[Harness]:
    """A fresh sandboxed interpreter per snippet (its own uid slot: nothing shared with ``warm``)."""
    yield from make_harness(False, Limits(timeout=90), slot=1)
