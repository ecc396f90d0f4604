"""The ``issuemine`` command: a thin shell over the library; each command calls one function.

Command groups are imported only when one of their commands runs: ``issuemine --version``,
``--help`` and ``status`` do not pay for pandas, matplotlib or the converters. The table below is
the one list of commands, with the short help shown by ``issuemine --help``.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import typer
import typer.main
import typer.rich_utils
from typer.core import TyperCommand, TyperGroup

from issuemine import __version__

# name: (module, attribute, short help). An attribute ending in _app is a command group.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "converters": ("corpus", "converters_cmd", "List the converters in the catalog."),
    "fetch": ("corpus", "fetch_cmd", "Fetch converters' issues with comments and timelines into the database."),
    "filter": ("corpus", "filter_cmd", "Apply the relevance and availability filters (study Figure 4)."),
    "sample": ("corpus", "sample_cmd", "Draw a seeded, reproducible sample stratified by converter."),
    "status": ("corpus", "status_cmd", "Show what the database holds."),
    "load": ("corpus", "load_cmd", "Import issues from a file (an export, or a CSV of stubs) without a token."),
    "export": ("corpus", "export_cmd", "Export the corpus as JSON Lines, to share without a token."),
    "datasette": ("corpus", "datasette_cmd", "Datasette metadata (descriptions, canned queries) for this database."),
    "taxonomy": ("labeling", "taxonomy_app", "Show and check the labeling taxonomy."),
    "labels": ("labeling", "labels_app", "Import and export human labels."),
    "assign": ("labeling", "assign_cmd", "Plan who labels what: raters and the double-labeled overlap."),
    "label": ("labeling", "label_cmd", "Label a sample's issues in an interactive terminal session."),
    "agree": ("labeling", "agree_cmd", "Inter-rater agreement: Cohen's kappa, Krippendorff's alpha."),
    "adjudicate": ("labeling", "adjudicate_cmd", "Settle the disagreements of a sample."),
    "suggest": ("suggest", "suggest_app", "Label suggestions: train, evaluate and show a measured model."),
    "difftest": ("difftest", "difftest_app", "Differential testing of converters (Table 11)."),
    "quality": ("quality", "quality_app", "Converted-model quality: accuracy, speed, memory, size, robustness."),
    "analyze": ("analysis", "analyze_cmd", "The study's tables, figures and report from the final labels."),
    "repro": ("repro", "repro_app", "Re-run the conversions reported in issues, sandboxed, and classify them."),
    "demo": ("pipeline", "demo_cmd", "Run the end-to-end job on the bundled study data (no network)."),
}


# One example per command, shown at the end of its --help (the README's examples are the same).
EXAMPLES: dict[str, str] = {
    "converters": "issuemine converters --catalog my-converters.toml",
    "fetch": "issuemine fetch torch.onnx tf2onnx --db study.db   # token from $GITHUB_TOKEN or --token",
    "filter": "issuemine filter --validate hand-labels.csv",
    "sample": "issuemine sample --per-converter 100 --seed 7 --name study --include-undecided",
    "status": "issuemine status --db issuemine-demo/issuemine.db",
    "load": "issuemine load corpus.jsonl",
    "export": "issuemine export corpus.jsonl",
    "datasette": "issuemine datasette --db demo.db > demo-metadata.json && datasette demo.db -m demo-metadata.json",
    "taxonomy show": "issuemine taxonomy show cause",
    "taxonomy check": "issuemine taxonomy check --taxonomy my-codebooks/",
    "labels import": "issuemine labels import data/pilot-ratings.csv --sample pilot",
    "labels export": "issuemine labels export --final --format csv --sample study > final.csv",
    "assign": "issuemine assign --sample study --raters ana,bob --overlap 30",
    "label": "issuemine label --sample study --rater ana",
    "agree": "issuemine agree --sample pilot --confusion",
    "adjudicate": "issuemine adjudicate --sample pilot --as carol",
    "suggest train": "issuemine suggest train --sample study",
    "suggest evaluate": "issuemine suggest evaluate --cv 5 --json",
    "suggest show": "issuemine suggest show pytorch/pytorch#49403",
    "suggest mode": "issuemine suggest mode --sample study --hide   # keep the first rater blind",
    "analyze": "issuemine analyze --sample study --out report/",
    "repro extract": "issuemine repro extract --sample study",
    "repro run": "issuemine repro run --sample study --env era --jobs 2   # each issue in the stack of its time",
    "repro show": "issuemine repro show pytorch/pytorch#49403",
    "repro report": "issuemine repro report --sample study --against old",
    "repro file": "issuemine repro file snippet.py; echo $?   # 0 passes, 10 crash, 12 wrong-model...",
    "repro env list": "issuemine repro env list   # the stacks of their time, built or not, and their size",
    "repro env build": "issuemine repro env build torch-1-13",
    "repro env prune": "issuemine repro env prune torch-1-8 tf-2-4   # or --all",
    "repro bisect": "issuemine repro bisect pytorch/pytorch#49403   # or --sample study",
    "demo": "issuemine demo --out issuemine-demo",
    "difftest run": "issuemine difftest run --converter torch.onnx --nodes 15..100:5 --per-size 20 --seed 1 --jobs 2",
    "difftest report": "issuemine difftest report --format csv > table11.csv",
    "difftest show": "issuemine difftest show 17",
    "difftest zoo": "issuemine difftest zoo --json   # then: difftest run --models zoo --architectures bert,gpt2",
    "difftest localize": "issuemine difftest localize 17 --out bug-report/",
    "difftest coverage": "issuemine difftest coverage my-converter-tests/ --campaign 2   # a folder of .onnx files",
    "quality suite": "issuemine quality suite --frameworks torch,keras --seed 0",
    "quality model": "issuemine quality model model.pt --input-shape 1,1,8,8 --data data.npz",
    "quality report": "issuemine quality report --format csv > quality.csv",
}


BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s")


def reflow(text: str) -> str:
    """Help text written with line breaks (docstrings wrap at the source's width) as paragraphs the
    terminal wraps itself: lines of a paragraph are joined; list items stay items."""
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for line in paragraph.splitlines():
            if lines and not BULLET.match(line):
                lines[-1] = f"{lines[-1]} {line.strip()}"
            else:
                lines.append(line.strip() if not BULLET.match(line) else line.rstrip())
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _with_examples(command: Any, path: str) -> Any:
    """Put each command's example in its --help epilog (groups: every subcommand's), and reflow its
    help and its options' help."""
    if path in EXAMPLES:
        command.epilog = f"Example: {EXAMPLES[path]}"
    if command.help:
        command.help = reflow(command.help)
    for param in getattr(command, "params", []):
        if getattr(param, "help", None):
            param.help = reflow(param.help)
    for name, sub in (getattr(command, "commands", None) or {}).items():
        _with_examples(sub, f"{path} {name}")
    return command


