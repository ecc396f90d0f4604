"""Assignment plans: a shared overlap per converter, the rest dealt out in turn."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from issuemine.db.labels import ratings_frame
from issuemine.domain.taxonomy import taxonomy
from issuemine.errors import IssuemineError
from issuemine.labeling.assignments import plan_sample, rater_queue
from issuemine.labeling.ratings import import_labels
from issuemine.resources import data_dir


@pytest.fixture
def study(fresh_db, catalog):  # type: ignore[no-untyped-def]
    import_labels(fresh_db, taxonomy(), data_dir() / "study-labels.csv", rater="study", sample="study", catalog=catalog)
    with fresh_db.engine.connect() as conn:  # plan a fresh sample of the same issues
        conn.execute(text("DELETE FROM assignments"))
        conn.commit()
    return fresh_db


def assigned(db, rater):  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return set(
            conn.execute(
                text("SELECT a.issue_id FROM assignments a JOIN raters r ON r.id = a.rater_id WHERE r.name = :r"),
                {"r": rater},
            ).scalars()
        )


def test_overlap_per_converter_then_round_robin(study):
    report = plan_sample(study, "study", ["ana", "bob"], 30)
    assert report.shared == {"tf2onnx": 30, "torch.onnx": 30}
    # 60 shared + 140 dealt out: 70 each.
    assert report.raters == {"ana": 130, "bob": 130}
    ana, bob = assigned(study, "ana"), assigned(study, "bob")
    assert len(ana & bob) == 60 and len(ana | bob) == 200
    with pytest.raises(IssuemineError, match="already has an assignment plan"):
        plan_sample(study, "study", ["ana"], 0.5)
    report = plan_sample(study, "study", ["ana", "bob", "cy"], 0.1, replace=True)
    assert report.shared == {"tf2onnx": 10, "torch.onnx": 10}
    assert sum(report.raters.values()) == 20 * 3 + 180


def test_planned_sample_refuses_an_unassigned_rater_and_scopes_agreement(study):
    plan_sample(study, "study", ["ana", "bob"], 2)
    with study.session() as session, pytest.raises(IssuemineError, match="has no issues in sample 'study'"):
        rater_queue(session, "study", "zed")
    with study.session() as session:
        _, queue = rater_queue(session, "study", "ana")
    assert len(queue) == 2 * (2 + (100 - 2) // 2)  # per converter: 2 shared + half of the other 98
    # The study rater's labels are not assigned in this plan, so they do not count for it.
    assert ratings_frame(study, "study").empty


def test_overlap_counts_and_shares_are_told_apart():
    from issuemine.labeling.assignments import parse_overlap

    assert parse_overlap("30") == 30 and parse_overlap("1") == 1
    assert parse_overlap("1.0") == 1.0 and isinstance(parse_overlap("1.0"), float)
    assert parse_overlap("30%") == pytest.approx(0.3) and parse_overlap("0.3") == 0.3
    for bad in ("lots", "150%", "-0.5"):
        with pytest.raises(IssuemineError):
            parse_overlap(bad)


def test_a_share_of_one_is_every_issue(study):
    report = plan_sample(study, "study", ["ana", "bob"], 1.0)
    assert report.shared == {"tf2onnx": 100, "torch.onnx": 100}, report.shared


def test_the_first_rater_of_a_double_labeled_sample_labels_blind(study):
    from issuemine.cli.labeling import first_of_double_labeled, suggestion_agreement

    assert first_of_double_labeled(study, "study", "ana") is False  # no plan: nobody is first
    plan_sample(study, "study", ["ana", "bob"], 5)
    assert first_of_double_labeled(study, "study", "ana") is True
    assert first_of_double_labeled(study, "study", "bob") is False
    plan_sample(study, "study", ["ana", "bob"], 0, replace=True)  # no overlap: nobody labels blind
    assert first_of_double_labeled(study, "study", "ana") is False
    # The anchoring check: how often raters took the suggestion, seen first or only after.
    with study.engine.connect() as conn:
        conn.execute(text("UPDATE ratings SET suggested = code, suggestion_shown = 1 WHERE dimension = 'stage'"))
        conn.execute(text("UPDATE ratings SET suggested = 'export', suggestion_shown = 0 WHERE dimension = 'symptom'"))
        conn.commit()
    rows = {(r["dimension"], r["visible before the answer"]): r for r in suggestion_agreement(study, None)}
    assert rows[("stage", True)]["agree"] == 1.0 and rows[("stage", True)]["n"] == 200
    assert rows[("symptom", False)]["agree"] == 0.0


def test_odd_remainders_are_dealt_across_converters(study):
    # 100 per converter, overlap 1: 99 left in each. Dealt per converter from the first rater, ana
    # would get both odd ones (50 + 50 against 49 + 49); the deal goes on across converters instead.
    report = plan_sample(study, "study", ["ana", "bob"], 1)
    assert report.raters == {"ana": 2 + 99, "bob": 2 + 99}
