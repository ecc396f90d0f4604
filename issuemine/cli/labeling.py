"""Labeling commands: taxonomy, labels import/export, assign, label, agree, adjudicate."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from issuemine.cli import label_ui
from issuemine.cli.common import (
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
)
from issuemine.db import Database
from issuemine.db.labels import ratings_frame
from issuemine.domain.taxonomy import SUBCAUSE, Taxonomy, load_taxonomy
from issuemine.errors import IssuemineError
from issuemine.labeling import adjudication, agreement, ratings
from issuemine.labeling.assignments import parse_overlap, plan_sample
from issuemine.labeling.session import LabelSession

TaxonomyOption = typer.Option(
    None, "--taxonomy", help="Taxonomy directory (default: $ISSUEMINE_TAXONOMY, else the bundled taxonomy/)."
)

taxonomy_app = typer.Typer(help="Show and check the labeling taxonomy (codebooks per dimension).", no_args_is_help=True)
labels_app = typer.Typer(help="Import and export human labels.", no_args_is_help=True)


@taxonomy_app.command("show")
@handle_errors
def taxonomy_show(
    dimension: str | None = typer.Argument(None, help="stage, symptom, cause (default: all)."),
    taxonomy_dir: Path | None = TaxonomyOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the codebook: codes, study numbers, names, definitions, aliases."""
    tax, _ = load_taxonomy(taxonomy_dir)
    dims = [dimension] if dimension else list(tax.dimensions)
    if as_json:
        print_json(
            {
                "name": tax.name,
                "version": tax.version,
                "dimensions": {
                    d: [{**c.__dict__, "subtypes": [s.__dict__ for s in c.subtypes]} for c in tax.dimension(d).codes]
                    for d in dims
                },
            }
        )
        return
    out.print(f"[bold]{tax.name}[/] version {tax.version}: {tax.description}")
    for d in dims:
        rows = []
        for c in tax.dimension(d).codes:
            rows.append((c.number or "", c.code, c.name, c.definition, ", ".join(c.aliases)))
            rows.extend(("", f"  {s.code}", f"  {s.name}", s.definition, ", ".join(s.aliases)) for s in c.subtypes)
        out.print(table(f"{d}: {tax.dimension(d).question}", ["#", "code", "name", "definition", "aliases"], rows))


@taxonomy_app.command("check")
@handle_errors
def taxonomy_check(taxonomy_dir: Path | None = TaxonomyOption) -> None:
    """Validate a taxonomy: unique codes and numbers, every alias resolves, sub-causes belong to their cause."""
    tax, problems = load_taxonomy(taxonomy_dir, strict=False)
    if problems:
        for problem in problems:
            err.print(f"problem: {problem}", highlight=False, soft_wrap=True)
        raise IssuemineError(f"taxonomy {tax.path} has {len(problems)} problem(s)")
    counts = ", ".join(f"{d}: {len(tax.all_codes(d))}" for d in tax.label_dimensions())
    out.print(f"taxonomy {tax.name} {tax.version} at {tax.path} is valid ({counts})")


@labels_app.command("import")
@handle_errors
def labels_import(
    file: Path = typer.Argument(
        ..., help="CSV, JSON or JSONL: url (or repo+number), rater, and one column per dimension."
    ),
    rater: str | None = typer.Option(None, "--rater", help="Rater of rows without a 'rater' column."),
    sample: str | None = typer.Option(None, "--sample", help="Also store the imported issues as this named sample."),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
    as_json: bool = JsonOption,
) -> None:
    """Import labels (study-sheet names, codes or codebook numbers); a bad row rejects the whole file.

    Columns: `stage`/`stage_code`, `symptom`/`symptom_code`, `cause`/`cause_code`, and a cause's sub-type
    column (`incompatibility`, `type_problem`, `algorithmic_error`, or `subcause`); an optional `note`
    (shown to the adjudicator). Unknown issues are created as stubs (repo, number, url, title,
    created) so labels can be analyzed without a token.
    """
    tax, _ = load_taxonomy(taxonomy_dir)
    report = ratings.import_labels(database(db), tax, file, rater=rater, sample=sample, catalog=catalog())
    if as_json:
        print_json(report.as_dict())
        return
    out.print(
        f"imported {report.rows} rows ({report.ratings} ratings) by {', '.join(sorted(report.raters))} from {file}; "
        f"{report.stubs} new issue stubs" + (f"; sample {sample!r}" if sample else "")
    )


