"""The same campaign jobs on Ray: a local Ray instance on loopback, or a cluster at ``--address``.

Each job is one Ray task that calls the same runner the local pool calls, so both executors give
the same outcome for the same model. What the pool does by hand, Ray does by itself: a worker that
dies (segfault, abort, ``os._exit``) fails its task with ``WorkerCrashedError`` and is replaced; a
task past its time limit is cancelled with ``force=True``, which kills its worker. Both become the
model's recorded outcome, as with the pool. Results come back to this process, which stores them,
so only the machine running ``difftest run`` needs the database; workers on other machines write
their kept ONNX files under ``--out`` on their own disk unless it is a shared folder. The cluster's
machines need issuemine with its difftest extra installed, as this one has.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from issuemine.difftest.pool import DEFAULT_RUNNER, _base, _load, limit_memory
from issuemine.errors import IssuemineError


def _call(runner: str, task: dict[str, Any], memory: int | None) -> dict[str, Any]:
    limit_memory(memory)  # the worker keeps the limit for the tasks it runs next
    return _load(runner)(task)


class RayExecutor:
    def __init__(
        self,
        jobs: int,
        timeout: float,
        log: Path,
        runner: str = DEFAULT_RUNNER,
        address: str | None = None,
        memory: int | None = None,
    ) -> None:
        self.jobs, self.timeout, self.log, self.runner, self.address = max(1, jobs), timeout, log, runner, address
        self.memory = memory
        self.replaced = 0
        self.owned = False  # whether this executor started Ray (and so stops it)

    def _start(self) -> Any:
        if not self.address and "ray" not in sys.modules:
            # A local instance stays on loopback: Ray otherwise swaps 127.0.0.1 for the machine's
            # reachable address (its switch for that is read once, when Ray is imported).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise IssuemineError("--executor ray needs Ray: pip install 'issuemine[ray]'") from None
        if ray.is_initialized():  # a session this process already joined (a notebook, a test): use it
            self.owned = False
            return ray
        self.owned = True
        # Workers import the runner module; they must see the same code as this process.
        paths = os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())
        options: dict[str, Any] = {
            "log_to_driver": False,  # converters print whole graphs; Ray keeps worker logs in its session folder
            "include_dashboard": False,
            "runtime_env": {"env_vars": {"PYTHONPATH": paths}},
            "logging_level": "ERROR",
        }
        if self.address:
            options["address"] = self.address
        else:
            options.update(num_cpus=self.jobs, _node_ip_address="127.0.0.1")  # a local instance, on loopback only
        try:
            ray.init(**options)
        except ConnectionError as exc:
            raise IssuemineError(f"--address {self.address}: cannot join the Ray cluster ({exc})") from None
        return ray

    def run(self, tasks: Iterable[dict[str, Any]], done: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
        """Run every task; ``done(task, result)`` is called in this process as each one finishes.

        Ray prints its notices of dead workers to this process's stdout, from a thread of its own;
        they go to the log file instead, as the pool's worker output does, so that stdout keeps only
        what the command means to print (``--json``)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
            self._run(tasks, done)

    def _run(self, tasks: Iterable[dict[str, Any]], done: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
        ray = self._start()
        from ray.exceptions import RayError

        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        pending = deque(tasks)
        running: dict[Any, tuple[dict[str, Any], float]] = {}
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    task = pending.popleft()
                    running[remote.remote(self.runner, task, self.memory)] = (task, time.monotonic() + self.timeout)
                nearest = min(deadline for _, deadline in running.values()) - time.monotonic()
                ready, _ = ray.wait(list(running), num_returns=1, timeout=max(0.0, nearest))
                for ref in ready:
                    task, _ = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except RayError as exc:  # WorkerCrashedError, or the runner itself raised
                        self.replaced += 1
                        result = {**_base(task), "outcome": "worker-crash", "error": _crash(exc)}
                    done(task, result)
                now = time.monotonic()
                for ref, (task, deadline) in list(running.items()):
                    if now >= deadline:
                        ray.cancel(ref, force=True)  # kills the worker: a hung converter does not come back
                        running.pop(ref)
                        self.replaced += 1
                        error = f"no result within {self.timeout:g} s: the worker was killed (a hang)"
                        done(task, {**_base(task), "outcome": "timeout", "error": error})
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
            if self.owned:
                ray.shutdown()


def _crash(exc: BaseException) -> str:
    """Ray's crash report, first line: the worker died (and how, when Ray knows)."""
    text = str(exc).strip().splitlines()
    return "the worker process died: " + (text[0][:300] if text else type(exc).__name__)
