"""The end-to-end job on bundled real data, with no network.

1. the study's 200 labeled issues (``data/study-labels.csv``) enter the database as issue stubs
   with their labels (rater ``study``, sample ``study``);
2. the pilot and drift double-labelings (``pilot-ratings.csv``, ``drift-ratings.csv``) are imported
   as samples ``pilot`` and ``drift``, and inter-rater agreement is computed for both;
3. the filters run and a seeded sample is drawn, as on a fetched corpus;
4. the analysis of sample ``study`` is written to ``report/``: tables, figures, report.html;
5. the bundled example snippets (``data/repro-examples/``) enter the database as issues of
   ``issuemine/examples``, are extracted and run in the sandbox against the installed torch and
   onnxruntime, and their verdicts are stored (``issuemine repro show issuemine/examples#2``); the
   study's issues come without their text, so their own snippets need a fetch first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from issuemine.analysis import tables
from issuemine.corpus import filters, sampling, status
from issuemine.corpus.status import CorpusStatus
from issuemine.corpus.store import save_issue
from issuemine.db import Database, open_db
from issuemine.db.labels import final_labels, ratings_frame
from issuemine.db.models import Issue, Repository, ReproRun
from issuemine.db.rows import ensure_repository
from issuemine.domain.converters import load_catalog, resolve
from issuemine.domain.taxonomy import taxonomy
from issuemine.errors import IssuemineError
from issuemine.labeling.agreement import Agreement, agreement
from issuemine.labeling.ratings import import_labels
from issuemine.pipeline import report
from issuemine.resources import data_dir

STUDY_CONVERTERS = ("torch.onnx", "tf2onnx")
LABEL_FILES = (
    ("study-labels.csv", "study", "study"),
    ("pilot-ratings.csv", "pilot", None),
    ("drift-ratings.csv", "drift", None),
)


@dataclass
class DemoResult:
    database: Path
    loaded: int
    status: CorpusStatus
    agreement: dict[str, list[Agreement]]
    final_labels: int
    report: Path
    tables: dict[str, str]
    repro: dict[str, Any]


DEMO_EXAMPLES = (
    "a_torchscript_passes.py",
    "b_unsupported_operator.py",
    "c_trace_crash.py",
    "d_ort_refuses.py",
    "e_wrong_model.py",
    "g_not_runnable.py",
)


EXAMPLES_REPO = "issuemine/examples"


def store_examples(db: Database) -> None:
    """The example snippets as issues of a repository of their own (``issuemine/examples#1``...),
    so they go through extraction, runs and ``repro show`` like any fetched issue."""
    folder = data_dir() / "repro-examples"
    with db.session() as session:
        repo_id = ensure_repository(session, EXAMPLES_REPO)
        for number, name in enumerate(DEMO_EXAMPLES, start=1):
            code = (folder / name).read_text(encoding="utf-8")
            title = code.splitlines()[0].lstrip("# ").strip()
            body = f"Bundled example `{name}`.\n\n```python\n{code}```\n"
            raw = {
                "id": 9_000_000 + number,
                "number": number,
                "title": title,
                "body": body,
                "state": "closed",
                "html_url": f"data/repro-examples/{name}",
            }
            save_issue(session, repo_id, raw, source="bundled")


def reproduce_examples(db: Database) -> dict[str, Any]:
    """Extract and run the example snippets in the sandbox, storing candidates and verdicts as for
    fetched issues; say why not when this machine cannot isolate them."""
    from issuemine.repro.candidates import extract_issues
    from issuemine.repro.environments import current
    from issuemine.repro.runs import RunOptions, run_issues
    from issuemine.repro.sandbox import Limits

    store_examples(db)
    extract_issues(db)
    try:
        report_ = run_issues(db, RunOptions(env=current(), limits=Limits(timeout=60)))
    except IssuemineError as exc:
        return {"skipped": str(exc)}
    with db.session() as session:
        rows = session.execute(
            select(Issue.number, ReproRun.variant, ReproRun.verdict, ReproRun.stage, ReproRun.reason, ReproRun.versions)
            .join(ReproRun, ReproRun.issue_id == Issue.id)
            .join(Repository, Repository.id == Issue.repository_id)
            .where(Repository.full_name == EXAMPLES_REPO)
            .order_by(Issue.number, ReproRun.variant)
        ).all()
    runs = [
        {
            "example": f"{EXAMPLES_REPO}#{number} {DEMO_EXAMPLES[number - 1]}"
            + ("" if variant == "as-written" else f" ({variant})"),
            "verdict": verdict,
            "stage": stage,
            "reason": reason,
        }
        for number, variant, verdict, stage, reason, _ in rows
    ]
    versions = rows[0][5] if rows else {}
    return {"sandbox": report_.sandbox, "versions": versions, "runs": runs}


def run_demo(out_dir: Path, *, seed: int = 7, per_converter: int = 30) -> DemoResult:
    for name, _, _ in LABEL_FILES:
        if not (data_dir() / name).exists():
            raise IssuemineError(
                f"bundled data {name} not found in {data_dir()}; set ISSUEMINE_DATA to the data/ folder"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "issuemine.db"
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)  # the demo always starts from nothing
    db = open_db(str(db_path))
    try:
        catalog = load_catalog()
        tax = taxonomy()
        loaded = 0
        for name, sample, rater in LABEL_FILES:
            imported = import_labels(db, tax, data_dir() / name, rater=rater, sample=sample, catalog=catalog)
            loaded += imported.stubs
        repos = {c.repo: c.name for c in catalog.values()}
        agreements = {s: agreement(ratings_frame(db, s, repos), tax) for s in ("pilot", "drift")}
        converters = resolve(catalog, STUDY_CONVERTERS)
        filters.run_filters(db, converters)
        # Stubs carry no GitHub labels or timelines, so the filters cannot decide them; the study had
        # already selected these issues, hence a sample that includes undecided issues.
        sampling.create_sample(db, "demo", converters, per_converter, seed, include_undecided=True)
        final = final_labels(db, tax, "study", repos)
        built = report.build(db, tax, catalog, out_dir / "report", "study")
        shown = {
            "Table 8, failure location (stage):": tables.stage_table(final, tax),
            "Table 9, symptoms (last column: DL-compiler front-ends, Shen et al.):": tables.symptom_table(final, tax),
            "Table 10, top causes by symptom:": tables.cause_by_symptom(final, tax),
        }
        rendered = {title: tables.render(table, "md") for title, table in shown.items()}
        repro = reproduce_examples(db)
        return DemoResult(
            db_path, loaded, status.corpus_status(db), agreements, len(final), built.html, rendered, repro
        )
    finally:
        db.close()
