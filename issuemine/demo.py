"""The end-to-end job on bundled real data, with no network.

Today: build a database from the study's labeled issues (``data/study-labels.csv``: 200 issues known
by repository, number and title), run the filters, draw a seeded sample, and report the status.
Later capabilities (labels, analysis, reproduction) extend this same job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from issuemine import filters, sampling, status
from issuemine.catalog import load_catalog, resolve
from issuemine.corpus_io import load_file
from issuemine.db import open_db
from issuemine.errors import IssuemineError
from issuemine.paths import data_dir

STUDY_CONVERTERS = ("torch.onnx", "tf2onnx")


@dataclass
class DemoResult:
    database: Path
    loaded: int
    status: dict[str, Any]


def run_demo(out_dir: Path, *, seed: int = 7, per_converter: int = 30) -> DemoResult:
    study = data_dir() / "study-labels.csv"
    if not study.exists():
        raise IssuemineError(f"bundled study data not found at {study}; set ISSUEMINE_DATA to the data/ folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "issuemine.db"
    for stale in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")):
        stale.unlink(missing_ok=True)  # the demo always starts from nothing
    db = open_db(str(db_path))
    try:
        loaded = load_file(db, study)
        converters = resolve(load_catalog(), STUDY_CONVERTERS)
        filters.run_filters(db, converters)
        # Stubs carry no labels or timelines, so the filters cannot decide them; the study had
        # already selected these issues, hence a sample that includes undecided issues.
        sampling.create_sample(db, "demo", converters, per_converter, seed, include_undecided=True)
        return DemoResult(db_path, loaded.stubs, status.corpus_status(db))
    finally:
        db.close()
