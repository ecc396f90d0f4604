"""Analysis commands: the study's tables (and, with --out, everything in a folder)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from issuemine.analysis import run, tables
from issuemine.cli.common import DbOption, catalog, database, err, handle_errors, out
from issuemine.cli.labeling import TaxonomyOption
from issuemine.errors import IssuemineError
from issuemine.taxonomy import load_taxonomy


@handle_errors
def analyze_cmd(
    table: str | None = typer.Option(None, "--table", help=f"One table to print: {', '.join(run.TABLES)}."),
    fmt: str = typer.Option("md", "--format", help="md, csv, latex or json."),
    out_dir: Path | None = typer.Option(None, "--out", help="Write every table in every format to this folder."),
    sample: str | None = typer.Option(None, "--sample", help="Sample to analyze (needed when several have labels)."),
    converter: list[str] | None = typer.Option(None, "--converter", help="Only these converter(s)."),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
) -> None:
    """The study's tables from final labels: stages (Table 8), symptoms (Table 9), cause × symptom
    (Table 10), causes and cause sub-types, each with Wilson 95% intervals."""
    if fmt not in run.FORMATS:
        raise IssuemineError(f"unknown --format {fmt!r}: use {', '.join(run.FORMATS)}")
    if table is not None and table not in run.TABLES:
        raise IssuemineError(f"unknown --table {table!r}: use {', '.join(run.TABLES)}")
    tax, _ = load_taxonomy(taxonomy_dir)
    name, final = run.load_final(database(db), tax, sample, catalog(), converter or ())
    if out_dir is not None:
        written = run.write_tables(final, tax, out_dir)
        err.print(f"sample {name!r}: {len(final)} labeled issues; wrote {len(written)} files to {out_dir}")
    names = [table] if table else ([] if out_dir is not None else list(run.TABLES))
    for key in names:
        text = tables.render(run.TABLES[key](final, tax), fmt)
        if fmt == "md" and len(names) > 1:
            out.print(f"\n## {key}\n", markup=False)
        sys.stdout.write(text + "\n")
