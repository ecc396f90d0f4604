"""The sandboxed run server: imports the frameworks once, then forks a fresh child per snippet.

Started by the host inside the sandbox as ``python zygote.py ROOT [--preload mod,...]``. It reads
one JSON request per line on stdin and answers one JSON line on its stdout (which nothing else
may write to: the interpreter's own stdout is pointed at stderr). Per request it:

1. empties ROOT (the sandbox's private temp directory) so nothing of an earlier run survives;
2. writes the script to ROOT/runN/snippet.py (a fresh directory per run) and forks a child that
   starts a new session, points its output at a pipe, sets the resource limits, and runs the script as __main__;
3. drains the pipe (the last 256 KB kept, every byte counted against the output limit) while it
   waits for the child up to the wall-clock limit, kills it on time-out or too much output, then
   kills every other process left in the sandbox's PID namespace (snippets that leave a child behind);
4. answers with the exit status, resource use, the last lines of output and the shim's events.

Cold mode is the same program with nothing preloaded, serving a single request. Standard
library only: it runs in whatever environment the user picked.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import stat
import sys
import time
import traceback
from typing import Any

TAIL_BYTES = 256 * 1024
TAIL_LINES = 200
MAX_EVENTS_BYTES = 8 * 1024 * 1024
STACK_DUMP_SECONDS = 0.5
OUTPUT_GRACE_SECONDS = 2.0
PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36
_channel: Any = None


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(option, value, 0, 0, 0)


def _versions() -> dict[str, Any]:
    from importlib import metadata

    found: dict[str, Any] = {"python": sys.version.split()[0]}
    for name in ("torch", "onnx", "onnxruntime", "onnxscript", "tensorflow", "tensorflow-cpu", "tf2onnx", "numpy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "tensorflow-cpu" in found:
        found.setdefault("tensorflow", found.pop("tensorflow-cpu"))
    return found


def _empty(directory: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Delete everything under ``directory`` but the read-only environment mounts in ``keep``; what
    could not be deleted. Entries a snippet made read-only (``chmod 0555``) are made writable and
    deleted again: a cleanup that fails must not go unnoticed, nor let the next snippet run among
    what the last one left."""
    left = []
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if path in keep:
            continue
        if any(k.startswith(path + "/") for k in keep):
            left += _empty(path, keep)
            continue
        _remove(path)
        if os.path.lexists(path):
            left.append(path)
    return left


def _remove(path: str) -> None:
    def writable(function: Any, failed: str, _info: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed) or failed, 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
        with contextlib.suppress(OSError):
            function(failed)

    if os.path.isdir(path) and not os.path.islink(path):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=writable)
        if os.path.lexists(path):  # a second pass, now that the directories are writable
            shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _kill_leftovers(keep: set[int]) -> int:
    """Kill every process of the sandbox but the zygote and its ancestors; how many there were."""
    found = 0
    for _ in range(20):  # a fork bomb may still be forking: repeat until nothing is left
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]
        alive = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    state = handle.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        found = max(found, len(alive))
        _reap()
        if not alive:
            break
        time.sleep(0.05)
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


MAX_EVENTS = 5_000
MAX_DEPTH = 24
MAX_INT = 2**53  # exact in a float: larger numbers are not something the shim writes


def _events(path: str) -> tuple[list[Any], list[str]]:
    """The shim's events, and what was wrong with them. The events file is the snippet's to write
    too: lines that the shim never writes (malformed, nested too deep, huge numbers, a flood) are
    the snippet's doing, reported as a violation rather than failing the server."""
    problems: list[str] = []
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a FIFO would block the server, a link lead elsewhere
            return [], [f"the events file was replaced by something else than a file ({path})"]
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_EVENTS_BYTES + 1)
    except OSError:
        return [], []
    if len(data) > MAX_EVENTS_BYTES:
        problems.append(f"more than {MAX_EVENTS_BYTES} bytes of events (a flood)")
        data = data[:MAX_EVENTS_BYTES]
    events: list[Any] = []
    bad = 0
    for line in data.decode("utf-8", errors="replace").splitlines():
        if len(events) >= MAX_EVENTS:
            problems.append(f"more than {MAX_EVENTS} events (a flood)")
            break
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            bad += 1
            continue
        if not isinstance(event, dict) or not _sane(event, 0):
            bad += 1
            continue
        events.append(event)
    if bad:
        problems.append(f"{bad} malformed event line(s): too deep, huge numbers, or not JSON objects")
    return events, problems


