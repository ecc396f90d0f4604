"""The documentation site: it builds with warnings as errors (broken links and anchors included),
the guides' examples run as written after the demo, and every tutorial runs end to end.

Left out of the guides' examples, each for its reason: fetching (the network), the interactive
screens (label, adjudicate; the pty tests drive them), commands on the user's own files or
environments, the minutes-long quality suite, and Jupyter. Tutorials show such steps in ```sh
blocks, which are not run; every ```bash line is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_runner import ROOT, bash_lines, make_demo, run_lines, workspace

DOCS = ROOT / "docs"
# In the order of the site's navigation: later examples use what earlier ones made.
GUIDES = ("corpus", "labeling", "analysis", "reproduction", "difftest", "quality", "converters")
TUTORIALS = sorted(p.stem for p in (DOCS / "tutorials").glob("*.md"))
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
    "issuemine difftest models": "needs a campaign",
    "issuemine difftest localize": "needs a mismatching model (tests/difftest localizes one)",
    "issuemine difftest replicate": "needs --protocol study campaigns (tests/difftest/test_replication.py)",
    "issuemine difftest coverage": "needs a campaign and a folder of models (tests/difftest measures one)",
    "issuemine quality suite": "trains and measures six models for minutes (tests/quality runs a quick suite)",
    "issuemine quality model": "the user's own model file",
    "issuemine quality report": "needs a quality suite run (tests/quality renders it)",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo(tmp_path_factory.mktemp("demo"))


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reference = (tmp_path / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("issuemine difftest run", "issuemine labels import", "issuemine repro env build"):
        assert command in reference  # generated from the CLI: every command is there
    assert "quality_runs" in (tmp_path / "reference" / "database" / "index.html").read_text(encoding="utf-8")
    tutorial = (tmp_path / "tutorials" / "replicate-tables" / "index.html").read_text(encoding="utf-8")
    assert "Cohen" in tutorial and "<table>" in tutorial  # real output and the demo's Table 8
    assert (tmp_path / "img" / "stages.png").stat().st_size > 10_000


def test_the_guides_examples_run_after_the_demo(demo: Path, tmp_path: Path) -> None:
    lines = [
        line
        for guide in GUIDES
        for line in bash_lines((DOCS / "guide" / f"{guide}.md").read_text(encoding="utf-8"))
        if not any(line.startswith(s) for s in SKIP) and not line.startswith("export GITHUB_TOKEN")
    ]
    assert len(lines) >= 20, lines
    where = workspace(demo, tmp_path)
    run_lines(lines, where)
    assert (where / "report" / "report.html").exists() and (where / "corpus.jsonl").stat().st_size > 0
    assert not (where / "issuemine.db").exists()  # no stray database: every example used the demo's


@pytest.mark.parametrize("tutorial", TUTORIALS)
def test_the_tutorial_runs_end_to_end(tutorial: str, demo: Path, tmp_path: Path) -> None:
    lines = bash_lines((DOCS / "tutorials" / f"{tutorial}.md").read_text(encoding="utf-8"))
    assert any(line.startswith("issuemine ") for line in lines)
    run_lines(lines, workspace(demo, tmp_path))


def test_there_is_a_tutorial_per_goal() -> None:
    assert len(TUTORIALS) >= 6


@pytest.mark.parametrize("prefix", sorted(SKIP))
def test_every_skip_still_matches_an_example(prefix: str) -> None:
    text = "\n".join((DOCS / "guide" / f"{g}.md").read_text(encoding="utf-8") for g in GUIDES)
    assert prefix.strip() in text, f"{prefix!r} is no longer in the guides: drop it from SKIP"


def test_the_readmes_links_lead_somewhere() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(links) >= 10
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing
