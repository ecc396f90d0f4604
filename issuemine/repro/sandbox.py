"""Run untrusted snippets: a bubblewrap sandbox around a zygote that forks one child per snippet.

The sandbox (bwrap) has no network (its own empty network namespace), its own PID, IPC and UTS
namespaces, a read-only view of only what the interpreter needs (``/usr``, the environment's
prefix and site-packages, the shim), a private size-limited ``/tmp``, no home directory, and an
environment rebuilt from a short allowlist (no token, no cloud credentials). When issuemine runs
as root the sandboxed processes drop to an unprivileged uid of their own (64000 + slot), because
the kernel does not enforce the process limit on root. Each child gets limits on CPU time,
address space, file size and processes; the zygote enforces the wall-clock limit and kills
whatever the child left behind.

Where bwrap cannot run, ``unshare`` gives network/PID isolation and the same limits, but the host
filesystem stays visible (read-write for the run's user): the run record says so, and
``require_sandbox`` refuses it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import select
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import IO, Any

from issuemine.domain.converters import knowledge
from issuemine.errors import IssuemineError
from issuemine.repro import cgroups

SHIM_DIR = Path(__file__).parent / "shim"
SANDBOX_SHIM = "/opt/issuemine/shim"
SANDBOX_UID_BASE = 64000
STARTUP_SECONDS = 600.0
GRACE_SECONDS = 60.0
DEFAULT_PRELOAD = ("numpy", "torch", "onnx", "onnxruntime")
KINDS = ("auto", "bwrap", "unshare")


class SandboxError(IssuemineError):
    """The sandbox itself failed (not the snippet)."""


@dataclass(frozen=True)
class Limits:
    timeout: float = 120.0
    memory_mb: int = 8192
    processes: int = 256
    file_size_mb: int = 512
    tmp_size_mb: int = 1024

    def for_child(self, extra_processes: int = 0) -> dict[str, int]:
        return {
            # CPU time may run ahead of the wall clock with threads; the wall clock decides a hang.
            "cpu_seconds": math.ceil(self.timeout * 2) + 5,
            "memory_bytes": self.memory_mb * 1024 * 1024,
            "file_bytes": self.file_size_mb * 1024 * 1024,
            "processes": self.processes + extra_processes,
        }


@dataclass(frozen=True)
class Layout:
    """Where an environment's interpreter lives: what the sandbox must make visible."""

    executable: str
    prefix: str
    base_prefix: str
    site_dirs: tuple[str, ...]

    @property
    def roots(self) -> list[str]:
        roots: list[str] = []
        for path in sorted({self.prefix, self.base_prefix, *self.site_dirs}, key=len):
            if not any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots):
                roots.append(path)
        return roots


