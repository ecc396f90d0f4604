"""The filter rules one by one, and against the corpus's intent after a real fetch."""

from __future__ import annotations

from sqlalchemy import text

from issuemine.corpus.filters import FixEvent, availability, relevance, run_filters
from issuemine.domain.addresses import parse_issue_url
from tests.corpus.test_fetch import crawl


def test_relevance_rules(catalog):
    torch, tf = catalog["torch.onnx"], catalog["tf2onnx"]
    ok = relevance(torch, state="closed", is_pull_request=False, labels=["module: onnx", "triaged"], source="github")
    assert ok.value is True
    assert (
        relevance(torch, state="closed", is_pull_request=True, labels=["module: onnx"], source="github").rule
        == "pull request"
    )
    assert (
        relevance(torch, state="open", is_pull_request=False, labels=["module: onnx"], source="github").value is False
    )
    assert relevance(torch, state="closed", is_pull_request=False, labels=["module: jit"], source="github").rule == (
        "lacks label 'module: onnx'"
    )
    assert relevance(tf, state="closed", is_pull_request=False, labels=["question"], source="github").rule == (
        "excluded label 'question'"
    )
    assert relevance(tf, state=None, is_pull_request=False, labels=[], source="stub").value is None


def test_availability_rules_in_study_order(catalog):
    tf = catalog["tf2onnx"]
    own, other = "onnx/tensorflow-onnx", "onnx/onnx"

    def rule(*events: FixEvent) -> str:
        return availability(tf, events, timeline_complete=True).rule

    assert rule(FixEvent("closed", "abc")) == "closed-by-commit"
    assert rule(FixEvent("closed")) == "no fix in timeline"
    assert rule(FixEvent("referenced", "abc"), FixEvent("connected")) == "referenced-by-commit"
    assert rule(FixEvent("cross-referenced", source_repo=own, source_state="closed")) == "cross-referenced-closed"
    assert rule(FixEvent("cross-referenced", source_repo="ONNX/TensorFlow-ONNX", source_state="closed")) == (
        "cross-referenced-closed"
    )
    assert rule(FixEvent("cross-referenced", source_repo=own, source_state="open")) == "no fix in timeline"
    assert rule(FixEvent("cross-referenced", source_repo=other, source_state="closed")) == "no fix in timeline"
    assert rule(FixEvent("connected"), FixEvent("closed", "x")) == "closed-by-commit"
    assert rule(FixEvent("connected")) == "connected"
    assert availability(tf, [], timeline_complete=False).value is None


def test_filters_match_the_corpus_intent(fresh_db, client, gh, corpus, catalog):
    crawl(fresh_db, client, catalog)
    run_filters(fresh_db, [catalog["torch.onnx"], catalog["tf2onnx"]])
    with fresh_db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT r.full_name, i.number, f.available, f.availability_rule FROM filter_results f "
                "JOIN issues i ON i.id = f.issue_id JOIN repositories r ON r.id = i.repository_id WHERE f.relevant"
            )
        ).all()
    assert len(rows) > 200
    for repo, number, available, rule in rows:
        intended = corpus.truth[(repo, number)]
        assert available == (intended is not None), (repo, number, rule, intended)
        if intended is not None:
            assert rule == intended


def test_parse_issue_url():
    assert parse_issue_url("https://github.com/onnx/tensorflow-onnx/issues/997") == ("onnx/tensorflow-onnx", 997)
    assert parse_issue_url("pytorch/pytorch#12") == ("pytorch/pytorch", 12)
