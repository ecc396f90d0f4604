"""The stack of an issue's time, and the companion packages its snippet needs there.

``repro run --env era`` re-runs each issue in a stack of the catalog (``data/stacks.toml``) rather
than in today's: the one whose converter version matches what the thread reports, else the newest
released before the issue was opened. A snippet's imports are untrusted text: only names on the
catalog's allowlist are looked up, and only the requirement the stack pins for that name is ever
installed (from the package index, outside the sandbox, before the sandbox starts).
"""

from __future__ import annotations

import ast
import datetime
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from issuemine.db import Database
from issuemine.errors import IssuemineError
from issuemine.repro.environments import Environment
from issuemine.repro.runs import Outcome, RunOptions, RunReport

# The version a thread reports that decides the stack, per converter (the converter's framework).
DECIDING = {"torch.onnx": ("torch",), "tf2onnx": ("tf2onnx", "tensorflow")}
COMPANIONS_FILE = ".issuemine-companions.json"


@dataclass(frozen=True)
class Choice:
    stack: Environment
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"stack": self.stack.name, "why": self.why}


def major_minor(version: str | None) -> tuple[int, int] | None:
    found = re.match(r"\s*v?(\d+)\.(\d+)", version or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def stacks_for(converter: str, environments: dict[str, Environment]) -> list[Environment]:
    """The catalog's stacks that re-run ``converter``, oldest first."""
    found = [e for e in environments.values() if e.released is not None and converter in e.converters]
    return sorted(found, key=lambda e: (e.released, e.name))


def choose(
    converter: str,
    created: datetime.date | None,
    reported: dict[str, str] | None,
    environments: dict[str, Environment],
) -> Choice:
    """The stack of an issue's time: the reported version's, else the newest released before the
    issue was opened (the oldest stack for an issue older than the catalog)."""
    stacks = stacks_for(converter, environments)
    if not stacks:
        raise IssuemineError(f"no stack in the catalog re-runs {converter!r} (data/stacks.toml)")
    for package in DECIDING.get(converter, ()):
        wanted = major_minor((reported or {}).get(package))
        if wanted is None:
            continue
        same = [s for s in stacks if major_minor(s.versions.get(package)) == wanted]
        if same:
            return Choice(same[-1], f"the thread reports {package} {reported[package]}")  # type: ignore[index]
        older = [s for s in stacks if (major_minor(s.versions.get(package)) or (0, 0)) <= wanted]
        if older:
            have = older[-1].versions.get(package)
            return Choice(older[-1], f"the thread reports {package} {reported[package]}; the nearest older is {have}")  # type: ignore[index]
        return Choice(stacks[0], f"the thread reports {package} {reported[package]}, older than every stack")  # type: ignore[index]
    if created is None:
        return Choice(stacks[-1], "no reported version and no date: the newest stack")
    before = [s for s in stacks if s.released is not None and s.released <= created]
    if before:
        return Choice(before[-1], f"opened {created.isoformat()}; released {before[-1].released}")
    return Choice(stacks[0], f"opened {created.isoformat()}, before every stack")


def snippet_imports(script: str) -> set[str]:
    """The top-level module names a snippet imports (read, never run)."""
    try:
        tree = ast.parse(script)
    except (SyntaxError, ValueError):
        names = re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", script, re.M)
        return set(names)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def companions_needed(stack: Environment, script: str, allowed: dict[str, str]) -> dict[str, str]:
    """import name -> requirement, for the allowlisted companions the snippet imports that the stack
    pins. Names off the allowlist, or whose pin names another package, are never installed."""
    needed = {}
    for name in sorted(snippet_imports(script)):
        package, requirement = allowed.get(name), stack.companions.get(name)
        if package is None or requirement is None:
            continue
        if re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower() != package.lower():
            raise IssuemineError(f"{stack.source}: env.{stack.name}.companions.{name} must pin {package}")
        needed[name] = requirement
    return needed


def installed_companions(stack: Environment) -> dict[str, str]:
    if stack.venv is None:
        return {}
    try:
        return dict(json.loads((stack.venv / COMPANIONS_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def install_companions(stack: Environment, needed: dict[str, str]) -> dict[str, str]:
    """Install the companions a stack lacks (outside the sandbox, from the package index, with the
    stack's own pins as constraints so nothing of the stack moves); the ones it installed."""
    have = installed_companions(stack)
    missing = {name: req for name, req in needed.items() if have.get(name) != req}
    if not missing or stack.venv is None:
        return {}
    pins = stack.venv / ".issuemine-pins.txt"
    pins.write_text("\n".join(stack.packages) + "\n", encoding="utf-8")
    command = [stack.python, "-m", "pip", "install", "-q", "-c", str(pins), *missing.values()]
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise IssuemineError(f"cannot install {', '.join(missing.values())} into {stack.name}: {exc}") from exc
    have.update(missing)
    (stack.venv / COMPANIONS_FILE).write_text(json.dumps(have, indent=1, sort_keys=True), encoding="utf-8")
    return missing


# -- planning and running a sample in the stacks of its time ---------------------------------------


def plan(db: Database, sample: str | None, environments: dict[str, Environment]) -> dict[int, Choice]:
    """The stack of its time for every issue with an extracted candidate (of ``sample``); issues
    whose converter no stack re-runs are left out."""
    from sqlalchemy import select

    from issuemine.db.models import Issue, Repository, ReproCandidate, SampleMember
    from issuemine.db.rows import sample_id
    from issuemine.domain.converters import default_catalog_paths, load_catalog

    converters = {c.repo.lower(): c.name for c in load_catalog(default_catalog_paths()).values()}
    query = (
        select(ReproCandidate.issue_id, Repository.full_name, Issue.created_at, ReproCandidate.provenance)
        .join(Issue, Issue.id == ReproCandidate.issue_id)
        .join(Repository, Repository.id == Issue.repository_id)
    )
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.join(
                SampleMember, (SampleMember.issue_id == ReproCandidate.issue_id) & (SampleMember.sample_id == sid)
            )
        rows = session.execute(query.order_by(ReproCandidate.issue_id)).all()
    choices = {}
    for issue_id, repo, created, provenance in rows:
        converter = converters.get(str(repo).lower())
        if converter is None or not stacks_for(converter, environments):
            continue
        reported = (provenance or {}).get("reported_versions") or {}
        day = created.date() if isinstance(created, datetime.datetime) else None
        choices[issue_id] = choose(converter, day, reported, environments)
    return choices


@dataclass
class EraReport:
    runs: RunReport
    stacks: dict[str, int]  # issues per stack
    not_built: dict[str, int]  # issues left out because their stack is not built (--no-build)
    companions: dict[str, list[str]]  # stack -> companions installed into it now

    def as_dict(self) -> dict[str, Any]:
        extra = {"stacks": self.stacks, "not_built": self.not_built, "companions": self.companions}
        return {**self.runs.as_dict(), **extra}


def run_era(
    db: Database,
    options: RunOptions,
    sample: str | None,
    environments: dict[str, Environment],
    build_missing: bool = True,
    on_build: Callable[[Environment], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> EraReport:
    """Run every issue's candidate in the stack of its time, building missing stacks (unless
    ``build_missing`` is false) and installing the allowlisted companions its snippet imports."""
    from sqlalchemy import select

    from issuemine.db.models import ReproCandidate
    from issuemine.repro import environments as envs
    from issuemine.repro.runs import run_issues

    choices = plan(db, sample, environments)
    with db.session() as session:
        scripts = dict(session.execute(select(ReproCandidate.issue_id, ReproCandidate.script)).all())
    allowed = envs.companion_packages()
    report = EraReport(RunReport(), {}, {}, {})
    order = sorted({c.stack.name: c.stack for c in choices.values()}.values(), key=lambda e: (e.released, e.name))
    for stack in order:
        mine = {i: c for i, c in choices.items() if c.stack.name == stack.name}
        report.stacks[stack.name] = len(mine)
        if not stack.built:
            if not build_missing:
                report.not_built[stack.name] = len(mine)
                continue
            if on_build:
                on_build(stack)
            envs.build(stack)
        notes: dict[int, dict[str, Any]] = {}
        wanted: dict[str, str] = {}
        for issue_id, choice in mine.items():
            needed = companions_needed(stack, scripts.get(issue_id) or "", allowed)
            wanted.update(needed)
            note: dict[str, Any] = {"era": choice.as_dict()}
            if needed:
                note["era"]["companions"] = {n: f"{r} (the snippet imports {n})" for n, r in needed.items()}
            notes[issue_id] = note
        added = install_companions(stack, wanted)
        if added:
            report.companions[stack.name] = sorted(added.values())
        stack_options = replace(options, env=stack)
        run_issues(db, stack_options, sample, on_start, on_outcome, notes=notes, report=report.runs)
        if report.runs.interrupted:
            break
    return report
