"""Re-runs on Ray (a real local instance on loopback): the same verdicts as the local sandboxes,
warm sandboxes kept per stack on each worker, only the driver storing results."""

from __future__ import annotations

from dataclasses import replace

import pytest

from issuemine.repro.environments import current
from issuemine.repro.runs import Job, Outcome, Runner, RunOptions
from issuemine.repro.sandbox import Limits
from tests.repro.conftest import SNIPPETS

pytest.importorskip("ray")

SNIPPETS_RUN = ["a_torchscript_passes.py", "b_unsupported_operator.py", "e_wrong_model.py", "g_not_runnable.py"]


def verdicts(options: RunOptions) -> list[tuple[int, str, str | None]]:
    jobs = [Job(i, (SNIPPETS / name).read_text()) for i, name in enumerate(SNIPPETS_RUN)]
    found: list[Outcome] = []
    assert Runner(options).run_all(jobs, found.append)
    return sorted((o.job.issue_id or 0, o.verdict.verdict, o.verdict.stage) for o in found)


def test_ray_workers_give_the_verdicts_of_local_sandboxes(monkeypatch: pytest.MonkeyPatch) -> None:
    from issuemine.repro import ray_runs

    dispatched: list[int] = []
    real = ray_runs.run_all
    monkeypatch.setattr(ray_runs, "run_all", lambda o, jobs, done: dispatched.append(len(jobs)) or real(o, jobs, done))
    local = RunOptions(env=current(), limits=Limits(timeout=90), jobs=2)
    expected = verdicts(local)
    assert [v for _, v, _ in expected] == ["passes", "crash", "wrong-model", "not-runnable"]
    assert not dispatched
    assert verdicts(replace(local, executor="ray")) == expected
    assert dispatched == [4]  # every job went through Ray


def test_a_bad_executor_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    from issuemine.cli.app import app

    result = cli.invoke(app, ["repro", "run", "--executor", "slurm", "--db", "nowhere.db"])
    assert result.exit_code == 2 and "choose threads or ray" in result.output
    result = cli.invoke(app, ["repro", "bisect", "o/r#1", "--address", "10.0.0.1:6379", "--db", "nowhere.db"])
    assert result.exit_code == 2 and "--address joins a Ray cluster" in result.output
