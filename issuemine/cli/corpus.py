"""Corpus commands: converters, fetch, filter, sample, status, load, export."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from issuemine import interrupt
from issuemine.cli.common import (
    CatalogOption,
    DbOption,
    JsonOption,
    catalog,
    database,
    err,
    fmt,
    handle_errors,
    out,
    print_json,
    table,
    token_from,
)
from issuemine.corpus import filters as filters_mod
from issuemine.corpus import sampling, status
from issuemine.domain.converters import default_catalog_paths, resolve
from issuemine.errors import IssuemineError
from issuemine.github import DEFAULT_API_URL

if TYPE_CHECKING:
    from rich.table import Table

    from issuemine.corpus.fetch import FetchProgress
    from issuemine.corpus.filters import FilterCounts


@handle_errors
def converters_cmd(
    catalog_files: list[Path] | None = CatalogOption,
    check: Path | None = typer.Option(
        None,
        "--check",
        help="Validate a converter file (with the bundled catalog, as --catalog reads it) and say what it defines.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """List the converters in the catalog: repository, label rules, the model formats each reads and
    writes, and what issuemine can do with it (fetch, label and analyze its issues; re-run their
    snippets; differential-test it; measure its converted models). The fields of a converter file
    are documented in README's "Converters are data"."""
    if check is not None:
        if not check.is_file():
            raise IssuemineError(f"--check {check}: no such file")
        from issuemine.domain.converters import load_full_catalog

        found = load_full_catalog([*default_catalog_paths(), *(catalog_files or []), check])
        mine = [c for c in found.converters.values() if c.origin == str(check)]
        if not mine:
            raise IssuemineError(f"{check}: no [converters.NAME] entry")
        for c in mine:
            flow = f"{c.source or '?'} -> {c.target}"
            out.print(f"{check}: {c.name} ({flow}) ok: {', '.join(c.capabilities)}", markup=False, highlight=False)
        return
    entries = catalog(catalog_files)
    if as_json:
        print_json([c.catalog_entry() for c in entries.values()])
        return
    rows = [
        (
            c.name,
            c.repo,
            f"{c.source or '?'} → {c.target}",
            ", ".join(c.include_labels) or "(all)",
            ", ".join(c.exclude_labels) or "-",
            ", ".join(c.capabilities),
        )
        for c in entries.values()
    ]
    columns = ["name", "repository", "formats", "include labels", "exclude labels", "issuemine can"]
    out.print(table("Converters", columns, rows))


class _RateColumn(ProgressColumn):
    """Issues per second over the task so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        speed = task.speed if not task.finished else (task.completed / elapsed if elapsed else None)
        speed = speed or 0.0
        return Text(f"{speed:5.0f} issues/s", style="progress.data.speed")


class _FetchView:
    """Renders fetch progress and rate-limit waits; the library only calls back."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}
        self.current: str | None = None
        self.last_wait: str | None = None

    def on_progress(self, p: FetchProgress) -> None:
        key = f"{p.converter}:{p.phase}"
        if key not in self.tasks:
            label = f"{p.converter} {'issues' if p.phase == 'listing' else 'timeline refresh'}"
            self.tasks[key] = self.progress.add_task(label, total=p.total, info="", wait="")
        self.current = key
        task = self.tasks[key]
        if p.phase == "listing":
            self.progress.update(task, completed=p.listed, total=max(p.total, p.listed) if p.total else None)
        else:
            self.progress.advance(task)
        stats = p.stats
        left = f", {stats.rate_remaining} left" if stats.rate_remaining is not None else ""
        self.progress.update(task, info=f"{stats.counted} requests (+{stats.not_modified} not modified{left})", wait="")

    def on_wait(self, reason: str, seconds: float) -> None:
        if self.current and not self.progress.disable:
            self.progress.update(self.tasks[self.current], wait=f"[yellow]waiting {seconds:4.0f}s: {reason}[/]")
        elif reason != self.last_wait:
            # No live display (not a terminal): one line per wait, not one per second.
            err.print(f"waiting {seconds:.0f}s: {reason}", highlight=False)
        self.last_wait = reason


