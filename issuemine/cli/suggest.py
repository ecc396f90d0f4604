"""Suggestion commands: train, evaluate, show, and the per-sample setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from issuemine.cli.common import DbOption, JsonOption, database, err, fmt, handle_errors, out, print_json, table
from issuemine.domain.taxonomy import load_taxonomy
from issuemine.errors import IssuemineError

suggest_app = typer.Typer(
    help="Label suggestions: a trained, measured model that proposes stage, symptom and cause.",
    no_args_is_help=True,
)
TaxonomyOption = typer.Option(
    None, "--taxonomy", help="Taxonomy directory (default: $ISSUEMINE_TAXONOMY, else the bundled taxonomy/)."
)


def _need_extra() -> None:
    try:
        import sklearn  # noqa: F401
        import spacy  # noqa: F401
    except ImportError:
        raise IssuemineError(
            "suggestions need scikit-learn and spaCy: pip install 'issuemine[suggest]' (scripts/setup.sh does)"
        ) from None


@suggest_app.command("train")
@handle_errors
def train_cmd(
    sample: str | None = typer.Option(None, "--sample", help="Only this sample's final labels (default: all)."),
    study: bool = typer.Option(
        False, "--study", help="Retrain the study model on the bundled data/study-labels.csv instead."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the estimators (the same labels and seed: the same model)."),
    exclude_sample: str | None = typer.Option(
        None,
        "--exclude-sample",
        help="With --study: leave this sample's issues out of training, so that a replication of the study is "
        "not suggested the study's own labels.",
    ),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
    as_json: bool = JsonOption,
) -> None:
    """Train on the final labels in the database; the new model becomes the current one.

    Final labels are the adjudicated, else agreed, else single rater's codes of finished issues; the
    model reads each issue's title, body, comments and latest re-run verdict.
    """
    _need_extra()
    from issuemine.suggest.model import SuggestionModel
    from issuemine.suggest.store import current_model, db_examples, save_model, train_study_model

    tax, _ = load_taxonomy(taxonomy_dir)
    database_ = database(db)
    if exclude_sample and not study:
        raise IssuemineError("--exclude-sample goes with --study (your own labels never include another sample's)")
    if study:
        model_id = train_study_model(database_, tax, seed, exclude_sample)
    else:
        examples = db_examples(database_, tax, sample)
        if not examples:
            where = f"sample {sample!r}" if sample else "the database"
            raise IssuemineError(f"no issue in {where} has final labels and text: label some, or use --study")
        with out.status(f"training on {len(examples)} labeled issues"):
            model = SuggestionModel.train(examples, tax, seed)
        model.trained_on["sample"] = sample
        model_id = save_model(database_, model, f"labels-{sample}" if sample else "labels", "database")
    stored = current_model(database_, tax, model_id)
    if as_json:
        print_json(stored.as_dict())
        return
    out.print(f"trained suggestion model {stored.label} on {stored.trained_on['issues']} issues ({stored.source})")
    prior = stored.trained_on.get("prior", {})

    def weight(dim: str) -> str:
        return f"{prior[dim]['weight']:g} ({prior[dim]['from']})" if dim in prior else "-"

    rows = [
        (
            dim,
            sum(counts.values()),
            len(counts),
            ", ".join(stored.trained_on.get("too_rare", {}).get(dim, [])) or "-",
            weight(dim),
        )
        for dim, counts in stored.trained_on["per_dimension"].items()
    ]
    headers = ["dimension", "issues", "classes", "too rare to learn (< 2 issues)", "prior's weight"]
    out.print(table("Trained on", headers, rows))
    if "context" in prior:
        out.print(f"the suggested symptom and stage re-rank the cause with weight {weight('context')}")


@suggest_app.command("evaluate")
@handle_errors
def evaluate_cmd(
    cv: int = typer.Option(5, "--cv", help="Folds of the stratified cross-validation."),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="Evaluate the current model (not retrained) on this labels file: the columns `labels import` "
        "reads (url or repo+number, title, optional body, labels as study names, codes or numbers).",
    ),
    sample: str | None = typer.Option(None, "--sample", help="Cross-validate on this sample's final labels only."),
    study: bool = typer.Option(False, "--study", help="Cross-validate on the bundled study labels (titles only)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the estimators."),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
    as_json: bool = JsonOption,
) -> None:
    """How good the suggestions are: accuracy, macro-F1, top-3, Cohen's κ and the majority baseline.

    Without --labels: stratified k-fold cross-validation on the database's final labels (or the
    study's with --study); every issue is scored by a model that never saw it.
    """
    _need_extra()
    from issuemine.suggest.evaluate import cross_validate, evaluate_model
    from issuemine.suggest.store import current_model, db_examples, file_examples, study_labels

    tax, _ = load_taxonomy(taxonomy_dir)
    database_ = database(db)
    if labels is not None:
        stored = current_model(database_, tax)
        examples = file_examples(labels, tax, database_)
        result = evaluate_model(stored.model, stored.label, examples)
        result.how += f", on {labels}"
    else:
        examples = file_examples(study_labels(), tax) if study else db_examples(database_, tax, sample)
        if not examples:
            raise IssuemineError("no labeled issue with text to cross-validate on: label some, or use --study")
        with out.status(f"{cv}-fold cross-validation on {len(examples)} issues"):
            result = cross_validate(examples, tax, cv, seed)
    if as_json:
        print_json(result.as_dict())
        return
    out.print(f"{result.how}; {result.issues} issues")
    rows = [
        (
            s.dimension + (f" ({s.how})" if s.how else ""),
            s.n,
            fmt(s.accuracy),
            fmt(s.macro_f1),
            fmt(s.top3),
            fmt(s.kappa),
            f"{fmt(s.baseline)} ({s.baseline_code or '-'})",
            _threshold(s),
        )
        for s in result.scores
    ]
    out.print(
        table(
            "Suggestion quality",
            [
                "dimension",
                "n",
                "accuracy",
                "macro-F1",
                "top-3",
                "Cohen's κ",
                "majority baseline",
                "accuracy 0.90 from (coverage)",
            ],
            rows,
        )
    )
    out.print(
        "The last column: the confidence from which the suggestions are right 9 times in 10, and the share of"
        " issues that confident (`suggest mode --preselect` takes it)."
    )
    for s in result.scores:
        codes = sorted({*s.confusion, *(p for row in s.confusion.values() for p in row)})
        out.print(
            table(
                f"{s.dimension}{f' ({s.how})' if s.how else ''}: gold (rows) × suggested (columns)",
                ["", *codes],
                [(g, *(s.confusion.get(g, {}).get(p, 0) for p in codes)) for g in sorted(s.confusion)],
            )
        )


@suggest_app.command("show")
@handle_errors
def show_cmd(
    issue: str = typer.Argument(..., help="owner/repo#N, the issue's URL, or issuemine's issue id."),
    db: str | None = DbOption,
    taxonomy_dir: Path | None = TaxonomyOption,
    as_json: bool = JsonOption,
) -> None:
    """The current model's top 3 per dimension for one issue, with the evidence behind each first choice."""
    _need_extra()
    from issuemine.db.rows import find_issue
    from issuemine.suggest.store import current_model, evidence, texts_for

    tax, _ = load_taxonomy(taxonomy_dir)
    database_ = database(db)
    with database_.session() as session:
        found = find_issue(session, issue)
        issue_id, title = found.id, found.title
    text = texts_for(database_, [issue_id])[issue_id]
    if not (text.title or text.body):
        raise IssuemineError(f"{issue} is a stub without text: fetch it first (`issuemine fetch`)")
    stored = current_model(database_, tax)
    ranked = stored.model.predict([text])[0]
    result: dict[str, dict[str, Any]] = {
        dim: {
            "top3": [{"code": c, "confidence": round(p, 4)} for c, p in ranking[:3]],
            "evidence": evidence(stored.model, text, dim, ranking[0][0]) if ranking else [],
        }
        for dim, ranking in ranked.items()
    }
    if as_json:
        print_json({"issue": issue, "model": stored.label, "suggestions": result})
        return
    trained = f"model {stored.label}, trained on {stored.trained_on['issues']} issues"
    out.print(f"[bold]{escape(issue)}[/] {escape(title or '')}  ({trained})")
    for dim, shown in result.items():
        top = ", ".join(f"{tax.display(dim, s['code'])} {s['confidence']:.0%}" for s in shown["top3"])
        out.print(f"[bold]{dim}[/]: {top}", highlight=False)
        for reason in shown["evidence"]:
            out.print(f"    {reason}", highlight=False, soft_wrap=True)


