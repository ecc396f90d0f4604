"""The notebooks run headless against a database built from the study labels and draw their figures."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from issuemine.domain.converters import load_catalog
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.ratings import import_labels
from issuemine.resources import data_dir

NOTEBOOKS = Path(__file__).resolve().parents[2] / "analysis"


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):  # type: ignore[no-untyped-def]
    from issuemine.db import open_db

    path = tmp_path_factory.mktemp("nb") / "study.db"
    db = open_db(str(path))
    for name, sample, rater in (
        ("study-labels.csv", "study", "study"),
        ("pilot-ratings.csv", "pilot", None),
        ("drift-ratings.csv", "drift", None),
    ):
        import_labels(db, taxonomy(), data_dir() / name, rater=rater, sample=sample, catalog=load_catalog())
    db.close()
    return path


@pytest.mark.parametrize(
    ("name", "figures"), [("failure_characterization", 3), ("opset_evolution", 1), ("agreement", 1)]
)
def test_notebook_runs_and_draws(study_db, monkeypatch, name, figures):
    monkeypatch.setenv("ISSUEMINE_DB", str(study_db))
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= figures
    text = "".join(o.get("text", "") for o in outputs)
    assert "200 issues with final labels in sample 'study'" in text