@handle_errors
def fetch_cmd(
    converters: list[str] = typer.Argument(..., help="Converter names from the catalog (see `issuemine converters`)."),
    db: str | None = DbOption,
    token: str | None = typer.Option(
        None, "--token", help="GitHub token (default: $GITHUB_TOKEN). Never stored or printed.", show_default=False
    ),
    api_url: str = typer.Option(
        DEFAULT_API_URL, "--api-url", help="GitHub REST API root (GitHub Enterprise: https://HOST/api/v3)."
    ),
    refresh_timelines: str = typer.Option(
        "unavailable",
        "--refresh-timelines",
        help="Which stored timelines to re-check for new cross-references (they do not change an issue's "
        "updated_at): 'unavailable' = issues not yet passing the availability filter (default), 'all', or "
        "'none'. Re-checks are conditional requests; unchanged ones cost no rate limit.",
    ),
    no_wait: bool = typer.Option(
        False,
        "--no-wait",
        help="When the rate limit runs out, stop cleanly (and say when to resume) instead of waiting.",
    ),
    max_retries: int = typer.Option(
        5, "--max-retries", min=0, help="Retries for 5xx, connection errors and bad bodies."
    ),
    catalog_files: list[Path] | None = CatalogOption,
    as_json: bool = JsonOption,
) -> None:
    """Fetch converters' issues with comments and timelines into the database.

    The first run crawls everything; later runs ask only for issues updated since the last one
    (conditional requests, so an unchanged tracker costs no rate limit). Safe to interrupt:
    rerun the same command to resume.
    """
    from issuemine.corpus.fetch import REFRESH_POLICIES, Fetcher
    from issuemine.github.client import GitHubClient, RetryPolicy

    if refresh_timelines not in REFRESH_POLICIES:
        raise typer.BadParameter(f"must be one of {', '.join(REFRESH_POLICIES)}", param_hint="--refresh-timelines")
    chosen = resolve(catalog(catalog_files), converters)
    database_ = database(db)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[wait]}"),
        console=err,
        transient=False,
        disable=as_json or not err.is_terminal,
    )
    view = _FetchView(progress)
    policy = RetryPolicy(max_retries=max_retries, wait_on_rate_limit=not no_wait)
    client = GitHubClient(api_url, token_from(token), policy, on_wait=view.on_wait)
    fetcher = Fetcher(database_, client, refresh_timelines=refresh_timelines, progress=view.on_progress)
    reports = []
    with progress, interrupt.deferred_interrupt():
        for converter in chosen:
            if not as_json:
                err.print(f"fetching {converter.name} ({converter.repo}) from {api_url}")
            reports.append(fetcher.fetch(converter))
    if as_json:
        print_json([r.as_dict() for r in reports])
        return
    rows = [
        (
            r.converter,
            r.status,
            r.listed,
            r.saved,
            r.unchanged,
            r.timelines,
            r.refreshed,
            r.refresh_changed,
            r.counted,
            r.not_modified,
            r.faults,
        )
        for r in reports
    ]
    out.print(
        table(
            "Fetch",
            [
                "converter",
                "status",
                "listed",
                "stored",
                "unchanged",
                "timelines",
                "re-checked",
                "changed",
                "requests",
                "304s",
                "retried faults",
            ],
            rows,
        )
    )


def filter_table(counts: Sequence[FilterCounts]) -> Table:
    """The filters' counts per converter, as `filter` and `status` both show them."""
    columns = ["converter", "issues", "relevant", "not relevant", "undecided", "available", "not available"]
    return table(
        "Filters",
        [*columns, "undecided", "kept"],
        [
            (
                c.converter,
                c.issues,
                c.relevant,
                c.not_relevant,
                c.relevance_undecided,
                c.available,
                c.not_available,
                c.availability_undecided,
                c.kept,
            )
            for c in counts
        ],
    )


@handle_errors
def filter_cmd(
    converters: list[str] | None = typer.Argument(
        None, help="Converters to filter (default: every converter with stored issues)."
    ),
    validate: Path | None = typer.Option(
        None, "--validate", help="CSV of hand labels (columns url, is_failure): report precision, recall and F1."
    ),
    db: str | None = DbOption,
    catalog_files: list[Path] | None = CatalogOption,
    as_json: bool = JsonOption,
) -> None:
    """Apply the relevance and availability filters (study Figure 4), recording the rule that decided."""
    entries = catalog(catalog_files)
    database_ = database(db)
    chosen = resolve(entries, converters) if converters else status.stored_converters(database_, entries)
    counts = filters_mod.run_filters(database_, chosen)
    result: dict[str, object] = {"filters": [c.as_dict() for c in counts]}
    validation = None
    missing: list[str] = []
    if validate is not None:
        validation, missing = filters_mod.validate(database_, chosen, validate)
        result["validation"] = [v.as_dict() for v in validation]
        result["not_found"] = missing
    if as_json:
        print_json(result)
        return
    out.print(filter_table(counts))
    if validation is not None:
        out.print(
            table(
                f"Filter validation against {validate}",
                ["scope", "n", "TP", "FP", "FN", "TN", "precision", "recall", "F1"],
                [
                    (
                        v.scope,
                        v.tp + v.fp + v.fn + v.tn,
                        v.tp,
                        v.fp,
                        v.fn,
                        v.tn,
                        fmt(v.precision),
                        fmt(v.recall),
                        fmt(v.f1),
                    )
                    for v in validation
                ],
            )
        )
        if missing:
            err.print(f"{len(missing)} hand-labeled issue(s) not in the database were skipped")


