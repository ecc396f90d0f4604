"""Sandboxed re-runs on Ray: a local Ray instance on loopback, or a cluster at ``--address``.

A matrix of issues × stacks × variants multiplies work; ``repro run --executor ray`` and ``repro
bisect --executor ray`` spread it over Ray workers. Each worker is an actor that keeps one warm
sandbox per stack it has run (the same bubblewrap sandbox and zygote as on this machine, started on
the worker's machine), so a stack's frameworks are imported once per worker. Only verdicts and run
records come back; only this process writes the database. A worker that dies becomes that run's
``sandbox-server`` outcome and is replaced. The cluster's machines need issuemine and the stacks
(built with ``repro env build`` at the same paths) as this one has.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from issuemine.repro.runs import Job, Outcome, Runner, RunOptions
from issuemine.repro.verdicts import Verdict


class SandboxWorker:
    """A Ray actor: warm sandboxes, one per stack, kept between the runs it is given."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.runners: dict[str, Runner] = {}
        self.zygotes: dict[str, Any] = {}

    def run(self, options: RunOptions, job: Job) -> Outcome:
        key = options.env.name
        if key not in self.runners:
            self.runners[key] = Runner(options)
            self.zygotes[key] = self.runners[key].zygote(self.slot)
        return self.runners[key].classify(self.zygotes[key], job)

    def close(self) -> None:
        for zygote in self.zygotes.values():
            zygote.close()
        self.zygotes.clear()


def run_all(options: RunOptions, jobs: list[Job], on_outcome: Callable[[Outcome], None]) -> bool:
    """Run ``jobs`` on ``options.jobs`` Ray workers; ``on_outcome`` is called here as each finishes.
    False when interrupted (Ctrl-C), as for the local runner."""
    from issuemine import interrupt
    from issuemine.difftest.ray_executor import RayExecutor

    starter = RayExecutor(options.jobs, options.limits.timeout, Path("/dev/null"), address=options.address)
    ray = starter._start()
    from ray.exceptions import RayError

    actor = ray.remote(num_cpus=1, max_restarts=0)(SandboxWorker)
    workers = [actor.remote(slot) for slot in range(max(1, min(options.jobs, len(jobs))))]
    idle = list(range(len(workers)))
    pending = list(jobs)
    running: dict[Any, tuple[int, Job]] = {}
    try:
        while pending or running:
            while pending and idle:
                slot = idle.pop()
                job = pending.pop(0)
                running[workers[slot].run.remote(options, job)] = (slot, job)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                slot, job = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except RayError as exc:  # the worker died: that run's outcome, and a fresh worker
                    reason = f"the Ray worker died during the run: {str(exc).strip().splitlines()[0][:300]}"
                    outcome = Outcome(
                        job, Verdict("sandbox-violation", None, reason, {"violation": "sandbox-server"}), {}
                    )
                    workers[slot] = actor.remote(slot)
                idle.append(slot)
                on_outcome(outcome)
            interrupt.check()
    except KeyboardInterrupt:
        return False
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
        for worker in workers:
            with contextlib.suppress(Exception):  # a dead worker has nothing to close
                ray.get(worker.close.remote(), timeout=30)
        if starter.owned:
            ray.shutdown()
    return True
