"""The canned queries shipped for Datasette run on a real database and agree with the tool."""

from __future__ import annotations

import json
import re

from sqlalchemy import text

from issuemine.db import Database
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.ratings import import_labels
from issuemine.resources import data_dir


def test_every_canned_query_runs(fresh_db: Database, catalog):
    import_labels(fresh_db, taxonomy(), data_dir() / "study-labels.csv", rater="study", sample="study", catalog=catalog)
    metadata = json.loads((data_dir() / "datasette-metadata.json").read_text())
    queries = metadata["databases"]["issuemine"]["queries"]
    results = {}
    with fresh_db.engine.connect() as connection:
        for name, query in queries.items():
            params = {p: "study" for p in re.findall(r":(\w+)", query["sql"])}
            results[name] = connection.execute(text(query["sql"]), params).mappings().all()
    stages = {(r["stage"], r["converter"]): r["issues"] for r in results["stages_per_converter"]}
    assert stages[("node-conversion", "tf2onnx")] == 70 and stages[("node-conversion", "torch.onnx")] == 78
    assert len(results["final_labels_of_a_sample"]) == 200
    assert results["rerun_verdicts"] == [] and results["labeled_failures_that_still_fail"] == []


def test_the_metadata_is_keyed_to_any_file_name(tmp_path, catalog):
    from typer.testing import CliRunner

    from issuemine.cli.app import app
    from tests.cli.test_cli import assert_clean_error

    path = tmp_path / "my study.db"
    cli = CliRunner()
    assert cli.invoke(app, ["status", "--db", str(path)]).exit_code != 0  # reading creates nothing
    assert cli.invoke(app, ["load", str(_stubs(tmp_path)), "--db", str(path)]).exit_code == 0
    result = cli.invoke(app, ["datasette", "--db", str(path)])
    assert result.exit_code == 0, result.output
    metadata = json.loads(result.stdout)
    assert list(metadata["databases"]) == ["my study"]  # Datasette's name for "my study.db"
    assert "final_labels_of_a_sample" in metadata["databases"]["my study"]["queries"]
    assert str(path) in metadata["description"]
    assert_clean_error(cli.invoke(app, ["datasette", "--db", "postgresql://u@localhost/x"]), "SQLite")


def _stubs(folder):
    path = folder / "stubs.csv"
    path.write_text("repo,number\npytorch/pytorch,1\n")
    return path