@handle_errors
def sample_cmd(
    name: str = typer.Option(..., "--name", help="Name to store the sample under."),
    per_converter: int = typer.Option(100, "--per-converter", help="Issues to draw per converter (the study: 100)."),
    seed: int = typer.Option(
        ..., "--seed", help="Random seed; the same seed over the same corpus gives the same sample."
    ),
    converter: list[str] | None = typer.Option(
        None, "--converter", help="Converter(s) to sample (default: all filtered)."
    ),
    include_undecided: bool = typer.Option(
        False, "--include-undecided", help="Also draw issues the filters could not decide (e.g. stubs not yet fetched)."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing sample of the same name."),
    db: str | None = DbOption,
    catalog_files: list[Path] | None = CatalogOption,
    as_json: bool = JsonOption,
) -> None:
    """Draw a seeded, reproducible sample stratified by converter and store it by name."""
    entries = catalog(catalog_files)
    database_ = database(db)
    chosen = resolve(entries, converter) if converter else status.stored_converters(database_, entries)
    report = sampling.create_sample(
        database_, name, chosen, per_converter, seed, include_undecided=include_undecided, replace=replace
    )
    if as_json:
        print_json(report.as_dict())
        return
    verb = "created" if report.created else "unchanged (same seed, same members)"
    out.print(f"sample {report.name!r} {verb}, seed {report.seed}")
    out.print(
        table(
            "Sample",
            ["converter", "eligible", "drawn"],
            [(c, report.eligible[c], report.members[c]) for c in report.members],
        )
    )
    short = [c for c, n in report.members.items() if n < per_converter]
    if short:
        err.print(f"fewer eligible issues than --per-converter for: {', '.join(short)}")


@handle_errors
def datasette_cmd(db: str | None = DbOption) -> None:
    """Datasette metadata for this database: descriptions of every table and canned queries (final
    labels of a sample, Tables 8-10, disputed issues, re-run verdicts), keyed to its file name.

    Datasette finds a database's metadata by its file name: `issuemine datasette --db demo.db >
    demo-metadata.json`, then `datasette demo.db -m demo-metadata.json`."""
    from issuemine.db.datasette import metadata_for
    from issuemine.db.engine import resolve_url

    metadata = metadata_for(resolve_url(db))  # a PostgreSQL URL is refused before any connection
    database(db, reads=True)  # a missing file is an error here too
    print_json(metadata)


@handle_errors
def status_cmd(db: str | None = DbOption, as_json: bool = JsonOption) -> None:
    """Show what the database holds: issues per repository, filter counts, samples, last fetch."""
    data = status.corpus_status(database(db, reads=True))
    if as_json:
        print_json(data.as_dict())
        return
    out.print(f"database: {data.database}")
    out.print(
        table(
            "Corpus",
            ["repository", "issues", "pull requests", "stubs", "timelines"],
            [(r.repo, r.issues, r.pull_requests, r.stubs, r.timelines) for r in data.repositories],
        )
    )
    out.print(f"comments: {data.comments}   timeline events: {data.timeline_events}")
    if data.filters:
        out.print(filter_table(data.filters))
    for s in data.samples:
        sizes = ", ".join(f"{c}: {n}" for c, n in s.members.items())
        out.print(f"sample {s.name!r} ({s.origin}, {s.created_at}): {sizes}")
    if data.last_fetch:
        out.print(
            table(
                "Last fetch",
                ["converter", "status", "finished", "requests", "304s", "faults", "stored"],
                [
                    (
                        r.converter,
                        r.status,
                        r.finished_at or "-",
                        r.requests_counted,
                        r.not_modified,
                        r.errors,
                        r.issues_saved,
                    )
                    for r in data.last_fetch
                ],
            )
        )
    else:
        out.print("no fetch yet")


@handle_errors
def load_cmd(
    file: Path = typer.Argument(..., help="JSON/JSONL export (GitHub REST shape) or CSV of issue stubs."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Import issues from a file (an `issuemine export`, or a CSV of repo/number stubs) without a token."""
    from issuemine.corpus.exchange import load_file

    report = load_file(database(db), file)
    if as_json:
        print_json(report.as_dict())
    else:
        out.print(
            f"loaded {report.issues} issues ({report.timelines} with timelines) and {report.stubs} stubs from {file}"
        )


@handle_errors
def export_cmd(
    file: Path | None = typer.Argument(None, help="Output JSONL file (default: standard output)."),
    db: str | None = DbOption,
) -> None:
    """Export every fetched issue with its timeline as JSON Lines in GitHub's REST shape."""
    from issuemine.corpus.exchange import export_file

    count = export_file(database(db, reads=True), file, out=sys.stdout)
    if file is not None:
        err.print(f"exported {count} issues to {file}")