@cache
def layout_of(python: str) -> Layout:
    """Ask an interpreter (one we trust: the user's environment, not a snippet) where it lives."""
    code = (
        "import json, site, sys; print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix,"
        " 'base_prefix': sys.base_prefix, 'path': sys.path}))"
    )
    try:
        done = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxError(f"cannot start the environment's interpreter {python}: {exc}") from exc
    info = json.loads(done.stdout)
    site_dirs = tuple(p for p in info["path"] if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p))
    # Keep a venv's own path (its pyvenv.cfg is found next to it), not the resolved base interpreter.
    executable = python if os.path.isabs(python) else info["executable"]
    return Layout(executable, os.path.realpath(info["prefix"]), os.path.realpath(info["base_prefix"]), site_dirs)


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@cache
def bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    return bwrap is not None and _works(
        [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev", "--proc", "/proc", "true"]
    )


@cache
def unshare_works() -> bool:
    unshare = shutil.which("unshare")
    return unshare is not None and _works([unshare, *_unshare_flags(), "true"])


def _unshare_flags() -> list[str]:
    flags = ["--net", "--pid", "--fork", "--mount-proc", "--ipc", "--uts", "--kill-child"]
    return flags if os.geteuid() == 0 else ["--user", "--map-root-user", *flags]


def choose(kind: str = "auto", require_sandbox: bool = False) -> str:
    """The isolation to use: bwrap when it works, else unshare (refused with ``require_sandbox``)."""
    if kind not in KINDS:
        raise IssuemineError(f"unknown sandbox {kind!r}; choose one of {', '.join(KINDS)}")
    if kind in ("auto", "bwrap") and bwrap_works():
        return "bwrap"
    if kind == "bwrap" or require_sandbox:
        raise IssuemineError(
            "bubblewrap (bwrap) cannot run here, and --require-sandbox refuses the weaker unshare fallback; "
            "install the Debian package bubblewrap (scripts/setup.sh --dev does) or allow user namespaces"
            if require_sandbox
            else "bubblewrap (bwrap) cannot run here; install the Debian package bubblewrap"
        )
    if unshare_works():
        return "unshare"
    raise IssuemineError("neither bwrap nor unshare can isolate a run here; refusing to run untrusted code")


def describe(kind: str) -> str:
    if kind == "bwrap":
        return "bwrap: no network, read-only system, private /tmp, no home, stripped environment, limits" + (
            ", system-call filter" if seccomp_filter() is not None else ""
        )
    return "unshare (weaker): no network, own PID namespace, limits, stripped environment; host files visible"


def sandbox_env(layout: Layout, root: str, shim: str) -> dict[str, str]:
    """The only variables a snippet sees."""
    return {
        "PATH": f"{Path(layout.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "HOME": f"{root}/home",
        "TMPDIR": root,
        "PYTHONPATH": shim,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "MPLBACKEND": "Agg",
        # What the shim wraps: the entry points of the converter catalog (it imports nothing of issuemine).
        "ISSUEMINE_ENTRIES": json.dumps([e.as_dict() for e in knowledge().entries]),
        "ISSUEMINE_COMMAND_LINES": json.dumps([c.as_dict() for c in knowledge().command_lines]),
        # What the system-call filter refuses, for the shim to record attempts by name (one list).
        "ISSUEMINE_REFUSED": json.dumps({"families": list(ALLOWED_FAMILIES), "calls": list(REFUSED_CALLS)}),
    }


# Socket families a conversion snippet may use: files and pipes between its own processes (Unix),
# loopback inside its own empty network namespace (IPv4/6), and netlink (interface lookups). Every
# other family is refused: AF_VSOCK, above all, is not network-namespaced and reaches the host side
# of a virtual machine; AF_PACKET, Bluetooth, CAN, crypto sockets and the rest are never needed.
ALLOWED_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
MAX_FAMILY = 46
SOCK_RAW, SOCK_PACKET, SOCK_TYPE_MASK = 3, 10, 0xF
# Calls that reach past the sandbox (namespaces, mounts, another process's memory, the kernel's
# keyrings, performance counters, BPF, modules): refused with EPERM.
REFUSED_CALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "add_key",
    "keyctl",
    "request_key",
    "perf_event_open",
    "bpf",
    "userfaultfd",
    "kexec_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
)
CLONE_NAMESPACES = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET


