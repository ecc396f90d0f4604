"""Pipeline commands: the end-to-end demo on the bundled study data."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from issuemine.cli.common import JsonOption, fmt, handle_errors, out, print_json, table


@handle_errors
def demo_cmd(
    out_dir: Path = typer.Option(Path("issuemine-demo"), "--out", help="Folder for the demo database."),
    as_json: bool = JsonOption,
) -> None:
    """Run the end-to-end job on the bundled study data (no network) and print the status."""
    from issuemine.cli.corpus import status_cmd
    from issuemine.pipeline.demo import run_demo

    result = run_demo(out_dir)
    if as_json:
        print_json(
            {
                "database": str(result.database),
                "loaded": result.loaded,
                "status": result.status.as_dict(),
                "agreement": {s: [a.as_dict() for a in rows] for s, rows in result.agreement.items()},
                "final_labels": result.final_labels,
                "report": str(result.report),
                "tables": result.tables,
                "repro": result.repro,
            }
        )
        return
    out.print(f"loaded {result.loaded} study issues (as stubs, with their labels) into {result.database}")
    status_cmd(db=str(result.database), as_json=False)
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
