"""The study's tables: from the shipped labels end to end, and against independent counts."""

from __future__ import annotations

import json
import random
from collections import Counter

import pandas as pd
import pytest

from issuemine.analysis.stats import converters_differ, wilson
from issuemine.analysis.tables import cause_by_symptom, render, stage_table, subtype_table, symptom_table
from issuemine.db import open_db
from issuemine.db.labels import final_labels
from issuemine.domain.converters import load_catalog
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.ratings import import_labels
from issuemine.resources import data_dir
from tests.helpers import markdown_tables


@pytest.fixture
def study(fresh_db):  # type: ignore[no-untyped-def]
    tax = taxonomy()
    import_labels(fresh_db, tax, data_dir() / "study-labels.csv", rater="study", sample="study", catalog=load_catalog())
    return final_labels(fresh_db, tax, "study", {c.repo: c.name for c in load_catalog().values()})


def test_table_8_stages(study):
    t = stage_table(study, taxonomy())
    # Jajal et al., ISSTA 2024, Table 8: TF / PT / total.
    published = {
        "Load model": (5, 6, 11),
        "Node conversion": (70, 78, 148),
        "Graph optimization": (14, 5, 19),
        "Export": (1, 0, 1),
        "Validation": (0, 3, 3),
        "Not distinguishable": (10, 8, 18),
    }
    for stage, (tf, pt, total) in published.items():
        assert tuple(t.loc[stage, ["tf2onnx", "torch.onnx", "total"]]) == (tf, pt, total)
    assert t.loc["Node conversion", "percent"] == 74.0


def test_table_9_symptoms(study):
    t = symptom_table(study, taxonomy())
    published = {
        "Crash": (50, 62, 112, 226),
        "Wrong model": (35, 30, 65, 100),
        "Build failure": (3, 2, 5, 3),
        "Bad performance": (2, 1, 3, 6),
        "Hang": (0, 0, 0, 4),
        "Unreported": (10, 5, 15, 20),
    }
    for symptom, row in published.items():
        assert tuple(t.loc[symptom, ["tf2onnx", "torch.onnx", "total", "dl_compiler_frontends"]]) == row
    assert t.loc["Crash", "percent"] == 56.0 and round(t.loc["Wrong model", "percent"]) == 32
    assert t["dl_compiler_frontends"].sum() == 359


def test_table_10_cause_by_symptom(study):
    t = cause_by_symptom(study, taxonomy())
    published = {  # crash TF/PT, wrong model TF/PT, other TF/PT
        "Incompatibility": (19, 28, 4, 3, 2, 1),
        "Type problem": (8, 14, 17, 13, 0, 2),
        "Algorithmic error": (4, 3, 10, 3, 4, 0),
        "Tensor shape problem": (5, 4, 4, 7, 0, 1),
        "API misuse": (6, 5, 0, 1, 0, 0),
        "Other": (8, 8, 0, 3, 9, 4),
    }
    assert list(t.index) == list(published)
    for cause, row in published.items():
        assert tuple(int(v) for v in t.loc[cause]) == row


def test_tables_match_independent_counts_on_random_labels():
    tax = taxonomy()
    rng = random.Random(2)
    rows = []
    for i in range(500):
        cause = rng.choice(tax.all_codes("cause"))
        subs = tax.subtypes(cause)
        rows.append(
            {
                "issue_id": i,
                "repo": "o/r",
                "number": i,
                "converter": rng.choice(["a", "b", "c"]),
                "stage": rng.choice(tax.all_codes("stage")),
                "symptom": rng.choice(tax.all_codes("symptom")),
                "cause": cause,
                "subcause": rng.choice(subs).code if subs and rng.random() < 0.8 else None,
            }
        )
    final = pd.DataFrame(rows)
    names = {c.code: c.name for c in tax.dimension("stage").codes}
    expected = Counter((names[r["stage"]], r["converter"]) for r in rows)
    t = stage_table(final, tax)
    for (stage, conv), n in expected.items():
        assert t.loc[stage, conv] == n
    assert t["total"].sum() == 500
    subs = subtype_table(final, tax)
    assert subs["total"].sum() == sum(1 for r in rows if r["subcause"])
    top = cause_by_symptom(final, tax, top=3)
    assert len(top) == 4 and int(top.to_numpy().sum()) == 500
    ranking = Counter(r["cause"] for r in rows if r["cause"] != "others")
    order = tax.all_codes("cause")
    expected_top = sorted(ranking, key=lambda c: (-ranking[c], order.index(c)))[:3]
    assert list(top.index[:3]) == [tax.display("cause", c) for c in expected_top]


