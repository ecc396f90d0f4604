"""Samples are seeded, reproducible, stratified and stored by name."""

from __future__ import annotations

import pytest

from issuemine.corpus.filters import run_filters
from issuemine.corpus.sampling import create_sample, eligible_issues, sample_members
from issuemine.errors import IssuemineError
from tests.corpus.test_fetch import crawl


@pytest.fixture
def filtered(fresh_db, client, gh, catalog):  # type: ignore[no-untyped-def]
    crawl(fresh_db, client, catalog)
    run_filters(fresh_db, [catalog["torch.onnx"], catalog["tf2onnx"]])
    return fresh_db


def test_same_seed_same_members_and_stratified(filtered, catalog):
    convs = [catalog["torch.onnx"], catalog["tf2onnx"]]
    report = create_sample(filtered, "a", convs, 25, seed=7)
    assert report.members == {"torch.onnx": 25, "tf2onnx": 25}
    first = sample_members(filtered, "a")
    again = create_sample(filtered, "a", convs, 25, seed=7)
    assert not again.created and sample_members(filtered, "a") == first
    create_sample(filtered, "b", convs, 25, seed=7)
    assert sample_members(filtered, "b") == first
    create_sample(filtered, "c", convs, 25, seed=8)
    assert sample_members(filtered, "c") != first
    eligible = {c.name: set(eligible_issues(filtered, c, False)) for c in convs}
    assert all((conv == "torch.onnx" and repo == "pytorch/pytorch") or conv == "tf2onnx" for conv, repo, _ in first)
    assert len(eligible["torch.onnx"]) > 25


def test_one_converter_draw_does_not_depend_on_the_other(filtered, catalog):
    both = create_sample(filtered, "both", [catalog["torch.onnx"], catalog["tf2onnx"]], 10, seed=3)
    alone = create_sample(filtered, "alone", [catalog["tf2onnx"]], 10, seed=3)
    assert both.created and alone.created
    tf_both = [m for m in sample_members(filtered, "both") if m[0] == "tf2onnx"]
    assert tf_both == sample_members(filtered, "alone")


def test_name_clash_needs_replace(filtered, catalog):
    convs = [catalog["tf2onnx"]]
    create_sample(filtered, "s", convs, 10, seed=1)
    with pytest.raises(IssuemineError, match="already exists"):
        create_sample(filtered, "s", convs, 10, seed=2)
    create_sample(filtered, "s", convs, 10, seed=2, replace=True)
    assert len(sample_members(filtered, "s")) == 10


def test_small_pool_takes_everything(filtered, catalog):
    pool = len(eligible_issues(filtered, catalog["tf2onnx"], False))
    report = create_sample(filtered, "all", [catalog["tf2onnx"]], pool + 50, seed=1)
    assert report.members == {"tf2onnx": pool}