def load_command(name: str) -> Any:
    """The click command (or group) of ``name``, importing its command group's module."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(f"issuemine.cli.{module}"), attribute)
    if attribute.endswith("_app"):
        group = typer.main.get_group(target)
        group.name = name
        return _with_examples(group, name)
    one = typer.Typer()
    one.command(name)(target)
    return _with_examples(typer.main.get_command(one), name)


class LazyGroup(TyperGroup):
    """The root command: subcommands are loaded when used, not when listed."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        if self._listing:  # the root's --help needs only names and short help
            short = COMMANDS[cmd_name][2]
            return TyperCommand(name=cmd_name, short_help=short, help=short)
        return load_command(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def _one_line_usage_error(exc: Any) -> None:
    """A usage error (a missing option, a bad value) as one line, like every other error, instead
    of typer's usage line, hint and box; user data in it is printed as text, never as markup.
    ``exc`` is click's ClickException, which typer now carries as its own copy of click."""
    from rich.text import Text

    from issuemine.cli.common import err, printable

    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    err.print(Text.assemble(("error:", "bold red"), " ", printable(exc.format_message()), hint), soft_wrap=True)


# typer prints click's usage errors through this function of its rich_utils when Rich is there.
typer.rich_utils.rich_format_error = _one_line_usage_error  # type: ignore[assignment]

_display_type = typer.core._TyperParameter.display_type


def _display_type_of_value(self: Any, ctx: Any) -> str:
    """--help shows an option's value type (``<int>``); a flag takes no value, so it shows none
    (typer would print ``--version <bool>``)."""
    if getattr(self, "is_flag", False) and getattr(self, "is_bool_flag", False):
        return ""
    return _display_type(self, ctx)


typer.core._TyperParameter.display_type = _display_type_of_value  # type: ignore[method-assign]

app = typer.Typer(
    name="issuemine",
    cls=LazyGroup,
    help="Mine, label, analyze and reproduce deep-learning model converter failures from GitHub issues.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        typer.echo(f"issuemine {__version__}")
        raise typer.Exit(0)


def main() -> None:
    app()
