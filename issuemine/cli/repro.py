"""Reproduction commands: extract, run, show, report, file, env."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from issuemine import interrupt
from issuemine.cli.common import (
    DbOption,
    JsonOption,
    database,
    err,
    fmt,
    handle_errors,
    out,
    print_json,
    printable,
    table,
)
from issuemine.errors import IssuemineError
from issuemine.repro import environments
from issuemine.repro.candidates import extract_issues
from issuemine.repro.runs import Outcome, RunOptions, run_issues, run_script
from issuemine.repro.sandbox import KINDS, Limits

if TYPE_CHECKING:
    from issuemine.repro.tieback import EnvComparison

repro_app = typer.Typer(help="Re-run the conversions reported in issues, sandboxed, and classify what happens.")
env_app = typer.Typer(help="Named environments (virtualenvs with package pins) to re-run snippets in.")
repro_app.add_typer(env_app, name="env")


# `repro file`'s exit status per verdict (documented in its --help).
FILE_EXIT_CODES = {
    "passes": 0,
    "crash": 10,
    "ort-load-fail": 11,
    "wrong-model": 12,
    "hang": 13,
    "converted-not-compared": 14,
    "not-runnable": 15,
    "sandbox-violation": 16,
}


@dataclass
class SandboxSettings:
    """The options `repro run` and `repro file` share: where and how a snippet runs."""

    timeout: float
    memory_mb: int
    env: str
    envs_file: Path | None
    sandbox: str
    require_sandbox: bool
    cold: bool
    policy: str | None

    def run_options(self, env_name: str | None = None, **more: Any) -> RunOptions:
        return RunOptions(
            env=environments.resolve(env_name or self.env, self.envs_file),
            limits=Limits(timeout=self.timeout, memory_mb=self.memory_mb),
            sandbox=self.sandbox,
            require_sandbox=self.require_sandbox,
            warm=not self.cold,
            policy=self.policy,
            **more,
        )


_DEFAULT_LIMITS = Limits()
EnvsFileOption = typer.Option(
    None, "--envs-file", help="Environments file (default: $ISSUEMINE_REPRO_ENVS, else ./repro-envs.toml)."
)
_SANDBOX_OPTIONS: list[tuple[str, Any, Any]] = [
    (
        "timeout",
        float,
        typer.Option(
            _DEFAULT_LIMITS.timeout,
            "--timeout",
            min=1,
            help="Wall-clock seconds per snippet before it counts as a hang.",
        ),
    ),
    (
        "memory_mb",
        int,
        typer.Option(
            _DEFAULT_LIMITS.memory_mb, "--memory-mb", min=256, help="Address-space limit per snippet process (MiB)."
        ),
    ),
    (
        "env",
        str,
        typer.Option(
            environments.CURRENT,
            "--env",
            help=(
                "Environment to run in: 'current' (issuemine's own), a stack of `repro env list`, a name "
                "from the envs file, or 'era' (repro run: each issue in the stack of its time)."
            ),
        ),
    ),
    (
        "envs_file",
        Path | None,
        EnvsFileOption,
    ),
    (
        "sandbox",
        str,
        typer.Option(
            "auto", "--sandbox", help=f"Isolation: {', '.join(KINDS)} (auto: bwrap, else the weaker unshare fallback)."
        ),
    ),
    (
        "require_sandbox",
        bool,
        typer.Option(False, "--require-sandbox", help="Refuse to run unless bubblewrap isolation works."),
    ),
    (
        "cold",
        bool,
        typer.Option(
            False, "--cold", help="Start a fresh sandboxed interpreter per snippet instead of forking a warm one."
        ),
    ),
    (
        "policy",
        str | None,
        typer.Option(
            None,
            "--policy",
            help="Tolerance policy deciding wrong-model (data/tolerance-policies.toml; default torch-testing).",
        ),
    ),
]


ExecutorOption = typer.Option(
    "threads",
    "--executor",
    help="threads: sandboxes on this machine; ray: the same sandboxes on Ray workers, one warm sandbox per "
    "stack per worker (pip install 'issuemine\\[ray]').",
)
AddressOption = typer.Option(
    None, "--address", help="With --executor ray: join this cluster (HOST:PORT); default: a local Ray on loopback."
)


def _executor(executor: str, address: str | None) -> dict[str, Any]:
    if executor not in ("threads", "ray"):
        raise IssuemineError(f"--executor {executor!r}: choose threads or ray")
    if address and executor != "ray":
        raise IssuemineError("--address joins a Ray cluster: give it with --executor ray")
    return {"executor": executor, "address": address}


def sandbox_options(fn: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared sandbox options, handed to it as one ``settings`` argument."""
    names = [name for name, _, _ in _SANDBOX_OPTIONS]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        settings = SandboxSettings(**{name: kwargs.pop(name) for name in names})
        fn(*args, settings=settings, **kwargs)

    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "settings"]
    shared = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=o, annotation=t) for n, t, o in _SANDBOX_OPTIONS
    ]
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
    # Shown in --help before the options every command has (--db, --json).
    cut = next((i for i, p in enumerate(keyword) if p.name in ("db", "as_json")), len(keyword))
    signature = inspect.Signature(keyword[:cut] + shared + keyword[cut:])
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    return wrapper


