"""MkDocs hooks: the parts of the documentation that are generated, so they cannot drift.

- ``<!-- cli-reference -->`` becomes the reference of every command, read from the CLI itself
  (the same click objects ``--help`` prints);
- ``<!-- schema -->`` becomes the database's tables and columns, read from the SQLAlchemy models
  the migrations are checked against;
- ``<!-- demo-table: NAME -->`` becomes the table NAME of the demo's report, and
  ``<!-- demo-output: ARGS -->`` the output of ``issuemine ARGS`` on the demo's database: real
  output of this version, computed from the bundled study data when the site is built;
- the demo report's figures are added to the site as ``img/NAME.png``.

The demo runs once per build, in a temporary folder (about ten seconds, no network).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"<!-- (cli-reference|schema|demo-table|demo-output)(?::\s*(.*?))? -->")


@cache
def demo_dir() -> Path:
    """The demo's output folder, made once per build."""
    from issuemine.pipeline.demo import run_demo

    out = Path(tempfile.mkdtemp(prefix="issuemine-docs-")) / "issuemine-demo"
    run_demo(out)
    # The re-run tutorial's labeled sample, so its tie-back shows real verdicts.
    labels = Path(__file__).parent / "examples" / "example-labels.csv"
    _issuemine(out, f"labels import {shlex.quote(str(labels))} --sample examples")
    return out


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for figure in sorted((demo_dir() / "report" / "figures").glob("*.png")):
        files.append(File.generated(config, f"img/{figure.name}", content=figure.read_bytes()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return PLACEHOLDER.sub(lambda m: _expand(m.group(1), (m.group(2) or "").strip()), markdown)


def _expand(kind: str, argument: str) -> str:
    if kind == "cli-reference":
        return cli_reference()
    if kind == "schema":
        return schema()
    if kind == "demo-table":
        return (demo_dir() / "report" / "tables" / f"{argument}.md").read_text(encoding="utf-8")
    return "```text\n" + demo_output(argument).rstrip() + "\n```"


def demo_output(arguments: str) -> str:
    """What ``issuemine ARGUMENTS`` prints on the demo's database, at a fixed terminal width."""
    return _issuemine(demo_dir(), arguments)


def _issuemine(demo: Path, arguments: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUEMINE_")}
    env.update(ISSUEMINE_DB=str(demo / "issuemine.db"), COLUMNS="100", NO_COLOR="1", TERM="dumb")
    done = subprocess.run(
        [sys.executable, "-m", "issuemine", *shlex.split(arguments)],
        capture_output=True,
        text=True,
        env=env,
        cwd=demo.parent,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"issuemine {arguments} failed in the docs build:\n{done.stderr[-2000:]}")
    return done.stdout


# -- the command reference ------------------------------------------------------------------------


def cli_reference() -> str:
    from issuemine.cli.app import COMMANDS, load_command

    parts = []
    for name in COMMANDS:
        parts.extend(_command_doc(load_command(name), f"issuemine {name}"))
    return "\n".join(parts)


def _command_doc(command: Any, path: str) -> list[str]:
    subcommands = getattr(command, "commands", None)
    if subcommands:
        lines = [f"## `{path}`", "", _plain(command.help or ""), ""]
        for name, sub in subcommands.items():
            lines.extend(_command_doc(sub, f"{path} {name}"))
        return lines
    lines = [f"### `{path}`" if path.count(" ") > 1 else f"## `{path}`", ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    usage = " ".join([path, *(p.name.upper() + ("..." if p.nargs == -1 else "") for p in arguments), "[OPTIONS]"])
    lines += ["```text", usage, "```", "", _plain(command.help or ""), ""]
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    if options:
        lines += ["| option | value | default | meaning |", "|---|---|---|---|"]
        for p in options:
            names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            value = "" if p.is_flag else f"`{_type(p)}`"
            default = "" if p.default in (None, False, (), []) or callable(p.default) else f"`{p.default}`"
            lines.append(f"| {names} | {value} | {default} | {_cell(p.help or '')} |")
        lines.append("")
    if command.epilog:
        lines += [_plain(command.epilog), ""]
    return lines


def _type(param: Any) -> str:
    """The value's type as --help shows it (``int range``, ``path``...), without the brackets."""
    try:
        return str(param.display_type(None)).strip("<>")
    except Exception:  # a choice needs a live context: its bare type will do
        return str(param.bare_type())


def _plain(text: str) -> str:
    """Help text as Markdown: Rich's escaped brackets unescaped, click's no-rewrap marker dropped."""
    return text.replace("\\[", "[").replace("\b\n", "").strip()


def _cell(text: str) -> str:
    return " ".join(_plain(text).split()).replace("|", "\\|")


# -- the database schema --------------------------------------------------------------------------


def schema() -> str:
    from issuemine.db.models import Base

    docs = {m.local_table.name: " ".join((m.class_.__doc__ or "").split()) for m in Base.registry.mappers}
    lines = []
    for table in sorted(Base.metadata.sorted_tables, key=lambda t: t.name):
        lines += [f"### `{table.name}`", ""]
        if docs.get(table.name):
            lines += [docs[table.name], ""]
        lines += ["| column | type | null | key |", "|---|---|---|---|"]
        for column in table.columns:
            key = "primary" if column.primary_key else ""
            refs = ", ".join(f"→ `{fk.target_fullname}`" for fk in column.foreign_keys)
            kind = str(column.type.compile(dialect=_sqlite()))
            lines.append(f"| `{column.name}` | {kind} | {'yes' if column.nullable else 'no'} | {key} {refs} |")
        lines.append("")
    return "\n".join(lines)


@cache
def _sqlite() -> Any:
    from sqlalchemy.dialects import sqlite

    return sqlite.dialect()
