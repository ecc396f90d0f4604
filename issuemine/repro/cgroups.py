"""Memory and process limits for a sandbox as a whole: a control group per sandbox where the machine
lets issuemine make one (cgroup v2's ``memory.max``/``pids.max``, or v1's memory and pids
hierarchies), else nothing (the per-process rlimits the run server sets still apply).

Resource limits are per process: ``RLIMIT_AS`` of 2 GB lets three forked children hold 6 GB
together. A control group counts every process of the sandbox together. It holds the run server
too, so its memory limit is set once the server has imported the frameworks: what the server
holds then, plus the snippet's allowance. The kernel's OOM killer acts inside the group only, and
the count of its kills (``oom_kill``) tells a run that it was the snippet's doing.

Making a group needs write access to the cgroup file system (root, or a delegated subtree); where
that fails, :func:`create` returns None and the run record says ``rlimits``.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_paths(root: Path = ROOT) -> dict[str, Path]:
    """Where this process's groups are: per controller ("memory", "pids"), or "unified" for v2."""
    found: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (root / "cgroup.controllers").exists():
            found["unified"] = root / path.lstrip("/")
        for name in controllers.split(","):
            if name in ("memory", "pids") and (root / name).is_dir():
                found[name] = root / name / path.lstrip("/")
    return found


@dataclass
class Group:
    """One sandbox's control group: ``version`` 2 (one directory) or 1 (memory and pids)."""

    version: int
    dirs: dict[str, Path]  # "unified", or "memory" and "pids"

    @property
    def kind(self) -> str:
        return f"cgroup v{self.version} (memory, pids)"

    def _file(self, controller: str, v2: str, v1: str) -> Path:
        return self.dirs["unified"] / v2 if self.version == 2 else self.dirs[controller] / v1

    def enter_command(self) -> list[str]:
        """A prefix that moves the command into the group before it starts (no process of the
        sandbox exists before it is in)."""
        procs = sorted({str(d / "cgroup.procs") for d in self.dirs.values()})
        writes = " && ".join(f"echo $$ > {shlex.quote(p)}" for p in procs)
        return ["/bin/sh", "-c", f'{writes} && exec "$@"', "issuemine-cgroup"]

    def memory_now(self) -> int:
        return int(self._file("memory", "memory.current", "memory.usage_in_bytes").read_text().split()[0])

    def pids_now(self) -> int:
        return int(self._file("pids", "pids.current", "pids.current").read_text().split()[0])

    def limit(self, memory_bytes: int, processes: int) -> None:
        """Allow ``memory_bytes`` and ``processes`` beyond what the group holds now."""
        self._file("memory", "memory.max", "memory.limit_in_bytes").write_text(str(self.memory_now() + memory_bytes))
        if self.version == 2:
            with contextlib.suppress(OSError):
                self._file("memory", "memory.swap.max", "").write_text("0")
        self._file("pids", "pids.max", "pids.max").write_text(str(self.pids_now() + processes))

    def oom_kills(self) -> int:
        path = self._file("memory", "memory.events", "memory.oom_control")
        try:
            match = re.search(r"^oom_kill (\d+)$", path.read_text(), re.M)
        except OSError:
            return 0
        return int(match.group(1)) if match else 0

    def remove(self) -> None:
        """Remove the group once its processes are gone (the kernel may take a moment to reap them)."""
        for directory in self.dirs.values():
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


STALE = re.compile(r"issuemine-(\d+)-")


def _remove_stale(parents: list[Path]) -> None:
    """Groups an earlier issuemine left when it was killed (empty by now: its sandboxes died with it)."""
    for parent in parents:
        with contextlib.suppress(OSError):
            for entry in parent.iterdir():
                match = STALE.match(entry.name)
                if match and entry.is_dir() and not Path(f"/proc/{match.group(1)}").exists():
                    with contextlib.suppress(OSError):
                        entry.rmdir()


def create(name: str, root: Path = ROOT) -> Group | None:
    """A new group beside this process's own (under it), or None where the machine does not allow it."""
    own = _own_paths(root)
    _remove_stale(list(own.values()))
    made: dict[str, Path] = {}
    try:
        if "unified" in own and {"memory", "pids"} <= set(
            (own["unified"] / "cgroup.subtree_control").read_text().split()
        ):
            made["unified"] = own["unified"] / name
            made["unified"].mkdir()
            return Group(2, made)
        if "memory" in own and "pids" in own:
            for controller in ("memory", "pids"):
                made[controller] = own[controller] / name
                made[controller].mkdir()
            return Group(1, made)
    except OSError:
        Group(1, made).remove()
    return None