def _threshold(score: Any) -> str:
    if score.threshold_90 is None:
        return "never"
    covered = next((share for t, share, _ in score.coverage if t == score.threshold_90), 0.0)
    return f"{score.threshold_90:.2f} ({covered:.0%})"


@suggest_app.command("mode")
@handle_errors
def mode_cmd(
    sample: str = typer.Option(..., "--sample", help="The sample whose label sessions this applies to."),
    show: bool | None = typer.Option(
        None, "--show/--hide", help="Show suggestions after each answer (the default), or keep the raters blind."
    ),
    preselect: float | None = typer.Option(
        None,
        "--preselect",
        min=0.0,
        max=1.0,
        help="Pre-select suggestions before the answer, only at or above this confidence (take it from "
        "`suggest evaluate`: the confidence at which accuracy reaches 0.90).",
    ),
    db: str | None = DbOption,
) -> None:
    """How the label session shows suggestions for a sample.

    By default a suggestion is shown only after the rater answered (the screen then says whether the
    model agreed), so it cannot anchor the answer; `e` shows the evidence at any time. --hide keeps
    the raters blind; --preselect T pre-selects suggestions of confidence T or more (Enter accepts).
    In a double-labeled sample the first rater never sees suggestions. Every answer records the
    suggestion and whether it was visible before the answer (`agree` reports both).
    """
    from issuemine.suggest.store import HIDE, SHOW, sample_mode, sample_preselect, set_sample_mode

    database_ = database(db)
    if preselect is not None and show is False:
        raise IssuemineError("--preselect shows suggestions: it cannot go with --hide")
    if show is not None or preselect is not None:
        set_sample_mode(database_, sample, HIDE if show is False else SHOW, preselect)
    mode, threshold = sample_mode(database_, sample), sample_preselect(database_, sample)
    if mode != SHOW:
        said = "hidden"
    elif threshold is not None:
        said = f"pre-selected at confidence {threshold:.2f} or more, otherwise shown after each answer"
    else:
        said = "shown after each answer"
    err.print(f"sample {sample!r}: suggestions are {said} in the label session")
