"""The final_labels view (plain SQL) gives the same labels as the Python rule."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import text

from issuemine.db import Database
from issuemine.db.labels import final_labels
from issuemine.domain.converters import Converter
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.adjudication import record
from issuemine.labeling.ratings import import_labels
from issuemine.resources import data_dir

DIMS = ["stage", "symptom", "cause", "subcause"]
COLUMNS = ["issue_id", *DIMS, *(f"{d}_source" for d in DIMS)]


def from_view(db: Database, sample: str) -> pd.DataFrame:
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM final_labels WHERE sample = :s"), {"s": sample}).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows])
    return frame[COLUMNS].sort_values("issue_id", ignore_index=True)


def from_python(db: Database, sample: str, catalog: dict[str, Converter]) -> pd.DataFrame:
    frame = final_labels(db, taxonomy(), sample, {c.repo: c.name for c in catalog.values()})
    return frame[COLUMNS].sort_values("issue_id", ignore_index=True)


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.astype(object).fillna("-").astype(str), b.astype(object).fillna("-").astype(str))


def test_the_view_equals_the_python_rule_on_the_study_labels(fresh_db: Database, catalog):
    import_labels(fresh_db, taxonomy(), data_dir() / "study-labels.csv", rater="study", sample="study", catalog=catalog)
    view = from_view(fresh_db, "study")
    assert len(view) == 200 and (view["stage_source"] == "single").all()
    same(view, from_python(fresh_db, "study", catalog))
    with fresh_db.engine.connect() as connection:
        counted = connection.execute(
            text("SELECT count(*) FROM final_labels WHERE sample = 'study' AND stage = 'node-conversion'")
        ).scalar()
    assert counted == 148  # Table 8 from plain SQL, as the tool computes it


def test_two_raters_unfinished_answers_and_an_adjudication(fresh_db: Database, catalog):
    import_labels(fresh_db, taxonomy(), data_dir() / "pilot-ratings.csv", sample="pilot", catalog=catalog)
    before = from_view(fresh_db, "pilot")
    assert set(before["cause_source"]) >= {"agreed", "disputed"}
    disputed = before[before["cause_source"] == "disputed"].iloc[0]
    record(fresh_db, taxonomy(), int(disputed["issue_id"]), "cause", "type-problem", "carol")
    agreed = int(before[before["symptom_source"] == "agreed"].iloc[0]["issue_id"])
    with fresh_db.engine.begin() as connection:  # one rater reopens an issue: that answer is unfinished
        connection.execute(
            text(
                "UPDATE rater_issues SET status = 'in-progress' WHERE issue_id = :i AND rater_id = "
                "(SELECT min(rater_id) FROM rater_issues WHERE issue_id = :i)"
            ),
            {"i": agreed},
        )
    after = from_view(fresh_db, "pilot")
    same(after, from_python(fresh_db, "pilot", catalog))
    row = after.set_index("issue_id")
    assert row.loc[int(disputed["issue_id"]), "cause"] == "type-problem"
    assert row.loc[int(disputed["issue_id"]), "cause_source"] == "adjudicated"
    assert row.loc[agreed, "symptom_source"] == "single"  # only the finished answer counts


def test_issue_overview_is_one_row_per_issue_with_its_labels(fresh_db: Database, catalog):
    import_labels(fresh_db, taxonomy(), data_dir() / "study-labels.csv", rater="study", sample="study", catalog=catalog)
    with fresh_db.engine.connect() as connection:
        rows = connection.execute(text("SELECT issue_id, stage, labels_sample FROM issue_overview")).all()
    assert len(rows) == len({r.issue_id for r in rows}) == 200
    assert {r.labels_sample for r in rows} == {"study"} and sum(r.stage == "node-conversion" for r in rows) == 148