@cache
def seccomp_filter() -> bytes | None:
    """The sandbox's system-call filter as BPF for bubblewrap (None where libseccomp is missing).

    Everything is allowed but the calls above; a refused call fails with EPERM (the shim records the
    attempt). clone3 fails with ENOSYS, so that the C library falls back to clone, whose flags a
    filter can read (clone3 passes them in memory): new namespaces are refused there too."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError):
        return None
    refuse = seccomp.ERRNO(errno.EPERM)
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        for family in range(MAX_FAMILY):
            if family not in ALLOWED_FAMILIES:
                rules.add_rule(refuse, "socket", seccomp.Arg(0, seccomp.EQ, family))
        for kind in (SOCK_RAW, SOCK_PACKET):
            rules.add_rule(refuse, "socket", seccomp.Arg(1, seccomp.MASKED_EQ, SOCK_TYPE_MASK, kind))
        for name in REFUSED_CALLS:
            with contextlib.suppress(Exception):  # a call this architecture does not have
                rules.add_rule(refuse, name)
        for bit in range(32):  # one rule per namespace flag: a rule matches all of its flags, not any
            flag = 1 << bit
            if CLONE_NAMESPACES & flag:
                rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        with contextlib.suppress(Exception):
            rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        with tempfile.TemporaryFile() as handle:
            rules.export_bpf(handle)
            handle.seek(0)
            return handle.read()
    except Exception:  # libseccomp present but refusing: the sandbox runs without a filter, and says so
        return None


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def bwrap_command(
    layout: Layout, limits: Limits, uid: int | None, preload: list[str], seccomp_fd: int | None = None
) -> list[str]:
    command = [
        shutil.which("bwrap") or "bwrap",
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            command += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            command += ["--ro-bind", top, top]
    command += ["--perms", "0755", "--dir", "/etc"]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "nsswitch.conf", "fonts"):
        if os.path.exists(f"/etc/{name}"):
            command += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    # The private /tmp first: an environment may itself live under /tmp, and its bind must stay visible.
    command += ["--perms", "1777", "--size", str(limits.tmp_size_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    made = {"/usr", "/tmp"}
    for root in layout.roots:
        if root == "/usr" or root.startswith("/usr/"):
            continue
        for parent in _ancestors(root + "/x"):
            if parent not in made and parent != root:
                command += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        command += ["--ro-bind", root, root]
        made.add(root)
    command += ["--perms", "0755", "--dir", "/opt", "--perms", "0755", "--dir", "/opt/issuemine"]
    command += ["--ro-bind", str(SHIM_DIR), SANDBOX_SHIM, "--dev", "/dev", "--proc", "/proc"]
    # Shared memory for multiprocessing and DataLoader workers: writable, size-limited like /tmp.
    command += ["--perms", "1777", "--size", str(limits.tmp_size_mb * 1024 * 1024), "--tmpfs", "/dev/shm"]
    keep = os.pathsep.join(r for r in layout.roots if r.startswith("/tmp/"))
    private = {"ISSUEMINE_SANDBOX_KEEP": keep, "ISSUEMINE_SANDBOX_PRIVATE_SHM": "1"}
    for key, value in {**sandbox_env(layout, "/tmp", SANDBOX_SHIM), **private}.items():
        command += ["--setenv", key, value]
    if uid is not None:
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--", *_drop(uid)]
    else:
        command += ["--"]
    return [*command, layout.executable, f"{SANDBOX_SHIM}/zygote.py", "/tmp", "--preload", ",".join(preload)]


def _drop(uid: int) -> list[str]:
    return ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs"]


def _own_threads() -> int:
    """Processes and threads of this user now: the process limit counts them too (non-root)."""
    count, uid = 0, os.getuid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return count


@dataclass
class Zygote:
    """One sandbox holding a warm interpreter (or, with ``warm=False``, a fresh one per run)."""

    layout: Layout
    kind: str
    slot: int = 0
    limits: Limits = field(default_factory=Limits)
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    warm: bool = True
    info: dict[str, Any] = field(default_factory=dict)
    _process: subprocess.Popen[str] | None = None
    _root: str | None = None
    _log: IO[str] | None = None
    _group: cgroups.Group | None = None
    _starts: int = 0

    def start(self) -> dict[str, Any]:
        self.close()
        self._starts += 1
        # Memory and processes for the sandbox as a whole, where the machine allows a control group.
        self._group = cgroups.create(f"issuemine-{os.getpid()}-{self.slot}-{self._starts}")
        uid = SANDBOX_UID_BASE + self.slot if os.geteuid() == 0 else None
        preload = list(self.preload) if self.warm else []
        filter_fd = self._filter_fd() if self.kind == "bwrap" else None
        if self.kind == "bwrap":
            command, env, root = bwrap_command(self.layout, self.limits, uid, preload, filter_fd), None, "/tmp"
        else:
            self._root = root = tempfile.mkdtemp(prefix="issuemine-sandbox-")
            os.chmod(root, 0o700)
            # As root the interpreter under /root would be unreachable to another uid: stay root (weaker, recorded).
            command = [shutil.which("unshare") or "unshare", *_unshare_flags(), self.layout.executable]
            command += [str(SHIM_DIR / "zygote.py"), root, "--preload", ",".join(preload)]
            env = sandbox_env(self.layout, root, str(SHIM_DIR))
        if self._group is not None:
            command = [*self._group.enter_command(), *command]
        # The server's own stderr, for the error message if it dies; lives as long as the server.
        self._log = tempfile.TemporaryFile("w+", prefix="issuemine-zygote-")  # noqa: SIM115
        # Its own session: a Ctrl-C at the terminal stops issuemine between runs, and must not kill the
        # sandbox mid-run (that would read as a sandbox failure). bwrap --die-with-parent still ties it to us.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env or {},
            text=True,
            start_new_session=True,
            pass_fds=() if filter_fd is None else (filter_fd,),
        )
        if filter_fd is not None:
            os.close(filter_fd)  # bwrap has its own copy
        ready = self._read(STARTUP_SECONDS)
        if not ready or not ready.get("ready"):
            log = self._log_tail()
            self.close()
            raise SandboxError(f"the sandbox did not start ({self.kind}): {log or 'no output'}")
        whole = self._limit_group()
        self.info = {
            "sandbox": self.kind,
            "limits": whole,
            "isolation": describe(self.kind),
            "uid": uid,
            "mode": "warm" if self.warm else "cold",
            "syscall_filter": filter_fd is not None,
            "versions": ready.get("versions", {}),
            "preloaded": ready.get("preloaded", []),
            "preload_failed": ready.get("failed", {}),
        }
        return self.info

    def _limit_group(self) -> str:
        """The snippet's allowance on top of what the started server holds; which limits apply."""
        if self._group is None:
            return "rlimits (per process)"
        try:
            self._group.limit(self.limits.memory_mb * 1024 * 1024, self.limits.processes)
        except (OSError, ValueError):
            return "rlimits (per process)"
        return f"{self._group.kind} and rlimits"

    @staticmethod
    def _filter_fd() -> int | None:
        """A descriptor to read the system-call filter from (bwrap reads it when it starts)."""
        program = seccomp_filter()
        if program is None:
            return None
        read_end, write_end = os.pipe()
        os.write(write_end, program)  # a few KB: well within a pipe's buffer
        os.close(write_end)
        return read_end

    def run(
        self,
        script: str,
        policies: list[dict[str, Any]],
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Run one script; the zygote's answer plus the sandbox description."""
        if self._process is None or self._process.poll() is not None:
            self.start()
        timeout = self.limits.timeout if timeout is None else timeout
        uid_root = os.geteuid() == 0 and self.kind == "bwrap"
        limits = replace(self.limits, timeout=timeout)
        request = {
            "script": script,
            "timeout": timeout,
            "limits": limits.for_child(0 if uid_root else _own_threads()),
            "env": dict(env or {}),
            "policies": policies,  # for the run server's checker, never shown to the snippet
        }
        assert self._process is not None and self._process.stdin is not None
        kills = self._group.oom_kills() if self._group is not None else 0
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            answer = None
        else:
            answer = self._read(timeout + GRACE_SECONDS)
        oom = {"oom_kills": self._group.oom_kills() - kills} if self._group is not None else {}
        if answer is None:
            # The server died or stopped answering: a snippet killed it, or the machine ran out of memory.
            log = self._log_tail()
            self.close()
            return {"sandbox_failure": f"the sandbox server stopped during the run: {log[-1000:]}", **oom, **self.info}
        stopped = self._stopped_servers()
        if stopped or not self.warm:
            self.close()  # a stopped run server would never serve the next snippet: a fresh sandbox will
        if answer.get("server_lost") and answer.get("stopped"):
            return {"server_stopped": f"{answer['server_lost']} during the run", **oom, **self.info}
        if answer.get("server_lost"):  # the snippet killed the process serving it (same user)
            return {"sandbox_failure": f"{answer['server_lost']} during the run", **oom, **self.info}
        if stopped:
            answer = {**answer, "server_stopped": f"the snippet stopped the run server (pid {stopped[0]}, SIGSTOP)"}
        if "error" in answer:
            raise SandboxError(f"the sandbox server failed: {answer['error']}")
        return {**answer, **oom, **self.info}

    def _stopped_servers(self) -> list[int]:
        """Host pids of this sandbox's run server processes (``zygote.py``) that are stopped: a
        snippet running as the same user can SIGSTOP the server that forked it."""
        if self._process is None:
            return []
        parents: dict[int, int] = {}
        states: dict[int, str] = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents[int(entry)], states[int(entry)] = int(fields[1]), fields[0]
        found = []
        for pid, state in states.items():
            if state not in ("T", "t"):
                continue
            ancestor = parents.get(pid)
            while ancestor and ancestor != self._process.pid:
                ancestor = parents.get(ancestor)
            if ancestor != self._process.pid:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if b"zygote.py" in handle.read():
                        found.append(pid)
            except OSError:
                continue
        return found

    def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self._process.stdout.readline()
        if not line:
            return None
        try:
            answer = json.loads(line)
        except (ValueError, RecursionError):
            return None
        return answer if isinstance(answer, dict) else None

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-4000:].strip()

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                if stream is not None:
                    stream.close()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        if self._group is not None:
            self._group.remove()
            self._group = None

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
