"""The ``issuemine`` command: a thin shell over the library; each command calls one function."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from issuemine import __version__
from issuemine.cli import analysis, corpus, labeling, repro
from issuemine.cli.common import JsonOption, fmt, handle_errors, out, print_json, table
from issuemine.demo import run_demo

app = typer.Typer(
    name="issuemine",
    help="Mine, label, analyze and reproduce deep-learning model converter failures from GitHub issues.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("converters")(corpus.converters_cmd)
app.command("fetch")(corpus.fetch_cmd)
app.command("filter")(corpus.filter_cmd)
app.command("sample")(corpus.sample_cmd)
app.command("status")(corpus.status_cmd)
app.command("load")(corpus.load_cmd)
app.command("export")(corpus.export_cmd)
app.add_typer(labeling.taxonomy_app, name="taxonomy")
app.add_typer(labeling.labels_app, name="labels")
app.command("assign")(labeling.assign_cmd)
app.command("label")(labeling.label_cmd)
app.command("agree")(labeling.agree_cmd)
app.command("adjudicate")(labeling.adjudicate_cmd)
app.command("analyze")(analysis.analyze_cmd)
app.add_typer(repro.repro_app, name="repro")


@app.command("demo")
@handle_errors
def demo_cmd(
    out_dir: Path = typer.Option(Path("issuemine-demo"), "--out", help="Folder for the demo database."),
    as_json: bool = JsonOption,
) -> None:
    """Run the end-to-end job on the bundled study data (no network) and print the status."""
    result = run_demo(out_dir)
    if as_json:
        print_json(
            {
                "database": str(result.database),
                "loaded": result.loaded,
                "status": result.status,
                "agreement": {s: [a.as_dict() for a in rows] for s, rows in result.agreement.items()},
                "final_labels": result.final_labels,
                "report": str(result.report),
                "tables": result.tables,
                "repro": result.repro,
            }
        )
        return
    out.print(f"loaded {result.loaded} study issues (as stubs, with their labels) into {result.database}")
    corpus.status_cmd(db=str(result.database), as_json=False)
    for sample, rows in result.agreement.items():
        out.print(
            table(
                f"Agreement, sample {sample!r}",
                ["dimension", "converter", "n", "raters", "Cohen's κ", "Krippendorff's α"],
                [(a.dimension, a.scope, a.n, ", ".join(a.raters), fmt(a.kappa), fmt(a.alpha)) for a in rows],
            )
        )
    out.print(f"final labels: {result.final_labels} issues of sample 'study'")
    for title, text in result.tables.items():
        out.print(f"\n{title}", markup=False)
        sys.stdout.write(text + "\n")
    repro = result.repro
    if "skipped" in repro:
        out.print(f"\nreproduction of the example snippets skipped: {repro['skipped']}")
    else:
        versions = ", ".join(f"{k} {v}" for k, v in repro["versions"].items())
        out.print(f"\nExample snippets re-run in the sandbox ({repro['sandbox']}; {versions}):", markup=False)
        for r in repro["runs"]:
            verdict = r["verdict"] + (f" at {r['stage']}" if r["stage"] else "")
            out.print(f"  {r['example']:28} {verdict:32} {(r['reason'] or '')[:70]}", markup=False, highlight=False)
    out.print(f"\ndone: the database is {result.database}; the report is {result.report}")


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    if version:
        out.print(f"issuemine {__version__}")
        raise typer.Exit(0)


def main() -> None:
    app()
