"""Differential-testing commands: run (or resume) a campaign, report Table 11, show a model."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from issuemine.cli.common import (
    DbOption,
    JsonOption,
    ReportFormatOption,
    check_report_format,
    database,
    err,
    handle_errors,
    out,
    print_csv,
    print_json,
    table,
)
from issuemine.errors import IssuemineError

difftest_app = typer.Typer(
    help="Differential testing of converters: generate models (NNSmith), convert, compare, count (Table 11).",
    no_args_is_help=True,
)


def _need_extra() -> None:
    try:
        import nnsmith  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise IssuemineError(
            "difftest needs NNSmith and onnxruntime: pip install 'issuemine[repro,difftest]' (scripts/setup.sh does)"
        ) from None


@difftest_app.command("run")
@handle_errors
def run_cmd(
    converter: str = typer.Option("torch.onnx", "--converter", help="torch.onnx or tf2onnx."),
    nodes: str = typer.Option("15..100:5", "--nodes", help="Model sizes: a range 15..100:5, a list 15,30, or 20."),
    per_size: int = typer.Option(20, "--per-size", help="Models per size."),
    seed: int = typer.Option(1, "--seed", help="Campaign seed: the same seed gives the same models."),
    exporter: str | None = typer.Option(
        None, "--exporter", help="torch.onnx: torchscript (default) or dynamo; tf2onnx: tf2onnx."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset to export to."),
    inputs: int = typer.Option(100, "--inputs", help="Random input sets per model, run in both framework and runtime."),
    dtypes: str = typer.Option(
        "float32", "--dtypes", help="Tensor types to generate, comma-separated (the study: float32), or all."
    ),
    policy: str | None = typer.Option(
        None, "--policy", help="Tolerance policy that decides a mismatch (default: the study's, max |Δ| < 1e-7)."
    ),
    jobs: int = typer.Option(2, "--jobs", help="Worker processes."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds one model may take before it counts as a hang."),
    limit: int | None = typer.Option(None, "--limit", help="Stop after this many models (the next run resumes)."),
    out_dir: Path = typer.Option(
        Path("issuemine-difftest"), "--out", help="Where ONNX files of failing models and worker logs go."
    ),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Generate, convert, check, load and compare models; every model's outcome is stored as it
    finishes, and running the same campaign again resumes it.

    Each model runs in a worker process with a time limit: a converter or runtime that crashes,
    aborts or hangs becomes that model's outcome and the worker is replaced. Generated models are
    not hostile code, so they run outside the bubblewrap sandbox.
    """
    _need_extra()
    from issuemine.difftest.campaign import EXPORTERS, Plan, run

    plan = Plan(
        converter,
        exporter or EXPORTERS.get(converter, ("",))[0],
        opset,
        seed,
        _sizes(nodes),
        per_size,
        inputs,
        policy or "study",
        [] if dtypes.strip() == "all" else [d.strip() for d in dtypes.split(",") if d.strip()],
    )
    plan.check()
    database_ = database(db)
    total = len(plan.sizes) * per_size
    start = time.perf_counter()
    with Progress(
        TextColumn("[bold]difftest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}  {task.fields[counts]}"),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("models", total=total, rate="", counts="")
        ran = 0

        def progress(result: dict[str, Any], counts: Counter[str]) -> None:
            nonlocal ran
            ran += 1
            minutes = (time.perf_counter() - start) / 60
            counts_text = ", ".join(f"{k} {v}" for k, v in counts.most_common())
            bar.update(task, advance=1, rate=f"{ran / minutes:.0f} models/min" if minutes else "", counts=counts_text)

        report = run(
            database_,
            plan,
            out_dir,
            jobs,
            timeout,
            progress=progress,
            limit=limit,
            started=lambda planned: bar.update(task, completed=planned.skipped),
        )
    if as_json:
        print_json({**report.__dict__, "outcomes": dict(report.outcomes)})
        return
    err.print(
        f"campaign {report.campaign}: {report.ran} models run, {report.skipped} already done (resumed), "
        f"{report.planned} planned; {report.replaced_workers} worker(s) replaced; {report.seconds:.0f} s"
    )
    _print_table(database_, [report.campaign], "md")


@difftest_app.command("report")
@handle_errors
def report_cmd(
    campaign_id: int | None = typer.Option(None, "--campaign", help="One campaign (default: every campaign)."),
    policy: str | None = typer.Option(
        None, "--policy", help="Decide mismatches by this tolerance policy (default: each campaign's own)."
    ),
    fmt_: str = ReportFormatOption,
    db: str | None = DbOption,
) -> None:
    """Table 11: outcomes (conversion failure, ONNX Runtime failure, mismatch, success) per converter,
    exporter and model size, with the total per campaign. Every policy's verdict is stored with each
    model, so --policy recounts without re-running."""
    check_report_format(fmt_)
    _print_table(database(db), [campaign_id] if campaign_id else None, fmt_, policy)


def _print_table(db: Any, ids: list[int] | None, fmt_: str, policy: str | None = None) -> None:
    from issuemine.difftest.campaign import table_11

    rows = table_11(db, ids, policy)
    if not rows:
        raise IssuemineError("no campaign yet: run `issuemine difftest run`")
    if fmt_ == "json":
        print_json(rows)
        return
    if fmt_ == "csv":
        print_csv(rows, missing=0)
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    out.print(table("Table 11: differential-testing outcomes", columns, [[r.get(c, 0) for c in columns] for r in rows]))


@difftest_app.command("show")
@handle_errors
def show_cmd(
    model_id: int = typer.Argument(..., help="A model's id (difftest_models.id; `difftest report --format json`)."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """One model: seed and size, operators, outcome, the error or the max |Δ| and differing outputs,
    the verdict under every tolerance policy, and where its time went."""
    from issuemine.db.models import DifftestModel

    with database(db).session() as session:
        row = session.get(DifftestModel, model_id)
        if row is None:
            raise IssuemineError(f"no difftest model {model_id}")
        data = {c.name: getattr(row, c.name) for c in DifftestModel.__table__.columns}
    if as_json:
        print_json(data)
        return
    out.print(
        f"[bold]model {model_id}[/] of campaign {data['campaign_id']}: {data['node_count']} operators "
        f"(asked {data['nodes']}), seed {data['seed']} — [bold]{data['outcome']}[/]",
        highlight=False,
    )
    out.print(f"operators: {' → '.join(data['operators']) or '-'}", highlight=False, soft_wrap=True)
    if data["stage"]:
        out.print(f"stage: {data['stage']}", highlight=False)
    if data["error"]:
        out.print(f"error: {data['error']}", highlight=False, soft_wrap=True, markup=False)
    if data["max_abs_diff"] is not None:
        out.print(f"max |Δ|: {data['max_abs_diff']:.3g}; outputs beyond the policy: {data['differing'] or 'none'}")
    if data["policies"]:
        out.print("policies: " + ", ".join(f"{k} {'ok' if v else 'mismatch'}" for k, v in data["policies"].items()))
    out.print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in data["durations"].items()), highlight=False)
    out.print(f"ONNX file: {data['onnx_path'] or 'not kept (regenerate from the seed and size)'}", highlight=False)


def _sizes(text: str) -> list[int]:
    from issuemine.difftest.campaign import parse_sizes

    return parse_sizes(text)
