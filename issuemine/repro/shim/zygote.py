"""The sandboxed run server: imports the frameworks once, then serves each snippet from a fork.

Started by the host inside the sandbox as ``python zygote.py ROOT [--preload mod,...]``. It reads
one JSON request per line on stdin and answers one JSON line on its stdout (which nothing else
may write to: the interpreter's own stdout is pointed at stderr). The zygote itself never reads a
request: per request it forks a server process, which reads it, serves it and exits, so that
nothing of one run (its source, output, events) stays in memory a later run's child inherits.
The server process:

1. empties ROOT (the sandbox's private temp directory), ``/dev/shm``, the System V IPC objects and
   the user's keyrings, so nothing of an earlier run survives;
2. writes the script to ROOT/runN/snippet.py (a fresh directory per run), listens for the shim's
   events on an abstract Unix socket of its own, and forks a child that starts a new session,
   closes every descriptor but its output pipe, joins a fresh session keyring, sets the resource
   limits, and runs the script as __main__;
3. drains the pipe (the last 256 KB kept, every byte counted against the output limit) and the
   events socket while it waits for the child up to the wall-clock limit, kills it on time-out or
   too much output, then kills every other process left in the sandbox's PID namespace;
4. for each conversion the shim handed over, runs ONNX Runtime and the comparison in a process
   forked from itself (``checker.py``): the snippet's process never decides them;
5. answers with the exit status, resource use, the last lines of output and the events.

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
import socket
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
HANDOVER_DIR = ".handover"  # where the shim hands conversions over to the checker
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
MAX_CONNECTIONS = 256
MAX_DEPTH = 24
MAX_INT = 2**53  # exact in a float: larger numbers are not something the shim writes


class _EventSink:
    """The shim's events: an abstract Unix socket the run server listens on, one connection per
    process of the snippet. A snippet can connect and add lines, never read or take back the
    shim's; what it adds beyond the limits (bytes, count, depth, huge numbers) is its violation."""

    def __init__(self, name: str) -> None:
        self.address = "@" + name
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind("\0" + name)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.connections: dict[int, tuple[socket.socket, bytearray]] = {}
        self.lines: list[bytes] = []
        self.received = 0
        self.flooded = False

    def fds(self) -> list[int]:
        # At capacity the listener is not watched: a pending connection would wake every select.
        accepting = len(self.connections) < MAX_CONNECTIONS
        return [*([self.listener.fileno()] if accepting else []), *self.connections]

    def handle(self, ready: list[int]) -> None:
        if self.listener.fileno() in ready:
            self._accept()
        for fd in [fd for fd in ready if fd in self.connections]:
            self._read(fd)

    def _accept(self) -> None:
        while len(self.connections) < MAX_CONNECTIONS:
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            connection.setblocking(False)
            self.connections[connection.fileno()] = (connection, bytearray())

    def _read(self, fd: int) -> None:
        connection, pending = self.connections[fd]
        while True:
            try:
                chunk = connection.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    self._keep(bytes(pending))
                connection.close()
                del self.connections[fd]
                return
            self.received += len(chunk)
            if self.received > MAX_EVENTS_BYTES:
                self.flooded = True  # keep draining, so that no writer blocks, but keep nothing
                pending.clear()
                continue
            pending += chunk
            *complete, rest = bytes(pending).split(b"\n")
            pending[:] = rest
            for line in complete:
                self._keep(line)

    def _keep(self, line: bytes) -> None:
        if len(self.lines) <= MAX_EVENTS:
            self.lines.append(line)

    def finish(self, seconds: float) -> tuple[list[Any], list[str]]:
        """Read what is left (every writer is gone by now), then parse."""
        self._accept()
        deadline = time.monotonic() + seconds
        while self.connections and time.monotonic() < deadline:
            ready, _, _ = select.select(list(self.connections), [], [], max(0.0, deadline - time.monotonic()))
            self.handle(ready)
        for connection, _ in self.connections.values():
            connection.close()
        self.connections.clear()
        self.listener.close()
        return _parse_events(self.lines, self.flooded)


def _parse_events(lines: list[bytes], flooded: bool) -> tuple[list[Any], list[str]]:
    problems: list[str] = []
    if flooded:
        problems.append(f"more than {MAX_EVENTS_BYTES} bytes of events (a flood)")
    events: list[Any] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        if len(events) >= MAX_EVENTS:
            problems.append(f"more than {MAX_EVENTS} events (a flood)")
            break
        try:
            event = json.loads(line.decode("utf-8", errors="replace"))
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


def _close_descriptors() -> None:
    for name in os.listdir("/proc/self/fd"):
        if name.isdigit() and int(name) > 2:
            with contextlib.suppress(OSError):
                os.close(int(name))


# keyctl(2): the numbers of the system call (no libkeyutils in the sandbox) and of its operations.
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "i686": 288, "armv7l": 311, "ppc64le": 311, "s390x": 280}
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR = 1, 7
KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -4, -5


def _keyctl(operation: int, argument: int) -> bool:
    number = SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(number, operation, ctypes.c_long(argument), 0, 0, 0) != -1
    except (OSError, AttributeError):
        return False