@repro_app.command("extract")
@handle_errors
def extract_cmd(
    sample: str | None = typer.Option(None, "--sample", help="Only this sample's issues (default: every issue)."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Find runnable conversion snippets in issue bodies and comments, or record why there is none.

    Code is read, never run: fenced and indented blocks, tracebacks kept as evidence, converter calls
    recognized however they are imported (the entry points of every converter file: torch.onnx.export /
    dynamo_export, tf2onnx.convert.from_*, python -m tf2onnx.convert, and your own),
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
    if report.repairs:
        out.print(table("Mechanical repairs (see `repro show`)", ["repair", "count"], report.repairs.most_common()))


@repro_app.command("run")
@handle_errors
@sandbox_options
def run_cmd(
    sample: str | None = typer.Option(None, "--sample", help="Only this sample's candidates (default: all)."),
    jobs: int = typer.Option(1, "--jobs", min=1, max=64, help="Sandboxes running at once."),
    rerun: bool = typer.Option(False, "--rerun", help="Run again even where this environment already has a verdict."),
    build: bool = typer.Option(
        True, "--build/--no-build", help="With --env era: build a missing stack (downloads), or leave its issues out."
    ),
    executor: str = ExecutorOption,
    address: str | None = AddressOption,
    db: str | None = DbOption,
    as_json: bool = JsonOption,
    settings: SandboxSettings | None = None,
) -> None:
    """Run each extracted candidate in the sandbox and store its verdict for this environment.

    `--env era` runs each issue in the stack of its time (data/stacks.toml; `repro env list`): the
    one of the versions its thread reports, else the newest released before it was opened. Missing
    stacks are built on first use (cached), companion packages the snippet imports (torchvision,
    timm, tensorflow-addons...) are installed from a vetted allowlist at the stack's own pins, and
    each run records its stack and why. Runs are stored under the stack's name.

    Verdicts: crash (with the stage), ort-load-fail, wrong-model (under the tolerance policy), hang,
    passes, not-runnable (with the reason), sandbox-violation. Resumable: candidates already run
    with the same script in the same environment are skipped; Ctrl-C keeps every stored verdict.
    Run `issuemine repro extract` first.
    """
    assert settings is not None
    ray = _executor(executor, address)
    from issuemine.repro.runs import require_extracted

    require_extracted(database(db), sample)  # before any progress bar: say what to run first
    if settings.env == environments.ERA:
        _run_era(settings, sample, jobs, rerun, build, db, as_json, ray)
        return
    options = settings.run_options(jobs=jobs, rerun=rerun, **ray)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with interrupt.deferred_interrupt(), Progress(*columns, console=err, disable=as_json) as progress:
        task = progress.add_task("running snippets", total=0)

        def started(total: int) -> None:
            progress.update(task, total=total)

        def finished(outcome: Outcome) -> None:
            progress.update(task, advance=1, description=f"last: {outcome.verdict.verdict}")

        report = run_issues(database(db), options, sample, started, finished)
    if as_json:
        print_json(report.as_dict())
        return
    out.print(
        f"{report.candidates} candidates: {report.ran} run, {report.skipped} already run in {settings.env!r} "
        f"(sandbox: {report.sandbox})"
    )
    if report.verdicts:
        out.print(table("Verdicts", ["verdict", "issues"], report.verdicts.most_common()))
    if report.interrupted:
        err.print("interrupted: the verdicts above are stored; rerun the same command to go on")
        raise typer.Exit(130)


def _run_era(
    settings: SandboxSettings,
    sample: str | None,
    jobs: int,
    rerun: bool,
    build: bool,
    db: str | None,
    as_json: bool,
    ray: dict[str, Any],
) -> None:

    from issuemine.repro.era import run_era

    found = environments.load(settings.envs_file)
    options = settings.run_options(env_name=environments.CURRENT, jobs=jobs, rerun=rerun, **ray)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with interrupt.deferred_interrupt(), Progress(*columns, console=err, disable=as_json) as progress:
        task = progress.add_task("running snippets", total=0)

        def building(stack: environments.Environment) -> None:
            progress.update(task, description=f"building {stack.name} (once; downloads its pins)")

        def started(total: int) -> None:
            progress.update(task, total=(progress.tasks[0].total or 0) + total, description="running snippets")

        def finished(outcome: Outcome) -> None:
            progress.update(task, advance=1, description=f"last: {outcome.verdict.verdict}")

        report = run_era(database(db), options, sample, found, build, building, started, finished)
    if as_json:
        print_json(report.as_dict())
        return
    runs = report.runs
    out.print(f"{runs.candidates} candidates: {runs.ran} run, {runs.skipped} already run in their stack")
    out.print(table("Stacks of their time", ["stack", "issues"], sorted(report.stacks.items())))
    for stack, added in report.companions.items():
        out.print(f"installed into {stack}: {', '.join(added)}")
    if report.not_built:
        left = ", ".join(f"{k} ({v})" for k, v in report.not_built.items())
        err.print(f"left out, stack not built (--no-build): {left}")
    if runs.verdicts:
        out.print(table("Verdicts", ["verdict", "issues"], runs.verdicts.most_common()))
    if runs.interrupted:
        err.print("interrupted: the verdicts above are stored; rerun the same command to go on")
        raise typer.Exit(130)


@repro_app.command("file")
@handle_errors
@sandbox_options
def file_cmd(
    path: Path = typer.Argument(..., help="A Python snippet (.py), or an issue's markdown (.md) to extract one from."),
    as_json: bool = JsonOption,
    settings: SandboxSettings | None = None,
) -> None:
    """Run one file exactly as `repro run` runs an issue's snippet, and print the verdict (nothing is stored).

    For a maintainer triaging a new report: paste the reporter's code into a file (or save the
    issue as markdown) and see whether it still crashes, where, and on which versions.

    Each call starts its own sandbox (about twice the time of running the snippet with plain
    Python); for many snippets, `repro run` keeps warm sandboxes busy and is much faster.

    Exit status, for scripts: 0 passes, 10 crash, 11 ort-load-fail, 12 wrong-model, 13 hang,
    14 converted-not-compared, 15 not-runnable, 16 sandbox-violation; 2 for a usage error.
    """
    from issuemine.repro.extract import extract, missing_imports

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IssuemineError(f"cannot read {path}: {exc}") from exc
    if path.suffix.lower() in (".md", ".markdown", ".txt"):
        candidate = extract([("body", text)])
        if not candidate.runnable:
            raise IssuemineError(f"no runnable snippet in {path}: {candidate.reason}")
        script = candidate.script
    else:
        try:
            added = missing_imports(text)
        except SyntaxError as exc:
            raise IssuemineError(f"{path} is not valid Python: {exc}") from exc
        script = "\n".join(added) + ("\n\n" if added else "") + text
    assert settings is not None
    options = settings.run_options()
    with interrupt.deferred_interrupt():
        data = run_script(script, options)
    if as_json:
        print_json(data)
    else:
        _print_run(data)
    raise typer.Exit(FILE_EXIT_CODES.get(data["verdict"], 1))


def _print_provenance(provenance: dict[str, Any]) -> None:
    """Where the snippet came from and what was changed, one fact a line."""
    if not provenance:
        return
    if provenance.get("command"):
        out.print(f"from: {provenance.get('post')}, command line: {provenance['command']}", markup=False)
    elif provenance.get("post"):
        sources = ", ".join(provenance.get("block_sources") or [])
        out.print(f"from: {provenance['post']}, blocks {provenance.get('blocks')} ({sources})", markup=False)
    if provenance.get("exporter"):
        written = provenance.get("exporter_written_for")
        note = " (written before dynamo was the default: also run with it)" if written else ""
        out.print(f"exporter: {provenance['exporter']}{note}")
    if provenance.get("added_imports"):
        out.print("added imports: " + "; ".join(provenance["added_imports"]), markup=False)
    for repair in provenance.get("repairs") or []:
        out.print(f"repair ({repair.get('kind')}): {repair.get('detail')}", markup=False, highlight=False)
    if provenance.get("reported_versions"):
        versions = ", ".join(f"{k} {v}" for k, v in provenance["reported_versions"].items())
        out.print(f"the thread reports: {versions}", markup=False)
    for key, title in (("missing_files", "missing files"), ("removed_apis", "removed APIs")):
        if provenance.get(key):
            out.print(f"{title}: {', '.join(provenance[key])}", markup=False)


def _print_run(data: dict[str, Any]) -> None:
    stage = f" at stage {data['stage']}" if data.get("stage") else ""
    reason = f": {printable(data['reason'])}" if data.get("reason") else ""
    out.print(Text.assemble((data["verdict"], "bold"), f"{stage}{reason}"), highlight=False)
    versions = ", ".join(f"{k} {v}" for k, v in (data.get("versions") or {}).items())
    out.print(f"environment {data.get('env')}: {versions or 'not run'}")
    out.print(f"sandbox: {data.get('sandbox') or 'not run'} ({data.get('mode') or '-'})")
    out.print(
        f"exit {data.get('exit_code')}, signal {data.get('signal')}, "
        f"{fmt(data.get('duration_s'))} s, peak {fmt(data.get('peak_mem_mb'), 0)} MiB"
    )
    evidence = data.get("evidence") or {}
    for call in evidence.get("calls", []):
        compare = call.get("compare") or []
        diffs = ", ".join(f"out{r.get('output')} max|Δ| {r.get('max_abs')}" for r in compare if isinstance(r, dict))
        exporter = f" ({call['exporter']})" if call.get("exporter") else ""  # only torch.onnx has several
        ort = (call.get("ort") or {}).get("status")
        opset = call.get("opset") or call.get("opset_arg")
        out.print(
            f"  {call.get('api')}{exporter}: {call.get('status')}"
            + (f", opset {opset}" if opset else "")
            + (f", ort {ort}" if ort else "")
            + (f", {diffs}" if diffs else "")
        )
    if evidence.get("stage_from"):
        out.print(f"  stage from: {evidence['stage_from']}")
    if evidence.get("era"):
        era = evidence["era"]
        out.print(f"  stack of its time: {era.get('stack')} ({era.get('why')})", markup=False, highlight=False)
        for name, why in (era.get("companions") or {}).items():
            out.print(f"  companion {name}: {why}", markup=False, highlight=False)
    found = data.get("reported_error")
    if found:
        out.print(f"  against the reported error: {found['match']}", markup=False, highlight=False)
        out.print(f"    reported: {found.get('reported') or '(no readable error in the thread)'}", markup=False)
        out.print(f"    re-run:   {found.get('rerun')}", markup=False, highlight=False)
    for graph in evidence.get("graph") or []:
        ops = ", ".join(f"{op} {n}" for op, n in (graph.get("op_counts") or {}).items())
        if ops:
            out.print(f"  graph ({graph.get('nodes')} nodes): {ops}", markup=False, highlight=False)
    for row in evidence.get("mismatched_outputs") or []:
        out.print(
            f"  output {row.get('output')}: max |Δ| {row.get('max_abs')}, max rel {row.get('max_rel')}"
            + (f", {row['problem']}" if row.get("problem") else ""),
            markup=False,
            highlight=False,
        )
    for violation in evidence.get("violations") or []:
        detail = printable(str(violation.get("detail")))
        out.print(f"  violation ({violation.get('kind')}): {detail}", markup=False, highlight=False)
    if data.get("output_tail"):
        out.rule("last lines of output")
        out.print(printable(data["output_tail"]), markup=False, highlight=False)


@repro_app.command("show")
@handle_errors
def show_cmd(
    issue: str = typer.Argument(..., help="The issue: owner/repo#N, its URL, or issuemine's issue id."),
    env: str | None = typer.Option(None, "--env", help="Only this environment's run (default: every run)."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """An issue's snippet, where it came from, and each environment's verdict, evidence and output."""
    from issuemine.repro.tieback import issue_runs

    data = issue_runs(database(db, reads=True), issue, env)
    if as_json:
        print_json(data)
        return
    out.print(f"[bold]{data['issue']}[/] {data.get('title') or ''}")
    candidate = data["candidate"]
    if candidate is None:
        out.print("no candidate yet: run `issuemine repro extract`")
        return
    out.print(
        f"candidate: {'runnable' if candidate['runnable'] else 'not runnable'}"
        + (f" ({candidate['reason']})" if candidate.get("reason") else "")
    )
    _print_provenance(candidate.get("provenance") or {})
    if candidate.get("script"):
        out.rule("snippet")
        out.print(printable(candidate["script"]), markup=False, highlight=False)
    for run in data["runs"]:
        variant = "" if run.get("variant", "as-written") == "as-written" else f", {run['variant']}"
        out.rule(f"run in {run['env']}{variant} ({run['finished_at']})")
        _print_run(run)
    if not data["runs"]:
        out.print("not run yet: `issuemine repro run`")


@repro_app.command("bisect")
@handle_errors
@sandbox_options
def bisect_cmd(
    issue: str | None = typer.Argument(None, help="The issue: owner/repo#N, its URL, or issuemine's issue id."),
    sample: str | None = typer.Option(None, "--sample", help="Every issue of this sample with a runnable snippet."),
    converter: str | None = typer.Option(
        None, "--converter", help="Whose stacks to walk (default: the converter of the issue's repository)."
    ),
    full: bool = typer.Option(
        False, "--full", help="Run every stack from its era to today instead of a binary search (finds regressions)."
    ),
    build: bool = typer.Option(True, "--build/--no-build", help="Build missing stacks (downloads), or skip them."),
    executor: str = ExecutorOption,
    address: str | None = AddressOption,
    db: str | None = DbOption,
    as_json: bool = JsonOption,
    settings: SandboxSettings | None = None,
) -> None:
    """The release that fixed an issue: its snippet across the stacks of their time, in release order.

    Starting from the stack of the issue's time (where it must fail as reported: the same error, or
    a failure where the thread pasted none) and today's, a binary search finds the last stack where
    it fails and the first where it passes, reusing stored runs; the result is stored and shown
    beside the issue's close date and the commit or pull request its timeline names.

    Examples: `issuemine repro bisect pytorch/pytorch#49403`; `issuemine repro bisect --sample study --no-build`.
    """
    from issuemine.repro.bisect import bisect_issue, sample_issues, store

    assert settings is not None
    if (issue is None) == (sample is None):
        raise IssuemineError("name one issue, or a sample with --sample")
    database_ = database(db)
    found = environments.load(settings.envs_file)
    options = settings.run_options(env_name=environments.CURRENT, **_executor(executor, address))
    issues: list[str | int] = [issue] if issue else list(sample_issues(database_, sample or ""))
    results = []
    with (
        interrupt.deferred_interrupt(),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=as_json,
        ) as progress,
    ):
        task = progress.add_task("bisecting", total=len(issues))
        for ref in issues:

            def running(stack: str, ref: str | int = ref) -> None:
                progress.update(task, description=f"{ref}: running in {stack}")

            result = bisect_issue(database_, ref, options, found, converter, full, build, running)
            store(database_, result)
            results.append(result)
            progress.update(task, advance=1)
            interrupt.check()  # between issues: every finished bisection is stored
    if as_json:
        print_json([r.as_dict() for r in results] if sample else results[0].as_dict())
        return
    for result in results:
        out.print(f"{result.issue}: {result.status}: {result.summary}", markup=False, highlight=False)
        if issue:
            rows = [[s.stack, s.released, s.verdict, s.match or "-", s.state] for s in result.steps]
            out.print(table("Runs", ["stack", "released", "verdict", "against the report", "reads as"], rows))


@repro_app.command("report")
@handle_errors
def report_cmd(
    sample: str | None = typer.Option(None, "--sample", help="Only this sample's issues."),
    env: str = typer.Option(environments.CURRENT, "--env", help="Which environment's verdicts."),
    against: str | None = typer.Option(
        None, "--against", help="Also compare with this environment's verdicts: what a release fixed or broke."
    ),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Coverage, verdicts by converter, and how verdicts and inferred stages agree with the human labels.

    With --against OTHER, also the issue-by-issue changes from OTHER to --env (fixed, broke, changed).
    With --env era, each issue's run in the stack of its time (`repro run --env era`), and per
    converter and labeled symptom: failing with the error the reporter pasted (same exception and
    normalized message, and the same innermost converter frame where both show one), failing
    otherwise, and, beside today's run ('current'), fixed since or still failing.
    """
    from issuemine.repro.tieback import compare_envs, repro_report

    report = repro_report(database(db, reads=True), env, sample)
    if against:
        report.comparison = compare_envs(database(db, reads=True), env, against, sample)
    if as_json:
        print_json(report.as_dict())
        return
    out.print(table("Coverage", ["step", "issues"], list(report.coverage.items())))
    for frame, title in (
        (report.by_converter, "Verdicts by converter"),
        (report.by_symptom, "Verdicts by labeled symptom"),
        (report.by_stage, "Verdicts by labeled stage"),
        (report.by_variant, "Every run, by variant (the exporter it used)"),
    ):
        if frame is not None and frame.rows:
            out.print(table(title, [frame.index, *frame.columns], [[r, *v] for r, v in frame.rows]))
    for line in report.reproduction:
        out.print(line)
    if report.comparison is not None:
        _print_comparison(report.comparison)
    if report.era is not None and report.era.rows:
        from issuemine.repro.tieback import ERA_COLUMNS

        rows = [[c, s, *counts] for c, s, counts in report.era.rows]
        title = "Labeled failures in the stack of their time, and today ('current')"
        out.print(table(title, ["converter", "labeled symptom", *ERA_COLUMNS], rows))
        out.print(f"{report.era.strongest} labeled crash(es) crash in their era with the reported error and pass today")
    for agreement, what in (
        (report.stage_agreement, "the re-run crash"),
        (report.traceback_stage_agreement, "the reported traceback"),
    ):
        share = f" ({agreement.share:.0%})" if agreement.share is not None else ""
        out.print(f"stage inferred from {what} vs labeled stage: {agreement.agree} of {agreement.n} agree{share}")
        if agreement.rules:
            tallies = [[rule, f"{agreed}/{fired}"] for rule, (agreed, fired) in agreement.rules.items()]
            out.print(table(f"Rules that read {what}: raters agreed / fired", ["rule", "agreed"], tallies))


def _print_comparison(comparison: EnvComparison) -> None:
    title = f"Verdicts from {comparison.against!r} to {comparison.env!r} ({comparison.both} issues run in both)"
    out.print(table(title, ["before", "after", "issues"], comparison.transitions))
    for key, issues in (("fixed", comparison.fixed), ("broke", comparison.broke), ("changed", comparison.changed)):
        if issues:
            out.print(f"{key}: " + ", ".join(issues))


@env_app.command("list")
@handle_errors
def env_list_cmd(envs_file: Path | None = EnvsFileOption, as_json: bool = JsonOption) -> None:
    """The environments: 'current', the stacks of their time (data/stacks.toml, oldest first: what
    `repro run --env era` picks from) and those of the environments file, with their state.

    Size is the virtualenv's size on disk (built ones only)."""
    found = environments.load(envs_file)
    rows = []
    for e in found.values():
        size = environments.size_on_disk(e)
        rows.append(
            {
                "name": e.name,
                "built": "yes" if e.built else "no",
                "released": e.released.isoformat() if e.released else "-",
                "converters": ", ".join(e.converters) or "-",
                "size_mb": round(size / 2**20) if size else 0,
                "python": e.python if e.venv is None else (e.base_python or "-"),
                "packages": " ".join(e.packages) or "-",
            }
        )
    if as_json:
        print_json(rows)
        return
    columns = ["name", "built", "released", "converters", "size_mb", "python", "packages"]
    shown = [[str(r[c]) if c != "size_mb" else (f"{r[c]:,}" if r[c] else "-") for c in columns] for r in rows]
    out.print(table("Environments", ["name", "built", "released", "converters", "MB", "python", "packages"], shown))


@env_app.command("prune")
@handle_errors
def env_prune_cmd(
    names: list[str] = typer.Argument(None, help="Environments to delete (default: with --all, every built one)."),
    every: bool = typer.Option(False, "--all", help="Delete every built environment but 'current'."),
    envs_file: Path | None = EnvsFileOption,
) -> None:
    """Delete built environments' virtualenvs to free disk space (they are rebuilt on demand).

    Examples: `issuemine repro env prune torch-1-8`; `issuemine repro env prune --all`."""
    found = environments.load(envs_file)
    if not names and not every:
        raise IssuemineError("name the environments to prune, or pass --all")
    unknown = [n for n in names or [] if n not in found or n == environments.CURRENT]
    if unknown:
        raise IssuemineError(f"cannot prune {', '.join(unknown)}: not a built environment (see `repro env list`)")
    chosen = [found[n] for n in names] if names else [e for e in found.values() if e.venv is not None]
    freed = 0
    for env in chosen:
        if env.venv is not None and env.venv.exists():
            freed += environments.prune(env)
            out.print(f"pruned {env.name}")
    out.print(f"freed {freed / 2**20:,.0f} MB")


@env_app.command("build")
@handle_errors
def env_build_cmd(
    name: str = typer.Argument(..., help="An environment of the environments file."),
    envs_file: Path | None = EnvsFileOption,
    if_missing: bool = typer.Option(
        False, "--if-missing", help="Do nothing when the environment is already built (for set-up scripts)."
    ),
    difftest: bool = typer.Option(
        False,
        "--difftest",
        help="Also install what `difftest run --env NAME` needs (NNSmith and its solver: the stacks file's "
        "\\[difftest] packages).",
    ),
) -> None:
    """Create the environment's virtualenv and install its pins (this step needs the package index).

    A build that stopped half-way is redone: an environment counts as built only once every pin is
    installed."""
    env = environments.load(envs_file).get(name)
    if env is None:
        raise IssuemineError(f"unknown environment {name!r}; see `issuemine repro env list`")
    if if_missing and env.built and (env.has_difftest or not difftest):
        out.print(f"{name} is already built at {env.venv}")
        return
    if not (if_missing and env.built):
        environments.build(env)
        out.print(f"built {name} at {env.venv}")
    if difftest:
        environments.add_difftest(env, environments.difftest_packages(envs_file))
        out.print(f"{name} can run difftest campaigns (difftest run --env {name})")
