"""Worker processes that survive what they run: a converter or runtime that segfaults, aborts or
hangs on one model becomes that model's outcome, and the worker is replaced.

``concurrent.futures.ProcessPoolExecutor`` cannot do this: a worker killed by a signal breaks the
whole pool (``BrokenProcessPool``) and a task cannot be timed out without killing the pool. So each
worker here has its own pipe, the parent waits on the pipes and the process sentinels with the
nearest deadline, and a dead or late worker is killed and replaced. Workers are long-lived (torch
and onnxruntime are imported once per worker, not per model) and their stdout/stderr go to a log
file, since converters print whole graphs when they fail.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

DEFAULT_RUNNER = "issuemine.difftest.execute:run_job"


def default_memory(jobs: int) -> int:
    """Bytes of data one worker may allocate: 80% of this machine's memory shared by the workers.
    Some generated models ask for tens of GB (a 65,536-wide broadcast feeding a matmul); without
    a limit the kernel's OOM killer picks a process, which may be the campaign itself."""
    return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / max(1, jobs))


def limit_memory(limit: int | None) -> None:
    """Cap this process's data segment (``RLIMIT_DATA``: heap and private anonymous mappings), so
    that a model too big for the machine fails its allocation, as an error the model's record
    keeps, instead of drawing the OOM killer. Address space is left alone: torch and TensorFlow
    reserve far more of it than they use."""
    import resource

    if limit:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def _load(runner: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module, _, name = runner.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Be killed when the process that started this one dies, even by ``kill -9`` (Linux's
    parent-death signal); a worker busy on a long model would otherwise outlive its campaign."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)


def _worker(conn: Connection, runner: str, log: str, memory: int | None = None, parent: int | None = None) -> None:
    if parent is not None:
        die_with_parent(parent)
    # Converters write graph dumps straight to file descriptors 1 and 2: send them to the log.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    limit_memory(memory)
    run = _load(runner)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(run(task))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    task: dict[str, Any] | None = None
    deadline: float = 0.0


# Run by another environment's interpreter (``difftest run --env``): a worker of this pool on the
# descriptor it was handed. Only the standard library and issuemine's own folder are on its path.
ENV_WORKER = """
import sys
from multiprocessing.connection import Connection
from issuemine.difftest.pool import _worker
memory = int(sys.argv[4]) or None
_worker(Connection(int(sys.argv[1])), sys.argv[2], sys.argv[3], memory, int(sys.argv[5]))
"""


class EnvProcess:
    """A worker started by another environment's interpreter, with the few ``Process`` methods
    the pool uses. ``multiprocessing``'s spawn cannot start it: the child would be handed this
    interpreter's ``sys.path``, whose compiled packages (numpy, torch) are not the other Python's."""

    def __init__(self, python: str, child: Connection, runner: str, log: str, memory: int | None) -> None:
        import subprocess

        fd = child.fileno()
        argv = [python, "-c", ENV_WORKER, str(fd), runner, log, str(memory or 0), str(os.getpid())]
        self.popen = subprocess.Popen(argv, pass_fds=(fd,), env=env_worker_environ(), stdin=subprocess.DEVNULL)
        self.sentinel = os.pidfd_open(self.popen.pid)

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()

    def join(self, timeout: float | None = None) -> None:
        import subprocess

        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        if self.popen.returncode is not None and self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def package_root() -> Path:
    """A folder holding only issuemine itself (a link to the package), for another environment's
    interpreter: the checkout or site-packages that holds issuemine also holds this Python's
    compiled packages."""
    import hashlib
    import tempfile

    package = Path(__file__).resolve().parents[1]
    key = hashlib.sha256(str(package).encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"issuemine-path-{os.getuid()}" / key
    link = root / "issuemine"
    if not link.exists():
        if link.is_symlink():  # left dangling (the temporary folder was cleaned): made again
            link.unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            link.symlink_to(package, target_is_directory=True)
    return root


def env_worker_environ() -> dict[str, str]:
    """What another environment's worker sees: issuemine's folder on its path, no user site, no
    GPU search, and the campaign's operator cache; nothing of this interpreter's packages."""
    from issuemine.repro.environments import interpreter_environ

    return interpreter_environ("ISSUEMINE_NNSMITH_CACHE", "OMP_NUM_THREADS") | {"PYTHONPATH": str(package_root())}


class WorkerPool:
    def __init__(
        self,
        jobs: int,
        timeout: float,
        log: Path,
        runner: str = DEFAULT_RUNNER,
        memory: int | None = None,
        python: str | None = None,
    ) -> None:
        """``python``: another environment's interpreter to run the workers in (default: this one)."""
        self.jobs, self.timeout, self.log, self.runner = max(1, jobs), timeout, log, runner
        self.memory, self.python = memory, python
        self.context = multiprocessing.get_context("spawn")  # no inherited torch/TF state
        self.replaced = 0

    def _start(self) -> _Worker:
        parent, child = self.context.Pipe()
        if self.python is not None:
            process: Any = EnvProcess(self.python, child, self.runner, str(self.log), self.memory)
            child.close()
            return _Worker(process, parent)
        process = self.context.Process(
            target=_worker, args=(child, self.runner, str(self.log), self.memory, os.getpid()), daemon=True
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def _stop(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.conn.close()

    def run(self, tasks: Iterable[dict[str, Any]], done: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
        """Run every task; ``done(task, result)`` is called in this process as each one finishes."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        pending = deque(tasks)
        workers = [self._start() for _ in range(min(self.jobs, len(pending)) or 1)]
        try:
            while pending or any(w.task is not None for w in workers):
                for worker in workers:
                    if worker.task is None and pending:
                        worker.task = pending.popleft()
                        worker.deadline = time.monotonic() + self.timeout
                        worker.conn.send(worker.task)
                busy = [w for w in workers if w.task is not None]
                nearest = min(w.deadline for w in busy) - time.monotonic()
                wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=max(0.0, nearest))
                for i, worker in enumerate(workers):
                    if worker.task is not None:
                        result = self._collect(worker)
                        if result is not None:
                            task, worker.task = worker.task, None
                            done(task, result)
                            if not worker.process.is_alive() or result.get("outcome") in ("worker-crash", "timeout"):
                                self._stop(worker)
                                workers[i] = self._start()
                                self.replaced += 1
        finally:
            for worker in workers:
                with contextlib.suppress(BrokenPipeError, OSError):
                    worker.conn.send(None)
                self._stop(worker)

    def _collect(self, worker: _Worker) -> dict[str, Any] | None:
        """The worker's result, a recorded crash or timeout, or None while it is still working."""
        assert worker.task is not None
        if worker.conn.poll():
            try:
                return dict(worker.conn.recv())
            except (EOFError, OSError):
                pass  # died while sending: a crash
        if not worker.process.is_alive():
            worker.process.join(1)
            code = worker.process.exitcode
            how = f"killed by signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else f"exit {code}"
            return {**_base(worker.task), "outcome": "worker-crash", "error": f"the worker process died: {how}"}
        if time.monotonic() >= worker.deadline:
            return {
                **_base(worker.task),
                "outcome": "timeout",
                "error": f"no result within {self.timeout:g} s: the worker was killed (a hang)",
            }
        return None


def _base(task: dict[str, Any]) -> dict[str, Any]:
    return {"seed": task.get("seed"), "nodes": task.get("nodes"), "durations": {}}
