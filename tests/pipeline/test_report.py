"""The report folder, RQ3 and the opset history cross-check."""

from __future__ import annotations

import csv
import json
import re
from datetime import date

import pandas as pd
import pytest
from scipy.stats import spearmanr

from issuemine.analysis import opsets, trends
from issuemine.db.labels import final_labels
from issuemine.domain.converters import load_catalog
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.ratings import import_labels
from issuemine.pipeline import report
from issuemine.resources import data_dir


@pytest.fixture
def study_db(fresh_db):  # type: ignore[no-untyped-def]
    tax = taxonomy()
    for name, sample, rater in (("study-labels.csv", "study", "study"), ("pilot-ratings.csv", "pilot", None)):
        import_labels(fresh_db, tax, data_dir() / name, rater=rater, sample=sample, catalog=load_catalog())
    return fresh_db


def independent_rq3() -> tuple[float, float, int]:
    """RQ3 straight from the shipped files, with the protocol written out again."""
    history = json.loads((data_dir() / "onnx-opset-history.json").read_text())
    with open(data_dir() / "study-labels.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["created"]]
    rel = [(int(v), date.fromisoformat(e["date"]), len(e["added"]) + len(e["updated"])) for v, e in history.items()]
    merged = [r for r in rel if 2 <= r[0] <= 7]
    rel = sorted(
        [r for r in rel if not 2 <= r[0] <= 7] + [(7, min(r[1] for r in merged), sum(r[2] for r in merged))],
        key=lambda r: r[1],
    )
    changes, counts, shares = [], [], []
    for i, (_, released, n_changes) in enumerate(rel[1:-1], start=1):
        end = rel[i + 1][1]
        window = [r for r in rows if released <= date.fromisoformat(r["created"]) < end]
        changes.append(n_changes)
        counts.append(len(window))
        shares.append(sum(r["cause_code"] in ("2", "3") for r in window) / len(window))
    return spearmanr(changes, counts).statistic, spearmanr(changes, shares).statistic, len(rows)


def test_rq3_follows_the_protocol(study_db):
    final = final_labels(study_db, taxonomy(), "study")
    result = trends.rq3(final, opsets.load_history())
    rho_all, rho_share, dated = independent_rq3()
    assert result.rho_all == pytest.approx(rho_all)
    assert result.rho_share == pytest.approx(rho_share)
    assert (result.dated, result.undated) == (dated, 200 - dated) == (185, 15)
    assert list(result.table["release"])[:3] == ["1", "2-7", "8"]


def test_opset_history_from_onnx_defs_agrees_where_expected():
    computed = opsets.from_onnx_defs()
    study = opsets.load_history()
    assert {"Conv", "MatMul", "Gemm"} <= computed[1].added
    assert "Resize" in computed[10].added and "Resize" in study[10].added
    diffs = {d.version: d for d in opsets.compare(study, computed)}
    # The study's opset 1 lacks operators onnx.defs dates to opset 1 (Relu, Softmax, ...).
    assert "Relu" in diffs[1].only_computed_added
    assert computed[2].updated == study[2].updated  # opsets with no difference are not listed
    assert 2 not in diffs


def test_report_folder_is_complete_and_self_contained(study_db, tmp_path):
    built = report.build(study_db, taxonomy(), load_catalog(), tmp_path / "r", "study")
    names = {p.relative_to(tmp_path / "r").as_posix() for p in built.files}
    for key in ("stages", "symptoms", "cause-by-symptom", "failures-over-time", "agreement"):
        assert f"figures/{key}.png" in names and f"figures/{key}.pdf" in names
    for key in ("stages", "symptoms", "cause-by-symptom", "causes", "cause-subtypes", "rq3-releases", "issue-flow"):
        for ext in ("md", "csv", "tex", "json"):
            assert f"tables/{key}.{ext}" in names
    page = built.html.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page), "the report must not load anything"
    assert "<script" not in page and page.count("data:image/png;base64,") == 5
    assert "Node conversion" in page and "Spearman" in page and "0.90" in page
    for pdf in (tmp_path / "r" / "figures").glob("*.pdf"):
        data = pdf.read_bytes()
        assert b"/Type3" not in data and b"/FontFile2" in data, pdf  # TrueType embedded, as ACM/IEEE require
    tex = (tmp_path / "r" / "tables" / "stages.tex").read_text()
    assert "\\toprule" in tex and "\\caption{" in tex and "\\label{tab:stages}" in tex
    assert "148 & 74.0 &" in tex and "000000" not in tex  # counts as integers, shares with one decimal


