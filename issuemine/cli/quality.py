"""Quality commands: the offline suite, a user's own model, and the report."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from issuemine.cli.common import (
    DbOption,
    ReportFormatOption,
    check_report_format,
    database,
    err,
    handle_errors,
    print_csv,
    print_json,
    print_markdown,
)
from issuemine.errors import IssuemineError

quality_app = typer.Typer(
    help="Converted-model quality: accuracy, latency, memory, size and robustness before and after conversion.",
    no_args_is_help=True,
)
WorkdirOption = typer.Option(
    Path("issuemine-quality"),
    "--workdir",
    help="Where trained models and converted files go (kept out of the database; training reproduces them).",
)
QuickOption = typer.Option(
    False, "--quick", help="Fewer timing rounds, one thread setting, one ε, 60 attacked inputs: a fast check."
)


def _need_extra() -> None:
    missing = []
    for module, package in (
        ("torch", "torch"),
        ("onnxruntime", "onnxruntime"),
        ("art", "adversarial-robustness-toolbox"),
        ("coremltools", "coremltools"),
        ("sklearn", "scikit-learn"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise IssuemineError(
            f"quality needs {', '.join(missing)}: pip install 'issuemine[repro,quality]' (scripts/setup.sh does)"
        )


@contextlib.contextmanager
def framework_output_to(log: Path) -> Iterator[Console]:
    """What TensorFlow, torch's exporters and coremltools print while they load and convert (C++
    logs, version notices, their progress bars: some 45 lines a run) goes to ``log``: the process's
    descriptors and Python's streams alike. Yields a console on the terminal for this command's own
    progress; errors are printed once the frameworks' output is back where it was."""
    import logging
    import os
    import shutil
    import sys
    import tempfile
    import warnings

    # Read by the frameworks when they load; set for this command only (the caller's values stay).
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "2", "TQDM_DISABLE": "1", "GRPC_VERBOSITY": "ERROR"}
    added = [name for name in quiet if name not in os.environ]
    os.environ.update({name: quiet[name] for name in added})
    streams = (sys.stdout, sys.stderr)
    for stream in streams:
        stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminal = os.fdopen(os.dup(saved[2]), "w", buffering=1, encoding="utf-8")
    loggers = {n: logging.getLogger(n) for n in ("tensorflow", "absl", "torch", "coremltools", "tf2onnx")}
    levels = {n: lg.level for n, lg in loggers.items()}
    # Written aside and kept in the work folder only if the run made one: a command refused for a bad
    # argument leaves no folder behind.
    with (
        tempfile.NamedTemporaryFile("w", encoding="utf-8", buffering=1, suffix=".log", delete=False) as sink,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        for lg in loggers.values():
            lg.setLevel(logging.ERROR)
        sys.stdout = sys.stderr = sink
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield Console(file=terminal, stderr=True)
        finally:
            sink.flush()
            sys.stdout, sys.stderr = streams
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            terminal.close()
            for n, lg in loggers.items():
                lg.setLevel(levels[n])
            for name in added:
                os.environ.pop(name, None)
            sink.close()
            if log.parent.is_dir():
                shutil.move(sink.name, log)
            else:
                os.unlink(sink.name)


def _settings(quick: bool) -> Any:
    from issuemine.quality.measure import Settings

    return Settings.quick() if quick else Settings()


@quality_app.command("suite")
@handle_errors
def suite_cmd(
    frameworks: str = typer.Option("torch,keras", "--frameworks", help="Comma-separated: torch, keras."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data split, the weights and the training order."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (default: torch 30, keras 15)."),
    quick: bool = QuickOption,
    workdir: Path = WorkdirOption,
    db: str | None = DbOption,
) -> None:
    """Train the bundled small models (MLP, CNN, CNN with batch norm and dropout) on scikit-learn's
    digits, convert them (torch.onnx TorchScript and dynamo, tf2onnx, Core ML), measure and store.

    Latency and memory are measured in a fresh process per runtime; every result is stored as it is
    taken. `issuemine quality report` prints the table.
    """
    from issuemine.quality.suite import run_suite

    chosen = [f.strip() for f in frameworks.split(",") if f.strip()]
    extra = {f: epochs for f in chosen} if epochs else None
    steps = [0]

    def progress(message: str, status: Any) -> None:
        if message.startswith("training "):
            steps[0] += 1
        status.update(f"[{steps[0]}/{len(chosen) * 3}] {message}")

    log = workdir / "frameworks.log"
    with framework_output_to(log) as console, console.status("quality suite: loading the frameworks") as status:
        _need_extra()
        result = run_suite(
            database(db),
            chosen,
            workdir,
            seed,
            _settings(quick),
            extra,
            progress=lambda message: progress(message, status),
        )
    where = ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items())
    err.print(f"suite {result.suite}: {len(result.models)} models, {result.rows} measurements ({where})")
    err.print(f"the frameworks' own warnings and logs: {log}")
    _print_report(database(db), result.suite, "md")