def test_wilson_interval_known_values():
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson(148, 200)
    assert (round(lo, 3), round(hi, 3)) == (0.675, 0.796)


def test_converters_differ(study):
    from issuemine.analysis.tables import _distribution

    result = converters_differ(_distribution(study, taxonomy(), "stage"))
    assert result.test.startswith("chi-square") and 0 < result.p_value < 1 and result.dof == 5


def test_formats(study):
    t = stage_table(study, taxonomy())
    assert "| Node conversion" in render(t, "md")
    assert render(t, "csv").splitlines()[0].startswith("stage,tf2onnx,torch.onnx,total")
    assert "\\begin{tabular}" in render(t, "latex")
    assert json.loads(render(t, "json"))["Node conversion"]["total"] == 148


def test_latex_has_no_character_pdflatex_rejects():
    frame = pd.DataFrame({"max |Δ| ≤ ε": [1.5, 2.0], "p50 ms ×": [3, 4]}, index=["Add → Tanh", "κ–ρ"])
    frame.index.name = "sequence"
    text = render(frame, "latex")
    # Outside math mode only ASCII (utf8 input would also take accented letters; none here).
    outside = "".join(part for k, part in enumerate(text.split("$")) if k % 2 == 0)
    assert outside.isascii(), [ch for ch in outside if not ch.isascii()]
    assert r"max |$\Delta$| $\leq$ $\varepsilon$" in text and r"Add $\rightarrow$ Tanh" in text
    assert r"$\kappa$--$\rho$" in text and r"p50 ms $\times$" in text


def test_cli_analyze(cli, db_path, tmp_path):
    from issuemine.cli.app import app

    db = str(db_path)
    for name, sample, rater in (("study-labels.csv", "study", "study"), ("pilot-ratings.csv", "pilot", None)):
        args = ["labels", "import", str(data_dir() / name), "--sample", sample, "--db", db]
        assert cli.invoke(app, args + (["--rater", rater] if rater else [])).exit_code == 0
    result = cli.invoke(app, ["analyze", "--db", db, "--table", "stages"])
    assert result.exit_code == 2 and "choose one: --sample pilot --sample study" in result.output
    result = cli.invoke(app, ["analyze", "--db", db, "--sample", "study", "--table", "symptoms", "--format", "csv"])
    assert "Crash,50,62,112" in result.stdout
    result = cli.invoke(app, ["analyze", "--db", db, "--sample", "study", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0
    written = {p.name for p in (tmp_path / "r" / "tables").iterdir()}
    assert {
        f"{t}.{ext}"
        for t in ("stages", "symptoms", "causes", "cause-subtypes", "cause-by-symptom")
        for ext in ("md", "csv", "tex", "json")
    } <= written
    result = cli.invoke(app, ["analyze", "--db", db, "--sample", "study", "--table", "nope"])
    assert result.exit_code == 2 and "unknown --table 'nope'" in result.output
    # The paper's names, and every table as Markdown a paper's repository can hold.
    result = cli.invoke(app, ["analyze", "--db", db, "--sample", "study", "--table", "Table8", "--format", "md"])
    assert result.exit_code == 0 and markdown_tables(result.stdout)[0][0][0] == "stage"
    result = cli.invoke(app, ["analyze", "--db", db, "--sample", "study", "--format", "md"])
    assert result.exit_code == 0 and len(markdown_tables(result.stdout)) >= 5


def test_labels_imported_without_a_sample_are_analyzed(cli, db_path):
    """`labels import FILE --rater R` with no --sample: analyze finds them (a user's first try)."""
    from issuemine.cli.app import app

    db = str(db_path)
    result = cli.invoke(app, ["analyze", "--db", db, "--table", "stages"])
    assert result.exit_code == 2 and "no database at" in result.output  # reading creates none
    open_db(db).close()
    result = cli.invoke(app, ["analyze", "--db", db, "--table", "stages"])
    assert result.exit_code == 2 and "nothing labeled yet" in result.output
    args = ["labels", "import", str(data_dir() / "study-labels.csv"), "--rater", "ana", "--db", db]
    assert cli.invoke(app, args).exit_code == 0
    result = cli.invoke(app, ["analyze", "--db", db, "--table", "symptoms", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "Crash,50,62,112" in result.stdout
    final = cli.invoke(app, ["labels", "export", "--final", "--format", "json", "--db", db])
    rows = json.loads(final.stdout)
    assert final.exit_code == 0 and len(rows) == 200 and {r["sample"] for r in rows} == {None}
