"""Every example command of the README runs as written after the demo (as sqlite-utils tests its docs)."""

from __future__ import annotations

from pathlib import Path

from tests.docs_runner import ROOT, bash_lines, make_demo, run_lines, workspace


def test_the_readme_examples_run_after_the_demo(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = bash_lines(text[text.index("## Using it") : text.index("## Documentation")])
    assert len([c for c in commands if c.startswith("issuemine ")]) >= 12, commands
    (tmp_path / "demo").mkdir()
    where = workspace(make_demo(tmp_path / "demo"), tmp_path / "root")
    run_lines(commands, where)
    assert (where / "report" / "report.html").exists() and (where / "table10.tex").stat().st_size > 0
    assert not (where / "issuemine.db").exists()  # no stray database: every example used the demo's


def test_the_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("```")[1].splitlines()
    assert [line.split("#")[0].strip() for line in head[1:3]] == ["bash scripts/demo.sh", "bash scripts/test.sh"]
