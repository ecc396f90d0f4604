"""Named environments: a config file of pinned virtualenvs, built once, picked with --env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from issuemine.cli.app import app
from tests.repro.conftest import SNIPPETS


@pytest.fixture
def envs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ISSUEMINE_ENVS_DIR", str(tmp_path / "envs"))
    config = tmp_path / "repro-envs.toml"
    # No pins, so building needs no network: a bare interpreter without torch, to tell apart from 'current'.
    config.write_text('[env.bare]\npackages = []\npreload = ["json"]\n\n[env.pinned]\npackages = ["torch==2.13.0"]\n')
    return config


def test_list_build_and_run_in_a_named_environment(cli, envs: Path) -> None:
    listed = json.loads(cli.invoke(app, ["repro", "env", "list", "--envs-file", str(envs), "--json"]).stdout)
    # The catalog's stacks of their time come between 'current' and the file's own environments.
    own = [(e["name"], e["built"]) for e in listed if e["released"] == "-"]
    assert own == [("current", "yes"), ("bare", "no"), ("pinned", "no")]
    assert listed[-1]["packages"] == "torch==2.13.0"
    assert {e["name"] for e in listed if e["released"] != "-"} >= {"torch-1-8", "tf-2-4"}

    snippet = str(SNIPPETS / "a_torchscript_passes.py")
    result = cli.invoke(app, ["repro", "file", snippet, "--env", "bare", "--envs-file", str(envs)])
    assert result.exit_code == 2 and "issuemine repro env build bare" in result.output

    assert cli.invoke(app, ["repro", "env", "build", "bare", "--envs-file", str(envs)]).exit_code == 0
    result = cli.invoke(app, ["repro", "file", snippet, "--env", "bare", "--envs-file", str(envs), "--json"])
    assert result.exit_code == 15, result.output  # not-runnable
    data = json.loads(result.stdout)
    # The same snippet that passes in 'current' cannot even import torch here, and the record says why.
    assert data["verdict"] == "not-runnable" and data["reason"] == "missing module: torch"
    assert "torch" not in data["versions"] and data["versions"]["python"].startswith("3.11")
    # The environment lives under /tmp here; wiping the sandbox's /tmp between runs keeps its mount.
    again = json.loads(
        cli.invoke(app, ["repro", "file", snippet, "--env", "bare", "--envs-file", str(envs), "--json"]).stdout
    )
    assert again["reason"] == "missing module: torch"


def test_bad_environment_files_are_clear_errors(cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[env.x]\npackages = 'torch'\n")
    result = cli.invoke(app, ["repro", "env", "list", "--envs-file", str(broken)])
    assert result.exit_code == 2 and "packages must be a list" in result.output
    result = cli.invoke(app, ["repro", "env", "build", "nope", "--envs-file", str(broken)])
    assert result.exit_code == 2


def _tiny_wheel(folder: Path) -> Path:
    """A one-module wheel built here, so pinning a package needs no index."""
    import subprocess
    import sys

    source = folder / "tinyprobe"
    (source / "tinyprobe").mkdir(parents=True)
    (source / "tinyprobe" / "__init__.py").write_text("VERSION = '0.3'\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tinyprobe"\nversion = "0.3"\n'
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(folder),
            str(source),
        ],
        check=True,
    )
    return next(folder.glob("tinyprobe-*.whl"))


def test_an_environment_names_its_interpreter_and_pins(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from issuemine.errors import IssuemineError
    from issuemine.repro.environments import find_interpreter

    try:
        find_interpreter("3.12")
    except IssuemineError:
        pytest.skip("no Python 3.12 on this machine")
    monkeypatch.setenv("ISSUEMINE_ENVS_DIR", str(tmp_path / "envs"))
    wheel = _tiny_wheel(tmp_path)
    config = tmp_path / "repro-envs.toml"
    config.write_text(f'[env.old]\npython = "3.12"\npackages = ["{wheel}"]\npreload = ["json"]\n')
    assert cli.invoke(app, ["repro", "env", "build", "old", "--envs-file", str(config)]).exit_code == 0
    snippet = tmp_path / "probe.py"
    snippet.write_text(
        "import sys, tinyprobe\nassert sys.version_info[:2] == (3, 12), sys.version\nprint(tinyprobe.VERSION)\n"
    )
    result = cli.invoke(app, ["repro", "file", str(snippet), "--env", "old", "--envs-file", str(config), "--json"])
    assert result.exit_code == 15, result.output  # not-runnable: it converts nothing
    data = json.loads(result.stdout)
    # The pinned package imports and the interpreter is 3.12; the snippet simply converts nothing.
    assert data["versions"]["python"].startswith("3.12") and data["env"] == "old"
    assert data["verdict"] == "not-runnable" and data["reason"] == "the script never called a converter"
    assert "0.3" in data["output_tail"]
    with pytest.raises(IssuemineError, match="no working interpreter"):
        find_interpreter("2.9")