def test_cli_analyze_out_and_opset_trend(cli, study_db, db_path, tmp_path):
    from issuemine.cli.app import app

    result = cli.invoke(
        app, ["analyze", "--db", str(db_path), "--sample", "study", "--out", str(tmp_path / "o"), "--no-figures"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "report.html").exists() and not (tmp_path / "o" / "figures").exists()
    result = cli.invoke(
        app, ["analyze", "--db", str(db_path), "--sample", "study", "--table", "opset-trend", "--format", "csv"]
    )
    assert result.exit_code == 0 and result.stdout.splitlines()[0].startswith("release,released,changes,failures")
    assert "Spearman rho" in result.output


def test_figures_for_a_paper_and_a_report_that_guides(study_db, tmp_path):
    from issuemine.analysis import figures

    built = report.build(study_db, taxonomy(), load_catalog(), tmp_path / "r", "study", titles=False)
    page = built.html.read_text()
    assert "<nav><b>Contents</b>" in page and 'href="#symptoms-table-9"' in page and 'id="symptoms-table-9"' in page
    assert "imported from" in page  # an imported sample is not shown as drawn with seed 0
    bars = figures.stacked_bars(pd.DataFrame({"tf2onnx": [3, 1]}, index=["Crash", "Hang"]), "", "symptom")
    assert bars.axes[0].get_title() == ""
    chart = figures.agreement_chart(
        [
            {"group": "pilot", "dimension": "cause", "value": 0.9, "n": 60, "why": None},
            {"group": "study", "dimension": "cause", "value": None, "n": 200, "why": "one rater"},
        ],
        "",
    )
    texts = [t.get_text() for t in chart.axes[0].texts]
    assert "n=60" in texts and "n=200\none rater" in texts  # a missing bar says why


def test_difftest_campaigns_join_the_report(study_db, tmp_path):
    from issuemine.difftest.campaign import Plan, open_campaign, store
    from issuemine.difftest.report import message_pattern
    from issuemine.difftest.sequences import OpGraph

    campaign_id = open_campaign(study_db, Plan("tf2onnx", "tf2onnx", 17, 3, [10, 20], 3, 1, "study"))
    relu = OpGraph({"a": "MatMul", "b": "Relu"}, [("a", "b")]).record()
    erfc = OpGraph({"a": "MatMul", "b": "Erfc"}, [("a", "b")]).record()
    results = [
        (10, "success", relu, None),
        (10, "mismatch", erfc, None),
        (10, "conversion-failure", None, "ValidationError: No Op registered for Erfc with domain_version of 17\n\n"),
        (20, "conversion-failure", None, "ValidationError: No Op registered for Erfc with domain_version of 18"),
        (20, "ort-failure", erfc, "[ONNXRuntimeError] : 1 : FAIL : Load model from /tmp/x/c1-n20-s7.onnx failed"),
        (20, "mismatch", erfc, None),
    ]
    for seed, (nodes, outcome, graph, error) in enumerate(results):
        store(
            study_db,
            campaign_id,
            {
                "seed": seed,
                "nodes": nodes,
                "outcome": outcome,
                "graph": graph,
                "error": error,
                "policies": {"study": outcome == "success"},
            },
        )
    built = report.build(study_db, taxonomy(), load_catalog(), tmp_path / "r", "study")
    names = {p.relative_to(tmp_path / "r").as_posix() for p in built.files}
    assert {"figures/difftest-outcomes.png", "tables/difftest-table-11.csv", "tables/difftest-table-12.tex"} <= names
    page = built.html.read_text()
    assert "Differential testing of converters (Tables 11 and 12)" in page and "Erfc" in page
    failures = pd.read_csv(tmp_path / "r" / "tables" / "difftest-failures.csv")
    # The two Erfc messages differ only in a number: one group of two models.
    erfc_row = failures[failures["message"].str.contains("Erfc")]
    assert list(erfc_row["models"]) == [2] and "domain_version of N" in erfc_row["message"].iloc[0]
    assert "<file>" in message_pattern("Load model from /tmp/x/c1-n20-s7.onnx failed")
    # Shapes and arrays printed in a message, of any length, do not split a group.
    ranks = [
        "ValueError: Dimensions must be equal, with input shapes: [1,3,4], [1,4,3].",
        "ValueError: Dimensions must be equal, with input shapes: [2, 3, 5, 7], [ 2 , 7 ].",
        "ValueError: Dimensions must be equal, with input shapes: [-1, 0.5], [].",
    ]
    assert len({message_pattern(m) for m in ranks}) == 1
    assert message_pattern("shape (1, 3, 224) vs (2, 3)") == message_pattern("shape (7,) vs (-1, 8, 9, 9)")
    assert message_pattern("Unsupported op (Erfc)") == "Unsupported op (Erfc)"  # a word in parentheses stays
    table_11 = pd.read_csv(tmp_path / "r" / "tables" / "difftest-table-11.csv", index_col=0)
    total = table_11.loc[f"{campaign_id} / all"]  # rows are campaign / size
    assert (total["success"], total["mismatch"], total["conversion-failure"], total["ort-failure"]) == (1, 2, 2, 1)
