"""Running the examples of the README and the documentation as written, after the demo (as
sqlite-utils tests its docs): shared by tests/test_readme.py and tests/test_docs.py.

Lines of ```bash blocks that start with `issuemine ` run; `export NAME=VALUE` lines set the
environment of the lines after them; `> FILE` writes the output to FILE. ```sh blocks are shown,
not run (interactive screens, downloads, the network), and say so in their text."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ISSUEMINE = str(Path(sys.executable).parent / "issuemine")
# `repro file` exits with the verdict's status (documented in its --help).
EXIT_CODES = {"issuemine repro file": {0, 10, 11, 12, 13, 14, 15, 16}}


def bash_lines(text: str) -> list[str]:
    """The `issuemine` and `export` lines of a Markdown text's ```bash blocks, comments removed."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s{2,}#.*$", "", line).strip()
            if line.startswith(("issuemine ", "export ")):
                found.append(line)
    return found


def make_demo(folder: Path) -> Path:
    """The demo's folder, made once (the tests copy it)."""
    env = clean_env()
    done = subprocess.run([ISSUEMINE, "demo", "--out", "issuemine-demo"], cwd=folder, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return folder / "issuemine-demo"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ISSUEMINE_", "GITHUB_TOKEN"))}


def workspace(demo: Path, where: Path) -> Path:
    """A folder shaped like the repository root after the demo: its own copy of the demo's
    database, and the data and docs the examples name."""
    shutil.copytree(demo, where / "issuemine-demo")
    for name in ("data", "docs"):
        (where / name).symlink_to(ROOT / name)
    return where


def run_lines(lines: list[str], cwd: Path) -> None:
    env = clean_env()
    env["ISSUEMINE_DB"] = "issuemine-demo/issuemine.db"
    for line in lines:
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = value
            continue
        words = shlex.split(line)
        target = None
        if ">" in words:
            words, target = words[: words.index(">")], words[words.index(">") + 1]
        done = subprocess.run([ISSUEMINE, *words[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        allowed = next((codes for prefix, codes in EXIT_CODES.items() if line.startswith(prefix)), {0})
        assert done.returncode in allowed, f"{line}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        assert "Traceback" not in done.stderr, line
        if target:
            (cwd / target).write_text(done.stdout)