def _sane(value: Any, depth: int) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -MAX_INT <= value <= MAX_INT
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _sane(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_sane(v, depth + 1) for v in value)
    return False


def _limit(kind: int, value: int | None) -> None:
    if value is not None:
        resource.setrlimit(kind, (value, value))


def _child(request: dict[str, Any], run_dir: str, script: str, output: tuple[int, int]) -> None:
    """In the forked child: isolate, limit, and run the snippet. Never returns."""
    code = 70
    try:
        _channel.close()  # the snippet must not be able to answer for us
        _prctl(PR_SET_DUMPABLE, 1)  # the zygote is not dumpable; the snippet may read its own /proc
        os.setsid()
        os.chdir(run_dir)
        # Output goes to a pipe the zygote drains: reopening /dev/stdout cannot truncate it, and the
        # zygote counts every byte against the output limit.
        read_end, write_end = output
        os.close(read_end)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        os.close(write_end)
        os.close(null)
        limits = request.get("limits", {})
        _limit(resource.RLIMIT_CORE, 0)
        _limit(resource.RLIMIT_CPU, limits.get("cpu_seconds"))
        _limit(resource.RLIMIT_AS, limits.get("memory_bytes"))
        _limit(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
        _limit(resource.RLIMIT_NPROC, limits.get("processes"))
        os.environ.update(request.get("env", {}))
        os.environ.update(
            {
                "ISSUEMINE_EVENTS": os.path.join(run_dir, ".events.jsonl"),
                # Writable: the whole private root (frameworks imported by the zygote cached its tempdir).
                "ISSUEMINE_RUN_DIR": os.path.dirname(run_dir),
                "TMPDIR": os.path.join(run_dir, "tmp"),
                "HOME": os.path.join(run_dir, "home"),
            }
        )
        sys.argv = [script]
        sys.path[0:0] = [run_dir]
        import runpy

        import issuemine_shim

        issuemine_shim.emit({"event": "start"})
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            issuemine_shim.emit({"event": "exit", "status": "exit", "code": code})
        except BaseException as exc:
            issuemine_shim.emit(
                {"event": "exit", "status": "exception", "error": issuemine_shim.describe_exception(exc)}
            )
            traceback.print_exc()
            code = 1
        else:
            issuemine_shim.emit({"event": "exit", "status": "ok", "code": 0})
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code)


class _Output:
    """The snippet's output: the last TAIL_BYTES kept, every byte counted against the limit."""

    def __init__(self, fd: int, limit: int | None) -> None:
        self.fd, self.limit = fd, limit
        self.kept = bytearray()
        self.total = 0
        self.closed = False
        os.set_blocking(fd, False)

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.total > self.limit

    def drain(self) -> None:
        while not self.closed and not self.exceeded:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                self.closed = True
                return
            self.total += len(chunk)
            self.kept += chunk
            if len(self.kept) > 2 * TAIL_BYTES:
                del self.kept[: len(self.kept) - TAIL_BYTES]

    def finish(self, seconds: float) -> None:
        """Read what is left once every writer is gone (or give up after ``seconds``)."""
        deadline = time.monotonic() + seconds
        while not self.closed and not self.exceeded and time.monotonic() < deadline:
            select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            self.drain()
        os.close(self.fd)

    def tail(self) -> str:
        lines = bytes(self.kept[-TAIL_BYTES:]).decode("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-TAIL_LINES:])


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _wait(pid: int, timeout: float, output: _Output) -> tuple[int | None, Any, bool]:
    """Wait for the child up to ``timeout`` seconds, draining its output: (wait status, rusage, timed out)."""
    deadline = time.monotonic() + timeout
    try:
        handle: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        handle = None
    timed_out = False
    try:
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return status, usage, False
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            watched = [fd for fd in (handle, None if output.closed else output.fd) if fd is not None]
            if watched:
                select.select(watched, [], [], min(left, 0.5) if handle is None else left)
            else:
                time.sleep(min(0.01, left))
            output.drain()
            if output.exceeded:
                break
        if timed_out:  # the shim dumps every thread's stack on SIGUSR1: where the hang was
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR1)
                end = time.monotonic() + STACK_DUMP_SECONDS
                while time.monotonic() < end:
                    select.select([output.fd], [], [], max(0.0, end - time.monotonic()))
                    output.drain()
        _kill_group(pid)
        _, status, usage = os.wait4(pid, 0)
        return status, usage, timed_out
    finally:
        if handle is not None:
            os.close(handle)


