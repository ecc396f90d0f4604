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

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from issuemine.errors import IssuemineError
from issuemine.repro.sandbox import DEFAULT_PRELOAD

CURRENT = "current"
BUILT_MARK = ".issuemine-built"


@dataclass(frozen=True)
class Environment:
    name: str
    python: str
    packages: tuple[str, ...] = ()
    base_python: str | None = None
    system_site_packages: bool = False
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    venv: Path | None = None

    @property
    def built(self) -> bool:
        """Created and every pin installed (a build that stopped half-way left no mark)."""
        return self.venv is None or (Path(self.python).exists() and (self.venv / BUILT_MARK).exists())


def config_path(explicit: Path | None = None) -> Path | None:
    if explicit:
        return explicit
    if os.environ.get("ISSUEMINE_REPRO_ENVS"):
        return Path(os.environ["ISSUEMINE_REPRO_ENVS"])
    default = Path("repro-envs.toml")
    return default if default.exists() else None


def envs_dir() -> Path:
    if os.environ.get("ISSUEMINE_ENVS_DIR"):
        return Path(os.environ["ISSUEMINE_ENVS_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "issuemine" / "envs"


def current() -> Environment:
    return Environment(CURRENT, sys.executable)


def load(path: Path | None = None) -> dict[str, Environment]:
    """Every environment: ``current`` plus those the config file describes."""
    found = {CURRENT: current()}
    path = config_path(path)
    if path is None:
        return found
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IssuemineError(f"cannot read environments from {path}: {exc}") from exc
    for name, spec in (doc.get("env") or {}).items():
        if name == CURRENT or not isinstance(spec, dict):
            raise IssuemineError(f"{path}: [env.{name}] must be a table and not be called {CURRENT!r}")
        packages = spec.get("packages", [])
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise IssuemineError(f"{path}: env.{name}.packages must be a list of requirement strings")
        venv = envs_dir() / name
        found[name] = Environment(
            name,
            str(venv / "bin" / "python"),
            tuple(packages),
            spec.get("python"),
            bool(spec.get("system_site_packages", False)),
            tuple(spec.get("preload", DEFAULT_PRELOAD)),
            venv,
        )
    return found


def resolve(name: str, path: Path | None = None) -> Environment:
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
            [python, "-c", FEATURE_PROBE], capture_output=True, text=True, timeout=300, env=_probe_env()
        )
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout else {}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}
    return found if isinstance(found, dict) else {}


def _probe_env() -> dict[str, str]:
    # The probe imports only the environment's packages: no secrets, no user site, no GPU search.
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONNOUSERSITE": "1", "CUDA_VISIBLE_DEVICES": ""}
