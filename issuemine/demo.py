"""The end-to-end job on bundled real data, with no network.

1. the study's 200 labeled issues (``data/study-labels.csv``) enter the database as issue stubs
   with their labels (rater ``study``, sample ``study``);
2. the pilot and drift double-labelings (``pilot-ratings.csv``, ``drift-ratings.csv``) are imported
   as samples ``pilot`` and ``drift``, and inter-rater agreement is computed for both;
3. the filters run and a seeded sample is drawn, as on a fetched corpus.
Later capabilities (analysis, reproduction) extend this same job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from issuemine import filters, sampling, status
from issuemine.agreement import Agreement, agreement
from issuemine.catalog import load_catalog, resolve
from issuemine.db import open_db
from issuemine.errors import IssuemineError
from issuemine.labels import final_labels, import_labels, ratings_frame
from issuemine.paths import data_dir
from issuemine.taxonomy import taxonomy

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
    status: dict[str, Any]
    agreement: dict[str, list[Agreement]]
    final_labels: int


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
            report = import_labels(db, tax, data_dir() / name, rater=rater, sample=sample, catalog=catalog)
            loaded += report.stubs
        repos = {c.repo: c.name for c in catalog.values()}
        agreements = {s: agreement(ratings_frame(db, s, repos), tax) for s in ("pilot", "drift")}
        converters = resolve(catalog, STUDY_CONVERTERS)
        filters.run_filters(db, converters)
        # Stubs carry no GitHub labels or timelines, so the filters cannot decide them; the study had
        # already selected these issues, hence a sample that includes undecided issues.
        sampling.create_sample(db, "demo", converters, per_converter, seed, include_undecided=True)
        final = final_labels(db, tax, "study", repos)
        return DemoResult(db_path, loaded, status.corpus_status(db), agreements, len(final))
    finally:
        db.close()
