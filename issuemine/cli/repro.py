"""Reproduction commands (extraction so far)."""

from __future__ import annotations

import typer

from issuemine.cli.common import DbOption, JsonOption, database, handle_errors, out, print_json, table
from issuemine.repro.candidates import extract_issues

repro_app = typer.Typer(help="Re-run the conversions reported in issues.", no_args_is_help=True)


@repro_app.command("extract")
@handle_errors
def extract_cmd(
    sample: str | None = typer.Option(None, "--sample", help="Only this sample's issues (default: every issue)."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Find runnable conversion snippets in issue bodies and comments, or record why there is none.

    Code is read, never run: fenced and indented blocks, tracebacks kept as evidence, converter calls
    recognized (torch.onnx.export / dynamo_export, tf2onnx.convert.from_*, python -m tf2onnx.convert),
    missing standard imports added, external files, GPU use and removed APIs reported.
    """
    report = extract_issues(database(db), sample)
    if as_json:
        print_json(report.as_dict())
        return
    out.print(f"{report.issues} issues, {report.with_text} with text, {report.runnable} runnable candidates")
    if report.conversions:
        out.print(table("Converter calls found", ["call", "issues"], report.conversions.most_common()))
    if report.reasons:
        out.print(table("Why no runnable candidate", ["reason", "issues"], report.reasons.most_common()))