def _clear_keyrings() -> None:
    """Empty the keyrings of the sandbox's user that outlive a run (the user and user-session
    keyrings live as long as the uid, across warm runs and across cold sandboxes). Only in
    bwrap's sandbox, whose user is the sandbox's own (a uid of its own, or a user namespace)."""
    if os.environ.get("ISSUEMINE_SANDBOX_PRIVATE_SHM"):
        for keyring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
            _keyctl(KEYCTL_CLEAR, keyring)


def _remove_ipc() -> list[str]:
    """Remove the System V shared memory, message queues and semaphores a run made (the sandbox
    has an IPC namespace of its own: everything in it is a snippet's); what could not be removed."""
    left = []
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return []
    for kind, remove in (("shm", "shmctl"), ("msg", "msgctl"), ("sem", "semctl")):
        try:
            with open(f"/proc/sysvipc/{kind}") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            ident = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
            if ident is None:
                continue
            args = (ident, 0, IPC_RMID) if kind == "sem" else (ident, IPC_RMID, None)
            if getattr(libc, remove)(*args) == -1:
                left.append(f"System V {kind} {ident}")
    return left


IPC_RMID = 0


def _limit(kind: int, value: int | None) -> None:
    if value is not None:
        resource.setrlimit(kind, (value, value))


