"""The Ray executor, on a real local Ray instance on loopback: faults are outcomes, an interrupted
campaign resumes, and Ray and the local pool give the same outcomes for the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from issuemine.db import open_db
from issuemine.difftest.campaign import Plan, models, run, table_11
from issuemine.difftest.ray_executor import RayExecutor

PLAN = Plan("torch.onnx", "torchscript", 17, 9, [8, 12], 3, 5, "study")


def test_faults_under_ray_are_outcomes_and_the_campaign_goes_on(tmp_path, capsys):
    faults = ["abort", "segfault", "hang", "exit", None, None]
    tasks = [{"seed": i, "nodes": 1, "fault": f} for i, f in enumerate(faults)]
    results: dict[int, dict] = {}  # type: ignore[type-arg]
    # The limit counts from submission, so it includes starting a replacement worker (slow on a busy machine).
    executor = RayExecutor(2, 30.0, tmp_path / "w.log", "tests.difftest.runners:faulty")
    executor.run(tasks, lambda task, result: results.__setitem__(task["seed"], result))
    assert [results[i]["outcome"] for i in range(6)] == [
        "worker-crash",
        "worker-crash",
        "timeout",
        "worker-crash",
        "success",
        "success",
    ]
    assert "died" in results[0]["error"] and "hang" in results[2]["error"]
    assert executor.replaced == 4
    # Ray's notices of dead workers go to the log, not to stdout (which --json keeps for the result).
    assert "worker died" not in capsys.readouterr().out and "worker died" in (tmp_path / "w.log").read_text()


class Interrupt(Exception):
    pass


@pytest.fixture
def ray_session(tmp_path):  # type: ignore[no-untyped-def]
    """One local Ray instance for both runs of a campaign, started as the executor starts it: its
    workers keep torch imported between the runs, as on a long-lived cluster."""
    starter = RayExecutor(2, 60, tmp_path / "w.log")
    ray = starter._start()
    assert starter.owned and ray.is_initialized()
    yield ray
    ray.shutdown()


def test_an_interrupted_ray_campaign_resumes_and_agrees_with_the_pool(tmp_path, ray_session):
    db = open_db(str(tmp_path / "ray.db"))
    seen = []

    def stop_after_two(result: dict, counts: object) -> None:  # type: ignore[type-arg]
        seen.append(result)
        if len(seen) == 2:
            raise Interrupt  # as Ctrl-C would, with other models still in flight on Ray

    with pytest.raises(Interrupt):
        run(db, PLAN, tmp_path / "out", 2, executor="ray", progress=stop_after_two)
    first = models(db, 1)
    assert len(first) == 2  # both stored before the interruption, nothing else

    report = run(db, PLAN, tmp_path / "out", 2, executor="ray")
    assert (report.skipped, report.ran, report.planned) == (2, 4, 6)
    by_ray = {(m.nodes, m.seed): (m.outcome, m.max_abs_diff, m.operators) for m in models(db, 1)}
    assert len(by_ray) == 6
    for m in first:  # the finished models were not redone
        assert next(x for x in models(db, 1) if x.seed == m.seed).finished_at == m.finished_at

    pool_db = open_db(str(tmp_path / "pool.db"))
    run(pool_db, PLAN, tmp_path / "out-pool", 2, executor="pool")
    by_pool = {(m.nodes, m.seed): (m.outcome, m.max_abs_diff, m.operators) for m in models(pool_db, 1)}
    assert by_pool == by_ray
    assert [dict(r, campaign=0) for r in table_11(pool_db)] == [dict(r, campaign=0) for r in table_11(db)]


def test_a_cluster_that_is_not_there_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from issuemine.cli.app import app
    from tests.cli.test_cli import assert_clean_error

    db = ["--db", str(tmp_path / "d.db")]
    result = CliRunner().invoke(app, ["difftest", "run", "--address", "127.0.0.1:1", *db])
    assert_clean_error(result, "--address joins a Ray cluster")
    result = CliRunner().invoke(app, ["difftest", "run", "--executor", "dask", *db])
    assert_clean_error(result, "--executor 'dask'")
    assert not Path(tmp_path / "out").exists()