_runs = {"count": 0}


def _clean(root: str) -> list[str]:
    keep = tuple(filter(None, os.environ.get("ISSUEMINE_SANDBOX_KEEP", "").split(os.pathsep)))
    left = _empty(root, keep)
    if os.environ.get("ISSUEMINE_SANDBOX_PRIVATE_SHM"):  # bwrap's own /dev/shm, never the host's
        left += _empty("/dev/shm")
    return left


def run(request: dict[str, Any], root: str) -> dict[str, Any]:
    left = _clean(root)
    if left:
        # What an earlier run left cannot be removed: never run a snippet among it.
        return {"error": f"cannot clean the sandbox before the run: {', '.join(left[:5])}"}
    # A directory no earlier snippet could have written: a fresh name per run.
    _runs["count"] += 1
    run_dir = os.path.join(root, f"run{_runs['count']}")
    for sub in ("", "tmp", "home"):
        os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
    script = os.path.join(run_dir, "snippet.py")
    with open(script, "w") as handle:
        handle.write(request["script"])
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request, run_dir, script, (read_end, write_end))
    os.close(write_end)
    output = _Output(read_end, request.get("limits", {}).get("file_bytes"))
    # The host always sets the timeout (repro.sandbox.Limits): one default, written once.
    status, usage, timed_out = _wait(pid, float(request["timeout"]), output)
    duration = time.monotonic() - started
    leftovers = _kill_leftovers(_ancestors())  # they may hold the pipe open: only then can it close
    output.finish(OUTPUT_GRACE_SECONDS)
    events, problems = _events(os.path.join(run_dir, ".events.jsonl"))
    return {
        "exit_code": os.WEXITSTATUS(status) if status is not None and os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None,
        "timed_out": timed_out,
        "duration": duration,
        "peak_rss_kb": usage.ru_maxrss if usage is not None else None,
        "cpu_seconds": (usage.ru_utime + usage.ru_stime) if usage is not None else None,
        "leftover_processes": leftovers,
        "output_bytes": output.total,
        "output_exceeded": output.exceeded,
        "tail": output.tail(),
        "events": events,
        "event_problems": problems,
        "cleanup_failed": _clean(root),  # this run's leftovers: its own doing, reported with it
    }


def main() -> None:
    root = sys.argv[1]
    preload = sys.argv[3].split(",") if len(sys.argv) > 3 and sys.argv[2] == "--preload" else []
    global _channel
    _channel = channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed to stdout (import chatter) goes to stderr
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans come back to us, to be killed after the run
    # Not dumpable: a snippet running as the same user cannot open /proc/<zygote>/fd or ptrace us.
    _prctl(PR_SET_DUMPABLE, 0)
    loaded, failed = [], {}
    for name in filter(None, preload):
        try:
            __import__(name)
            loaded.append(name)
        except BaseException as exc:  # a broken optional framework must not stop the server
            failed[name] = f"{type(exc).__name__}: {exc}"[:500]
    channel.write(json.dumps({"ready": True, "versions": _versions(), "preloaded": loaded, "failed": failed}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = run(json.loads(line), root)
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-4000:]}
        channel.write(json.dumps(answer, default=repr) + "\n")


if __name__ == "__main__":
    main()