def _child(request: dict[str, Any], run_dir: str, script: str, output: tuple[int, int], events: str) -> None:
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
        _close_descriptors()  # the run server's socket, pipes and whatever else it holds: not the snippet's
        _keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)  # a fresh session keyring, shared with no other run
        limits = request.get("limits", {})
        _limit(resource.RLIMIT_CORE, 0)
        _limit(resource.RLIMIT_CPU, limits.get("cpu_seconds"))
        _limit(resource.RLIMIT_AS, limits.get("memory_bytes"))
        _limit(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
        _limit(resource.RLIMIT_NPROC, limits.get("processes"))
        os.environ.update(request.get("env", {}))
        os.environ.update(
            {
                "ISSUEMINE_EVENTS": events,
                "ISSUEMINE_HANDOVER": os.path.join(run_dir, HANDOVER_DIR),
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


def _wait(pid: int, timeout: float, output: _Output, sink: _EventSink) -> tuple[int | None, Any, bool]:
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
            ready, _, _ = select.select(watched + sink.fds(), [], [], min(left, 0.5) if handle is None else left)
            sink.handle(ready)
            output.drain()
            if output.exceeded:
                break
        if timed_out:  # the shim dumps every thread's stack on SIGUSR1: where the hang was
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR1)
                end = time.monotonic() + STACK_DUMP_SECONDS
                while time.monotonic() < end:
                    ready, _, _ = select.select([output.fd, *sink.fds()], [], [], max(0.0, end - time.monotonic()))
                    sink.handle(ready)
                    output.drain()
        _kill_group(pid)
        _, status, usage = os.wait4(pid, 0)
        return status, usage, timed_out
    finally:
        if handle is not None:
            os.close(handle)


def _clean(root: str) -> list[str]:
    keep = tuple(filter(None, os.environ.get("ISSUEMINE_SANDBOX_KEEP", "").split(os.pathsep)))
    left = _empty(root, keep)
    if os.environ.get("ISSUEMINE_SANDBOX_PRIVATE_SHM"):  # bwrap's own /dev/shm and IPC, never the host's
        left += _empty("/dev/shm") + _remove_ipc()
    _clear_keyrings()
    return left


CHECKED_KEYS = ("ort", "compare", "trials", "opset", "ir_version", "nodes", "ops", "op_counts", "attributes")
MAX_CHECKS = 16
CHECK_MEMORY_BYTES = 8 * 1024**3


def _handed_over(event: dict[str, Any], run_dir: str) -> str | None:
    """The folder an event says the shim handed over, if it is one of this run's."""
    folder = event.get("handover")
    if not isinstance(folder, str):
        return None
    base = os.path.join(run_dir, HANDOVER_DIR)
    real = os.path.realpath(folder)
    if os.path.dirname(real) != base or not os.path.isdir(real) or os.path.islink(folder):
        return None
    return real


def _check(folder: str, policies: list[dict[str, Any]], timeout: float, limits: dict[str, Any]) -> dict[str, Any]:
    """The ONNX Runtime side, in a process forked from this one (which never ran snippet code)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_end)
            os.setsid()
            os.chdir(folder)
            _limit(resource.RLIMIT_CORE, 0)
            _limit(resource.RLIMIT_CPU, limits.get("cpu_seconds"))
            _limit(resource.RLIMIT_AS, max(limits.get("memory_bytes") or 0, CHECK_MEMORY_BYTES))
            import checker

            def report(stage: str) -> None:
                os.write(write_end, (json.dumps({"stage": stage}) + "\n").encode())

            try:
                facts = checker.check(folder, policies, report)
            except Exception as exc:
                facts = {"check_error": checker.describe_exception(exc)}
            data = (json.dumps({"facts": facts}, default=repr) + "\n").encode()
            while data:
                data = data[os.write(write_end, data) :]
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    os.close(write_end)
    received = bytearray()
    deadline = time.monotonic() + timeout
    os.set_blocking(read_end, False)
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        select.select([read_end], [], [], left)
        try:
            chunk = os.read(read_end, 1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            break
        received += chunk
    os.close(read_end)
    _kill_group(pid)
    _, status = os.waitpid(pid, 0)
    lines = [json.loads(line) for line in bytes(received).decode(errors="replace").splitlines() if line.strip()]
    done = next((line["facts"] for line in lines if "facts" in line), None)
    if done is not None:
        return done
    stage = "run-fail" if any(line.get("stage") == "loaded" for line in lines) else "load-fail"
    if timed_out:
        why = f"ONNX Runtime gave no answer within {timeout:.0f} s"
    elif os.WIFSIGNALED(status):
        why = f"ONNX Runtime killed the checking process (signal {os.WTERMSIG(status)})"
    else:
        why = f"the checking process ended with status {os.WEXITSTATUS(status)}"
    return {"ort": {"status": stage, "error": {"type": "issuemine.CheckFailed", "message": why, "frames": []}}}


def _check_conversions(events: list[Any], run_dir: str, request: dict[str, Any]) -> None:
    """Replace whatever the events say of ONNX Runtime with what the checker finds."""
    policies = request.get("policies") or []
    deadline = time.monotonic() + float(request["timeout"])
    checked = 0
    for event in events:
        if event.get("event") != "convert" or event.get("status") != "ok":
            continue
        for key in CHECKED_KEYS:
            event.pop(key, None)
        folder = _handed_over(event, run_dir)
        if folder is None:
            event.setdefault("compare_skipped", "no model was handed over to the checker")
            continue
        left = deadline - time.monotonic()
        if checked >= MAX_CHECKS or left <= 0:
            event["compare_skipped"] = "not checked: too many conversions in one run"
            continue
        checked += 1
        event.update(_check(folder, policies, left, request.get("limits", {})))


def run(request: dict[str, Any], root: str, count: int) -> dict[str, Any]:
    left = _clean(root)
    if left:
        # What an earlier run left cannot be removed: never run a snippet among it.
        return {"error": f"cannot clean the sandbox before the run: {', '.join(left[:5])}"}
    # A directory no earlier snippet could have written: a fresh name per run.
    run_dir = os.path.join(root, f"run{count}")
    for sub in ("", "tmp", "home"):
        os.makedirs(os.path.join(run_dir, sub), exist_ok=True)
    script = os.path.join(run_dir, "snippet.py")
    with open(script, "w") as handle:
        handle.write(request["script"])
    sink = _EventSink(f"issuemine-events-{os.getpid()}-{count}-{os.urandom(8).hex()}")
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request, run_dir, script, (read_end, write_end), sink.address)
    os.close(write_end)
    output = _Output(read_end, request.get("limits", {}).get("file_bytes"))
    # The host always sets the timeout (repro.sandbox.Limits): one default, written once.
    status, usage, timed_out = _wait(pid, float(request["timeout"]), output, sink)
    duration = time.monotonic() - started
    leftovers = _kill_leftovers(_ancestors())  # they may hold the pipe open: only then can it close
    output.finish(OUTPUT_GRACE_SECONDS)
    events, problems = sink.finish(OUTPUT_GRACE_SECONDS)
    _check_conversions(events, run_dir, request)
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


def _read_request() -> bytes | None:
    """One request line from stdin, read unbuffered (the host sends the next only after the answer)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _serve(root: str, channel: Any, count: int) -> None:
    """One request, in a process forked for it: the request, the snippet's output and events live
    and die here, so that the next run's child (forked from a later server process) inherits
    nothing of them from memory."""
    code = 0
    try:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # the snippet's orphans come back here, to be killed
        line = _read_request()
        if line is None:
            code = EXIT_NO_MORE
        elif line.strip():
            try:
                answer = run(json.loads(line), root, count)
            except Exception as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-4000:]}
            channel.write(json.dumps(answer, default=repr) + "\n")
            channel.flush()
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        os._exit(code)


EXIT_NO_MORE = 3


def _wait_server(pid: int) -> tuple[int, bool]:
    """Wait for a run's server process; one its snippet stopped (SIGSTOP) is killed, not waited for.
    (The wait status, and whether it had been stopped.)"""
    stopped = False
    while True:
        _, status = os.waitpid(pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            return status, stopped
        stopped = True
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


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
    count = 0
    while True:
        select.select([0], [], [])  # a request (or the end of input) is waiting: it is read in the fork
        count += 1
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _serve(root, channel, count)
        status, stopped = _wait_server(pid)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_NO_MORE:
            return
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            # The server process of that run was killed (by its snippet: same user) before it answered.
            how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {os.WEXITSTATUS(status)}"
            if stopped:
                how = "stopped by the snippet (SIGSTOP), then killed"
            _kill_leftovers(_ancestors())
            lost = {"server_lost": f"the run's server process ended ({how})", "stopped": stopped}
            channel.write(json.dumps(lost) + "\n")
        _reap()


if __name__ == "__main__":
    main()
