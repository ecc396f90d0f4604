"""Analysis commands: the study's tables (and, with --out, everything in a folder)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from issuemine.analysis import opsets, selection, tables, trends
from issuemine.cli.common import DbOption, catalog, database, err, handle_errors, out
from issuemine.cli.labeling import TaxonomyOption
from issuemine.domain.taxonomy import load_taxonomy
from issuemine.errors import IssuemineError
from issuemine.pipeline import report

# The ISSTA 2024 paper's names for the tables and the figure this command computes.
PAPER_NAMES = {"table8": "stages", "table9": "symptoms", "table10": "cause-by-symptom", "figure6": "opset-trend"}


@handle_errors
def analyze_cmd(
    table: str | None = typer.Option(
        None,
        "--table",
        help=f"One table to print: {', '.join([*tables.TABLES, 'opset-trend'])}; the paper's names "
        f"({', '.join(PAPER_NAMES)}) also work.",
    ),
    fmt: str = typer.Option("md", "--format", help="md, csv, latex or json."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Write every table (md, csv, LaTeX, JSON), every figure (PNG, PDF) and report.html here."
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="With --out: also draw the figures."),
    titles: bool = typer.Option(
        False,
        "--titles/--no-titles",
        help="With --out: titles inside the figures (off by default: the report's headings and a paper's captions "
        "name them).",
    ),
    sample: str | None = typer.Option(None, "--sample", help="Sample to analyze (needed when several have labels)."),
    converter: list[str] | None = typer.Option(None, "--converter", help="Only these converter(s)."),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
) -> None:
    """The study's tables from final labels: stages (Table 8), symptoms (Table 9), cause × symptom
    (Table 10), causes and cause sub-types, each with Wilson 95% intervals."""
    if fmt not in tables.FORMATS:
        raise IssuemineError(f"unknown --format {fmt!r}: use {', '.join(tables.FORMATS)}")
    table = PAPER_NAMES.get(table.lower(), table) if table else table
    if table is not None and table not in (*tables.TABLES, "opset-trend"):
        raise IssuemineError(f"unknown --table {table!r}: use {', '.join([*tables.TABLES, 'opset-trend'])}")
    tax, _ = load_taxonomy(taxonomy_dir)
    database_ = database(db, reads=True)
    if out_dir is not None:
        built = report.build(
            database_, tax, catalog(), out_dir, sample, tuple(converter or ()), with_figures=figures, titles=titles
        )
        err.print(
            f"sample {built.sample!r}: {built.issues} labeled issues; wrote {len(built.files)} files to "
            f"{out_dir} (report: {built.html})"
        )
        if table is None:
            return
    _, final = selection.load_final(database_, tax, sample, catalog(), converter or ())
    names = [table] if table else list(tables.TABLES)
    for key in names:
        if key == "opset-trend":
            result = trends.rq3(final, opsets.load_history())
            err.print(
                f"Spearman rho (operator changes vs failures until the next release): {result.rho_all:.2f}; "
                f"incompatibility + type share: {result.rho_share:.2f} ({result.dated} dated failures)"
            )
            text = tables.render(result.table.set_index("release"), fmt)
        else:
            text = tables.render(tables.TABLES[key](final, tax), fmt)
        if fmt == "md" and len(names) > 1:
            out.print(f"\n## {key}\n", markup=False)
        sys.stdout.write(text + "\n")