@labels_app.command("export")
@handle_errors
def labels_export(
    file: Path | None = typer.Argument(None, help="Output file (default: standard output)."),
    fmt_: str = typer.Option("csv", "--format", help="csv, json or jsonl."),
    sample: str | None = typer.Option(None, "--sample", help="Only this sample's issues."),
    final: bool = typer.Option(
        False, "--final", help="The final label per issue and sample (the final_labels view) instead of every rater's."
    ),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
) -> None:
    """Export every rater's labels with status, note, time spent, taxonomy version and timestamps.

    With --final, one row per issue and sample: the final code per dimension (adjudicated, else
    agreed, else the single rater's; finished answers only) and where it came from.
    """
    tax, _ = load_taxonomy(taxonomy_dir)
    records = (
        ratings.final_rows(database(db, reads=True), sample)
        if final
        else ratings.export_rows(database(db, reads=True), tax, sample)
    )
    if file is None:
        ratings.write_export(records, fmt_, sys.stdout)
        return
    with open(file, "w", encoding="utf-8", newline="") as fh:
        ratings.write_export(records, fmt_, fh)
    err.print(f"exported {len(records)} labels to {file}")


@handle_errors
def assign_cmd(
    sample: str = typer.Option(..., "--sample", help="Sample to plan."),
    raters: str = typer.Option(..., "--raters", help="Comma-separated rater names."),
    overlap: str = typer.Option(
        "30",
        "--overlap",
        help="Issues per converter every rater labels: a count (30), or a share with a decimal point or a "
        "percent sign (0.3, 1.0, 30%); 1.0 is every issue, 1 is one issue.",
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing plan."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Plan who labels what: a shared overlap per converter for agreement, the rest dealt out in turn.

    The first --overlap issues of each converter (in sample order) go to every rater; the others are
    dealt one at a time to the raters in the order given, the deal running on from one converter to
    the next, so every rater's count is within one of the others'."""
    report = plan_sample(database(db), sample, raters.split(","), parse_overlap(overlap), replace=replace)
    if as_json:
        print_json(report.as_dict())
        return
    shared = ", ".join(f"{c}: {n}" for c, n in report.shared.items())
    out.print(f"sample {sample!r}: shared by all raters ({shared})")
    out.print(table("Assignments", ["rater", "issues"], list(report.raters.items())))


@handle_errors
def label_cmd(
    sample: str = typer.Option(..., "--sample", help="Sample to label."),
    rater: str | None = typer.Option(
        None, "--rater", help="Your rater name; your resume point and labels are yours alone."
    ),
    issue: str | None = typer.Option(
        None, "--issue", help="Open this issue first (123, owner/repo#123 or its URL) instead of the resume point."
    ),
    review: bool = typer.Option(
        False, "--review", help="Walk the issues you finished, in order, to check or change your answers."
    ),
    order: str = typer.Option(
        "queue",
        "--order",
        help="queue (the sample's order) or uncertain: the issues the suggestion model is least sure of first.",
    ),
    llm: str | None = typer.Option(
        None,
        "--llm",
        help="Instead of you: an OpenAI-compatible chat-completions endpoint (a local llama.cpp, Ollama or "
        "vLLM server, or a hosted one) labels the sample as rater llm:MODEL.",
    ),
    model: str | None = typer.Option(None, "--model", help="With --llm: the model to ask."),
    key_env: str = typer.Option(
        "OPENAI_API_KEY", "--key-env", help="With --llm: the environment variable holding the key (never stored)."
    ),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
) -> None:
    """Label a sample's issues in the terminal, one issue at a time; every answer is saved at once.

    The header (issue, title, your labels) and the question stay on screen; the issue text scrolls
    between them. Keys: number keys choose (with more than 9 choices, type the number and Enter),
    Enter accepts (your earlier answer, or a pre-selected suggestion), b back, u undo, s skip, f flag
    as not a converter failure, n note, g go to an issue, PgUp/PgDn (or Space, arrows) scroll, t
    unfolds the tracebacks, c comments, e the evidence behind a suggestion, ? codebook, o open in a
    browser, q quit. Suggestions (from the current `suggest` model; the study model until you train
    one) are shown after you answer, with whether the model agreed, so they do not anchor your
    answer; a sample can pre-select them above a confidence, or hide them (`issuemine suggest
    mode`). The first rater of a double-labeled sample never sees them.
    """
    tax, _ = load_taxonomy(taxonomy_dir)
    if llm:
        _label_with_llm(llm, model, key_env, sample, db, tax)
        return
    if not rater:
        raise IssuemineError("--rater NAME: who is labeling (or --llm URL --model NAME for an LLM rater)")
    # Refused before the suggestion model is trained or stored: a bad call changes nothing.
    label_ui.require_terminal(label_ui.LABEL_NEEDS_TERMINAL)
    database_ = database(db)
    if issue is not None:
        _check_issue(database_, sample, issue)
    shown = _prepare_suggestions(database_, tax, sample, needed=order == "uncertain")
    if shown and first_of_double_labeled(database_, sample, rater):
        shown = False
        err.print("suggestions are hidden: you are the first rater of this double-labeled sample")
    from issuemine.suggest.store import sample_preselect

    preselect = sample_preselect(database_, sample) if shown else None
    session = LabelSession(
        database_, tax, sample, rater, review=review, suggestions=shown, order=order, preselect=preselect
    )
    label_ui.run(session, issue=issue)


def _check_issue(db: Database, sample: str, issue: str) -> None:
    """--issue as the session reads it (123, #123, owner/repo#123 or its URL), among the sample's issues."""
    from sqlalchemy import select

    from issuemine.db.models import Issue, Repository, SampleMember
    from issuemine.db.rows import sample_id
    from issuemine.domain.addresses import checked_number
    from issuemine.labeling.session import ISSUE_REF

    match = ISSUE_REF.search(issue.strip())
    if match is None:
        raise IssuemineError(f"--issue {issue!r} is not an issue: give 123, owner/repo#123 or the issue's URL")
    repo = match.group("repo") or match.group("url_repo")
    try:
        number = checked_number(match.group("number") or match.group("url_number"))
    except ValueError as exc:
        raise IssuemineError(f"--issue {issue[:60]!r}: {exc}") from None
    with db.session() as session:
        rows = session.execute(
            select(Repository.full_name)
            .join(Issue, Issue.repository_id == Repository.id)
            .join(SampleMember, SampleMember.issue_id == Issue.id)
            .where(SampleMember.sample_id == sample_id(session, sample), Issue.number == number)
        ).all()
    hits = [name for (name,) in rows if repo is None or name.lower() == repo.lower()]
    if len(hits) != 1:
        why = "is not an issue of" if not hits else "is ambiguous in (give owner/repo#number)"
        raise IssuemineError(f"--issue {issue}: {why} sample {sample!r}")


def _label_with_llm(url: str, model: str | None, key_env: str, sample: str, db: str | None, tax: Taxonomy) -> None:
    from issuemine.labeling.llm import ChatClient, label_with_llm

    if not model:
        raise IssuemineError("--llm needs --model NAME: the model the endpoint serves")
    if not url.startswith(("http://", "https://")):
        raise IssuemineError(f"--llm {url!r}: give the endpoint's URL (http://127.0.0.1:8080/v1)")
    client = ChatClient(url, model, os.environ.get(key_env))
    with err.status("the LLM rater is labeling") as status:
        report = label_with_llm(database(db), tax, sample, client, lambda name: status.update(f"asking about {name}"))
    out.print(f"{report.rater} labeled {report.labeled} issue(s) of sample {sample!r}", highlight=False)
    for name, why in report.refused.items():
        err.print(Text(f"refused for {name}: {why}"), highlight=False, soft_wrap=True)


def suggestion_agreement(db: Database, sample: str | None) -> list[dict[str, Any]]:
    """Per dimension, how often raters chose the model's suggestion when it was visible before the
    answer (pre-selected) and when it was shown only after: a gap is anchoring."""
    from sqlalchemy import select

    from issuemine.db.models import Assignment, Rating
    from issuemine.db.rows import sample_id

    query = select(Rating.dimension, Rating.code, Rating.suggested, Rating.suggestion_shown).where(
        Rating.suggested.is_not(None)
    )
    with db.session() as session:
        if sample:
            sid = sample_id(session, sample)
            query = query.join(
                Assignment,
                (Assignment.issue_id == Rating.issue_id)
                & (Assignment.rater_id == Rating.rater_id)
                & (Assignment.sample_id == sid),
            )
        rows = session.execute(query).all()
    found: dict[tuple[str, bool], list[bool]] = {}
    for dim, code, suggested, shown in rows:
        found.setdefault((dim, bool(shown)), []).append(code == suggested)
    return [
        {"dimension": dim, "visible before the answer": shown, "n": len(hits), "agree": sum(hits) / len(hits)}
        for (dim, shown), hits in sorted(found.items())
    ]


def first_of_double_labeled(db: Database, sample: str, rater: str) -> bool:
    """Whether ``rater`` is the first rater of a sample whose issues two raters label: the first
    assigned (the lowest rater id among the raters of issues assigned twice)."""
    from sqlalchemy import func, select

    from issuemine.db.models import Assignment, Rater
    from issuemine.db.rows import sample_id

    with db.session() as session:
        sid = sample_id(session, sample)
        doubled = (
            select(Assignment.issue_id)
            .where(Assignment.sample_id == sid)
            .group_by(Assignment.issue_id)
            .having(func.count() > 1)
        )
        first = session.scalar(
            select(func.min(Assignment.rater_id)).where(Assignment.sample_id == sid, Assignment.issue_id.in_(doubled))
        )
        if first is None:
            return False
        me = session.scalar(select(Rater.id).where(Rater.name == rater))
        return me == first


def _prepare_suggestions(db: Database, tax: Taxonomy, sample: str, needed: bool) -> bool:
    """Score the sample's issues with the current suggestion model (the study model on first use)
    unless the sample keeps its raters blind; True when the session should show suggestions."""
    from issuemine.suggest.store import SHOW, current_model, fill, sample_issue_ids, sample_mode

    show = sample_mode(db, sample) == SHOW
    if not (show or needed):
        return False
    try:
        with err.status("preparing label suggestions"):
            stored = current_model(db, tax)
            fill(db, stored, sample_issue_ids(db, sample))
    except ImportError:
        err.print("no label suggestions: pip install 'issuemine[suggest]' for them", highlight=False, markup=False)
    return show


@handle_errors
def agree_cmd(
    sample: str | None = typer.Option(None, "--sample", help="Only this sample (its assigned raters)."),
    dimension: list[str] | None = typer.Option(
        None, "--dimension", help="Dimension(s): stage, symptom, cause, subcause."
    ),
    confusion: bool = typer.Option(False, "--confusion", help="Also print the confusion table of each dimension."),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
    as_json: bool = JsonOption,
) -> None:
    """Inter-rater agreement per dimension: Cohen's κ, Krippendorff's α, raw agreement, n."""
    tax, _ = load_taxonomy(taxonomy_dir)
    for d in dimension or []:
        if d != SUBCAUSE:
            tax.dimension(d)
    repos = {c.repo: c.name for c in catalog().values()}
    frame = ratings_frame(database(db, reads=True), sample, repos)
    results = agreement.agreement(frame, tax, dimension or None)
    anchoring = suggestion_agreement(database(db, reads=True), sample)
    if as_json:
        print_json(
            [r.as_dict() for r in results] + [{"suggestion_agreement": anchoring}]
            if anchoring
            else [r.as_dict() for r in results]
        )
        return
    if anchoring:
        rows_ = [(a["dimension"], a["visible before the answer"], a["n"], f"{a['agree']:.1%}") for a in anchoring]
        out.print(
            table(
                "Raters vs the suggestion (an anchoring check)",
                ["dimension", "suggestion seen first", "n", "agree"],
                rows_,
            )
        )
    if not results:
        raise IssuemineError(
            "no issue has labels from two or more raters" + (f" in sample {sample!r}" if sample else "")
        )
    rows = [
        (
            r.dimension,
            r.scope,
            r.n,
            ", ".join(r.raters),
            f"{r.percent:.1%}" if r.percent is not None else "n/a",
            fmt(r.kappa),
            fmt(r.alpha),
        )
        for r in results
    ]
    out.print(
        table(
            "Agreement", ["dimension", "converter", "n", "raters", "agreement", "Cohen's κ", "Krippendorff's α"], rows
        )
    )
    if confusion:
        for r in results:
            if r.confusion and r.scope == "all":
                codes = sorted({*r.confusion, *(c for row in r.confusion.values() for c in row)})
                out.print(
                    table(
                        f"{r.dimension}: {r.raters[0]} (rows) × {r.raters[1]} (columns)",
                        ["", *codes],
                        [(a, *(r.confusion.get(a, {}).get(b, 0) for b in codes)) for a in codes],
                    )
                )


@handle_errors
def adjudicate_cmd(
    sample: str = typer.Option(..., "--sample", help="Sample whose disagreements to settle."),
    judge: str = typer.Option(..., "--as", help="Who decides (recorded with each final label)."),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
    as_json: bool = JsonOption,
) -> None:
    """Walk only the disagreements of a sample, both raters' codes side by side, and record final labels.

    With --json, list the open disagreements instead (no terminal needed).
    """
    tax, _ = load_taxonomy(taxonomy_dir)
    database_ = database(db)
    if as_json:
        print_json([d.__dict__ for d in adjudication.disagreements(database_, tax, sample)])
        return
    label_ui.run_adjudication(adjudication.AdjudicationSession(database_, tax, sample, judge))
