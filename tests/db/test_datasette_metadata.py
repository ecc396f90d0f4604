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