@quality_app.command("model")
@handle_errors
def model_cmd(
    path: Path = typer.Argument(..., help="TorchScript (.pt), ExportedProgram (.pt2) or Keras (.keras, .h5) file."),
    input_shape: str = typer.Option(..., "--input-shape", help="The model's input shape, e.g. 1,1,8,8."),
    data: Path | None = typer.Option(
        None, "--data", help=".npz with 'x' (inputs) and optionally 'y' (labels: accuracy and attacks)."
    ),
    quick: bool = QuickOption,
    workdir: Path = WorkdirOption,
    db: str | None = DbOption,
) -> None:
    """Convert and measure your own model: the same metrics as the suite, on your data.

    Without --data the model runs on random inputs of --input-shape: agreement, latency, memory and
    size are measured; accuracy and attack success need labels.
    """
    from issuemine.quality.suite import run_user_model

    try:
        shape = tuple(int(part) for part in input_shape.split(","))
    except ValueError:
        raise IssuemineError(
            f"--input-shape {input_shape!r}: give integers separated by commas, e.g. 1,1,8,8"
        ) from None
    if len(shape) < 2 or min(shape) < 1:
        raise IssuemineError(f"--input-shape {input_shape!r}: a batch size and at least one dimension, all positive")
    with framework_output_to(workdir / "frameworks.log") as console, console.status(f"measuring {path}") as status:
        _need_extra()
        result = run_user_model(database(db), path, shape, workdir, data, _settings(quick), lambda m: status.update(m))
    err.print(f"{result.suite}: {result.rows} measurements of {path}")
    _print_report(database(db), result.suite, "md")


@quality_app.command("report")
@handle_errors
def report_cmd(
    suite: str | None = typer.Option(None, "--suite", help="A suite run (default: the latest)."),
    fmt_: str = ReportFormatOption,
    db: str | None = DbOption,
) -> None:
    """The table: per model × target, accuracy, changed predictions, max |Δ|, latency, memory, size,
    attack success; latency, memory and size also as target/original ratios from the same run."""
    check_report_format(fmt_)
    _print_report(database(db, reads=True), suite, fmt_)


def _print_report(db: Any, suite: str | None, fmt_: str) -> None:
    from issuemine.quality import store

    rows = store.measurements(db, suite)
    report = store.report_rows(rows)
    if fmt_ == "json":
        print_json({"suite": rows[0]["suite"], "versions": rows[0]["versions"], "rows": report, "measurements": rows})
        return
    flat = [{k: v for k, v in r.items() if not k.endswith("range")} for r in report]
    if fmt_ == "csv":
        print_csv(flat)
        return
    # Memory is the inference increment (what running the model adds), not the process peak, which
    # mostly measures importing the framework; robustness per attack and ε, with the examples that
    # fool only one of the two models. Columns no target measured are left out.
    robust = store.robustness_columns(rows)
    columns = [
        "model",
        "target",
        "accuracy",
        "changed",
        "max |Δ|",
        "p50 ms b1 t1",
        "p50 ms b1 t1 ×",
        "p50 ms b32 t1",
        "p50 ms b32 t1 ×",
        "inference MB",
        "inference MB ×",
        "size KB",
        "size KB ×",
        *(heading for heading, _, _ in robust),
        "note",
    ]
    columns = [c for c in columns if c in ("model", "target", "note") or any(r.get(c) is not None for r in report)]
    print_markdown(f"Quality, suite {rows[0]['suite']}", columns, [[_cell(r.get(c)) for c in columns] for r in report])


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
