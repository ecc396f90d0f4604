"""Every example command of the README runs as written after the demo (as sqlite-utils tests its docs).

Left out, each for its reason: fetching (the network), the interactive screens (label, adjudicate;
the pty tests drive them), commands on the user's own files or environments, the minutes-long quality
suite, and Jupyter."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = {
    "issuemine fetch": "needs GitHub",
    "issuemine label ": "interactive (tests/cli/test_label_pty.py)",
    "issuemine adjudicate": "interactive",
    "issuemine filter --validate": "the user's hand labels",
    "issuemine repro env build": "downloads the environment's packages",
    "issuemine repro run --env old": "needs a built environment",
    "issuemine repro run --env era": "builds the stacks of their time (downloads; tests/repro/test_era.py runs one)",
    "issuemine repro bisect": "builds and runs stacks of their time (tests/repro/test_era.py bisects an issue)",
    "issuemine difftest run": "a campaign of 360 generated models (tests/difftest runs small ones)",
    "issuemine difftest report": "needs a campaign (tests/difftest renders it)",
    "issuemine difftest show": "needs a campaign",
    "issuemine difftest localize": "needs a mismatching model (tests/difftest localizes one)",
    "issuemine difftest replicate": "needs --protocol study campaigns (tests/difftest/test_replication.py)",
    "issuemine difftest coverage": "needs a campaign and a folder of models (tests/difftest measures one)",
    "issuemine quality suite": "trains and measures six models for minutes (tests/quality runs a quick suite)",
    "issuemine quality model": "the user's own model file",
    "issuemine quality report": "needs a quality suite run (tests/quality renders it)",
}
# `repro file` exits with the verdict's status (documented in its --help).
EXIT_CODES = {"issuemine repro file": {0, 10, 11, 12, 13, 14, 15, 16}}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    usage = text[text.index("## Using it") : text.index("## Benchmarks")]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", usage, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s{2,}#.*$", "", line).strip()
            if line.startswith("issuemine ") and not any(line.startswith(s) for s in SKIP):
                commands.append(line)
    return commands


def test_the_readme_examples_run_after_the_demo(tmp_path: Path) -> None:
    issuemine = str(Path(sys.executable).parent / "issuemine")
    (tmp_path / "data").symlink_to(ROOT / "data")  # the examples' paths are relative to the repository
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUEMINE_")}
    demo = subprocess.run([issuemine, "demo", "--out", "issuemine-demo"], cwd=tmp_path, env=env, capture_output=True)
    assert demo.returncode == 0, demo.stderr.decode()[-2000:]
    env["ISSUEMINE_DB"] = "issuemine-demo/issuemine.db"
    commands = readme_commands()
    assert len(commands) >= 20, commands
    for command in commands:
        words = shlex.split(command)
        target = None
        if ">" in words:
            words, target = words[: words.index(">")], words[words.index(">") + 1]
        done = subprocess.run(
            [issuemine, *words[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        allowed = next((codes for prefix, codes in EXIT_CODES.items() if command.startswith(prefix)), {0})
        assert done.returncode in allowed, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        assert "Traceback" not in done.stderr, command
        if target:
            (tmp_path / target).write_text(done.stdout)
    assert (tmp_path / "report" / "report.html").exists() and (tmp_path / "corpus.jsonl").stat().st_size > 0
    assert not (tmp_path / "issuemine.db").exists()  # no stray database: every example used the demo's


@pytest.mark.parametrize("prefix", sorted(SKIP))
def test_every_skip_still_matches_an_example(prefix: str) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert prefix.strip() in text, f"{prefix!r} is no longer in the README: drop it from SKIP"
