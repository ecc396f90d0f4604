"""Named environments to re-run snippets in: virtualenvs described by package pins.

``current`` is the interpreter issuemine runs in. Others come from a TOML file (``--envs-file``,
else ``$ISSUEMINE_REPRO_ENVS``, else ``repro-envs.toml`` in the working directory)::

    [env.torch-2-13]
    packages = ["torch==2.13.0", "onnx==1.23.2", "onnxruntime==1.31.1", "onnxscript==0.7.2"]
    python = "3.11"                    # base interpreter: a version (found on PATH or in pyenv) or a
                                       # path (default: the one running issuemine)
    system_site_packages = false       # see the base interpreter's packages too
    preload = ["numpy", "torch", "onnx", "onnxruntime"]   # imported once by the warm sandbox

The README has the recipe for the exporters of the study's time (torch 1.13 on Python 3.10).

``issuemine repro env build NAME`` creates the virtualenv under ``$ISSUEMINE_ENVS_DIR`` (default
``~/.cache/issuemine/envs``) and installs the pins; running in an environment never installs.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from issuemine.errors import IssuemineError
from issuemine.repro.sandbox import DEFAULT_PRELOAD
from issuemine.resources import data_dir

CURRENT = "current"
ERA = "era"  # not an environment: `repro run --env era` picks a stack of its time per issue
BUILT_MARK = ".issuemine-built"
DIFFTEST_MARK = ".issuemine-difftest"  # NNSmith and what a difftest worker needs are installed


@dataclass(frozen=True)
class Environment:
    name: str
    python: str
    packages: tuple[str, ...] = ()
    base_python: str | None = None
    system_site_packages: bool = False
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    venv: Path | None = None
    # A stack of its time (data/stacks.toml): when its converter release came out, which converters
    # it re-runs with which versions, and the companion packages that belong to it.
    released: datetime.date | None = None
    converters: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    companions: dict[str, str] = field(default_factory=dict)
    source: str = ""  # the file that describes it

    @property
    def built(self) -> bool:
        """Created and every pin installed (a build that stopped half-way left no mark)."""
        return self.venv is None or (Path(self.python).exists() and (self.venv / BUILT_MARK).exists())

    @property
    def has_difftest(self) -> bool:
        """Built, with what ``difftest run --env`` adds (NNSmith, its solver) installed."""
        return self.venv is None or (self.built and (self.venv / DIFFTEST_MARK).exists())

    @property
    def is_stack(self) -> bool:
        return self.released is not None


def config_path(explicit: Path | None = None) -> Path | None:
    if explicit:
        return explicit
    if os.environ.get("ISSUEMINE_REPRO_ENVS"):
        return Path(os.environ["ISSUEMINE_REPRO_ENVS"])
    default = Path("repro-envs.toml")
    return default if default.exists() else None


def stacks_path() -> Path:
    """The catalog of stacks of their time: ``$ISSUEMINE_STACKS``, else the bundled one."""
    return Path(os.environ.get("ISSUEMINE_STACKS") or data_dir() / "stacks.toml")


def envs_dir() -> Path:
    if os.environ.get("ISSUEMINE_ENVS_DIR"):
        return Path(os.environ["ISSUEMINE_ENVS_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "issuemine" / "envs"


def current() -> Environment:
    return Environment(CURRENT, sys.executable)


def load(path: Path | None = None) -> dict[str, Environment]:
    """Every environment: ``current``, the stacks of the catalog, then those the config file
    describes (an entry of the config file with a stack's name replaces it, and says so once)."""
    found = {CURRENT: current()}
    found.update(_read(stacks_path()))
    path = config_path(path)
    if path is None:
        return found
    for name, env in _read(path).items():
        if name in found and name not in _overrides_told:
            _overrides_told.add(name)
            print(f"note: {path} redefines the catalog's environment {name!r}", file=sys.stderr)
        found[name] = env
    return found


_overrides_told: set[str] = set()


def companion_packages(path: Path | None = None) -> dict[str, str]:
    """The allowlist: import name -> package, from the catalog and the config file's ``[companions]``."""
    allowed: dict[str, str] = {}
    for source in (stacks_path(), config_path(path)):
        if source is not None and source.exists():
            table = _document(source).get("companions") or {}
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise IssuemineError(f"{source}: [companions] maps import names to package names")
            allowed.update(table)
    return allowed


def difftest_packages(path: Path | None = None) -> list[str]:
    """What ``difftest run --env`` installs into a stack: ``[difftest] packages`` of the config file,
    else of the catalog."""
    for source in (config_path(path), stacks_path()):
        if source is not None and source.exists():
            packages = (_document(source).get("difftest") or {}).get("packages")
            if packages is None:
                continue
            if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
                raise IssuemineError(f"{source}: [difftest] packages must be a list of requirement strings")
            return list(packages)
    return []


def add_difftest(env: Environment, packages: list[str]) -> None:
    """Install what a difftest worker needs into a built environment (needs the package index)."""
    if env.venv is None:
        raise IssuemineError(f"{env.name!r} is the interpreter issuemine runs in; it has difftest's packages")
    if not env.built:
        raise IssuemineError(f"environment {env.name!r} is not built yet")
    if packages:
        _call([env.python, "-m", "pip", "install", "-q", *packages], f"cannot install {', '.join(packages)}")
    (env.venv / DIFFTEST_MARK).write_text(" ".join(packages) + "\n", encoding="utf-8")


def _document(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IssuemineError(f"cannot read environments from {path}: {exc}") from exc


ENV_KEYS = {
    "python",
    "packages",
    "system_site_packages",
    "preload",
    "released",
    "converters",
    "versions",
    "companions",
}


def _read(path: Path) -> dict[str, Environment]:
    found = {}
    for name, spec in (_document(path).get("env") or {}).items():
        if name in (CURRENT, ERA) or not isinstance(spec, dict):
            raise IssuemineError(f"{path}: [env.{name}] must be a table and not be called {CURRENT!r} or {ERA!r}")
        unknown = set(spec) - ENV_KEYS
        if unknown:
            raise IssuemineError(f"{path}: env.{name} has unknown key(s) {', '.join(sorted(unknown))}")
        packages = spec.get("packages", [])
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise IssuemineError(f"{path}: env.{name}.packages must be a list of requirement strings")
        released = spec.get("released")
        if released is not None and not isinstance(released, datetime.date):
            raise IssuemineError(f"{path}: env.{name}.released must be a date (2022-10-28)")
        tables = {key: spec.get(key) or {} for key in ("versions", "companions")}
        for key, table in tables.items():
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise IssuemineError(f"{path}: env.{name}.{key} must map names to strings")
        venv = envs_dir() / name
        found[name] = Environment(
            name,
            str(venv / "bin" / "python"),
            tuple(packages),
            spec.get("python"),
            bool(spec.get("system_site_packages", False)),
            tuple(spec.get("preload", DEFAULT_PRELOAD)),
            venv,
            released,
            tuple(spec.get("converters", ())),
            dict(tables["versions"]),
            dict(tables["companions"]),
            str(path),
        )
    return found


def size_on_disk(env: Environment) -> int:
    """Bytes an environment's virtualenv takes (0 when it is not built)."""
    if env.venv is None or not env.venv.exists():
        return 0
    total = 0
    for root, _, files in os.walk(env.venv):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def prune(env: Environment) -> int:
    """Delete a built environment's virtualenv; the bytes freed."""
    if env.venv is None:
        raise IssuemineError(f"{env.name!r} is the interpreter issuemine runs in; nothing to prune")
    freed = size_on_disk(env)
    shutil.rmtree(env.venv, ignore_errors=True)
    if env.venv.exists():
        raise IssuemineError(f"could not delete {env.venv}")
    return freed


def resolve(name: str, path: Path | None = None) -> Environment:
    if name == ERA:
        raise IssuemineError("'era' picks a stack per issue: use it with `repro run` and `repro report`, or name one")
    environments = load(path)
    if name not in environments:
        where = config_path(path) or "no environments file (repro-envs.toml)"
        raise IssuemineError(f"unknown environment {name!r} in {where}; known: {', '.join(environments)}")
    env = environments[name]
    if not env.built:
        raise IssuemineError(f"environment {name!r} is not built yet; run: issuemine repro env build {name}")
    return env


VERSION = re.compile(r"^\d+\.\d+$")


def find_interpreter(spec: str | None) -> str:
    """The base interpreter an environment names: a path, a command, or a version such as "3.10"
    (``python3.10`` on PATH, else pyenv's build of it). A pyenv shim of a version that is not
    selected does not run, so every candidate is tried."""
    if not spec:
        return sys.executable
    candidates = [spec]
    if VERSION.match(spec):
        root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        builds = sorted(root.glob(f"versions/{spec}.*/bin/python{spec}"), reverse=True)
        candidates = [str(p) for p in builds] + [shutil.which(f"python{spec}") or f"python{spec}"]
    for candidate in candidates:
        try:
            subprocess.run([candidate, "-c", "import venv"], check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    raise IssuemineError(f"no working interpreter for python = {spec!r} (tried {', '.join(candidates)})")


def build(env: Environment) -> None:
    """Create the environment's virtualenv and install its pins (needs the package index, unless the
    pins are local wheels)."""
    if env.venv is None:
        raise IssuemineError(f"{env.name!r} is the interpreter issuemine runs in; nothing to build")
    base = find_interpreter(env.base_python)
    command = [base, "-m", "venv", str(env.venv)]
    if env.system_site_packages:
        command.insert(3, "--system-site-packages")
    _call(command, f"cannot create the virtualenv {env.venv}")
    if env.packages:
        _call([env.python, "-m", "pip", "install", "-q", *env.packages], f"cannot install {', '.join(env.packages)}")
    (env.venv / BUILT_MARK).write_text(" ".join(env.packages) + "\n", encoding="utf-8")


def _call(command: list[str], message: str) -> None:
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise IssuemineError(f"{message}: {exc}") from exc


# Run by the environment's own interpreter: what its converters can do, read off the installed code
# rather than its version strings (a backport, a nightly or a patched build answer for themselves).
FEATURE_PROBE = """
import inspect, json
found = {}
try:
    import torch
    found["torch_export"] = hasattr(getattr(torch, "export", None), "export")
    keyword = inspect.signature(torch.onnx.export).parameters.get("dynamo")
    found["onnx_export_dynamo_keyword"] = keyword is not None
    found["onnx_export_dynamo_default"] = bool(keyword is not None and keyword.default is True)
except Exception as exc:
    found["torch_error"] = type(exc).__name__
print(json.dumps(found))
"""


@functools.lru_cache(maxsize=32)
def features(python: str) -> dict[str, object]:
    """What the converters of the environment whose interpreter is ``python`` support (``{}`` when
    the probe cannot run: then nothing is assumed)."""
    try:
        done = subprocess.run(
            [python, "-c", FEATURE_PROBE], capture_output=True, text=True, timeout=300, env=interpreter_environ()
        )
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout else {}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}
    return found if isinstance(found, dict) else {}


def interpreter_environ(*also: str) -> dict[str, str]:
    """What another environment's interpreter is run with (a feature probe, a difftest worker): it
    imports only that environment's packages, with no secrets, no user site and no GPU search;
    ``also`` names further variables it may see."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", *also)
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONNOUSERSITE": "1", "CUDA_VISIBLE_DEVICES": ""}
