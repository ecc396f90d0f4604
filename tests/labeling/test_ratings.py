"""Importing, exporting and reading labels; agreement on the study's pilot data."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from issuemine.db.labels import final_labels, ratings_frame
from issuemine.domain.converters import load_catalog
from issuemine.domain.taxonomy import taxonomy
from issuemine.errors import IssuemineError
from issuemine.labeling.agreement import agreement
from issuemine.labeling.ratings import export_rows, import_labels, write_export
from issuemine.resources import data_dir

STUDY = data_dir() / "study-labels.csv"
PILOT = data_dir() / "pilot-ratings.csv"
DRIFT = data_dir() / "drift-ratings.csv"


@pytest.fixture
def tax():  # type: ignore[no-untyped-def]
    return taxonomy()


def test_study_labels_import_as_stubs_and_final_labels_match_the_sheet(fresh_db, tax):
    report = import_labels(fresh_db, tax, STUDY, rater="study", sample="study", catalog=load_catalog())
    assert (report.rows, report.stubs) == (200, 200)
    final = final_labels(fresh_db, tax, "study")
    assert len(final) == 200
    # Counted straight from the sheet's numeric columns, through the codebook numbers.
    with open(STUDY, encoding="utf-8") as fh:
        sheet = list(csv.DictReader(fh))
    stage_names = {c.number: c.code for c in tax.dimension("stage").codes}
    expected = Counter((r["converter"], stage_names[int(r["stage_code"])]) for r in sheet)
    assert Counter(zip(final["converter"], final["stage"], strict=True)) == expected
    symptom_names = {c.number: c.code for c in tax.dimension("symptom").codes}
    expected = Counter((r["converter"], symptom_names[int(r["symptom_code"])]) for r in sheet)
    assert Counter(zip(final["converter"], final["symptom"], strict=True)) == expected
    assert set(final["stage_source"]) == {"single"}
    externals = sum(1 for r in sheet if r["incompatibility_code"] == "2")
    assert (final["subcause"] == "incompatibility.external").sum() == externals
    with fresh_db.engine.connect() as conn:
        titled = conn.execute(text("SELECT count(*) FROM issues WHERE title IS NOT NULL")).scalar()
        dated = conn.execute(text("SELECT count(*) FROM issues WHERE created_at IS NOT NULL")).scalar()
    assert (titled, dated) == (sum(1 for r in sheet if r["title"]), sum(1 for r in sheet if r["created"]))


def test_pilot_agreement_reproduces_the_study(fresh_db, tax):
    import_labels(fresh_db, tax, STUDY, rater="study", sample="study", catalog=load_catalog())
    import_labels(fresh_db, tax, PILOT, sample="pilot", catalog=load_catalog())
    results = {(r.dimension, r.scope): r for r in agreement(ratings_frame(fresh_db, "pilot"), tax)}
    published = {  # Jajal et al., ISSTA 2024, §5.1.3 (pilot study)
        ("cause", "all"): 0.90,
        ("symptom", "all"): 0.95,
        ("cause", "tf2onnx"): 0.88,
        ("symptom", "tf2onnx"): 0.91,
        ("cause", "torch.onnx"): 0.92,
        ("symptom", "torch.onnx"): 1.00,
    }
    for key, kappa in published.items():
        assert results[key].raters == ["R1", "R2"]
        assert round(results[key].kappa, 2) == kappa, key
    assert results[("cause", "all")].n == 60
    confusion = results[("symptom", "all")].confusion
    assert sum(sum(row.values()) for row in confusion.values()) == 60


def test_drift_check_has_perfect_agreement(fresh_db, tax):
    import_labels(fresh_db, tax, DRIFT, sample="drift", catalog=load_catalog())
    results = agreement(ratings_frame(fresh_db, "drift"), tax)
    assert {r.dimension for r in results} == {"stage", "symptom", "cause", "subcause"}
    assert all(r.kappa == 1.0 and r.alpha == 1.0 for r in results)


def test_krippendorff_alpha_with_three_raters(fresh_db, tax, tmp_path):
    rows = ["url,rater,symptom"]
    codes = {"A": "1121", "B": "1122", "C": "1121"}
    for rater, seq in codes.items():
        for n, code in enumerate(seq, start=1):
            rows.append(f"https://github.com/o/r/issues/{n},{rater},{code}")
    path = tmp_path / "three.csv"
    path.write_text("\n".join(rows) + "\n")
    import_labels(fresh_db, tax, path, sample="three")
    [result] = agreement(ratings_frame(fresh_db, "three"), tax)
    assert result.kappa is None and len(result.pairwise) == 3
    assert result.percent == 0.75
    # Nominal alpha by hand from the coincidence matrix: units (1,1,1) (1,1,1) (2,2,2) (1,2,1) give
    # o(1,1)=7, o(2,2)=3, o(1,2)=o(2,1)=1, so n1=8, n2=4, n=12; D_o=2/12, D_e=2*8*4/(12*11).
    assert result.alpha == pytest.approx(1 - (2 / 12) / (2 * 8 * 4 / (12 * 11)))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "url,rater,cause\nhttps://github.com/o/r/issues/1,A,Typo\nhttps://github.com/o/r/issues/2,A,Gremlins\n",
            "line 3: unknown cause 'Gremlins'",
        ),
        (
            "url,rater,symptom_code\nhttps://github.com/o/r/issues/1,A,1\nhttps://github.com/o/r/issues/2,A,99\n",
            "line 3: unknown symptom '99'",
        ),
        ("url,cause\nhttps://github.com/o/r/issues/1,Typo\n", "line 2: no rater"),
        (
            "url,rater,cause,incompatibility\nhttps://github.com/o/r/issues/1,A,Typo,External\n",
            "line 2: column 'incompatibility' is set but the cause is 'typo'",
        ),
        ("url,rater,cause\nnot-a-url,A,Typo\n", "line 2: not a GitHub issue URL"),
        ("url,rater,cause,cause_code\nhttps://github.com/o/r/issues/1,A,Typo,2\n", "cause columns disagree"),
    ],
)
def test_bad_files_are_rejected_whole(fresh_db, tax, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(IssuemineError, match=message):
        import_labels(fresh_db, tax, path, sample="x")
    with fresh_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ratings")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM issues")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM samples")).scalar() == 0


def test_spreadsheet_encodings_are_read_and_binary_files_refused(fresh_db, tax, tmp_path):
    rows = "url,rater,cause,note\nhttps://github.com/o/r/issues/1,Zoë,Typo,caf\u00e9\n"
    bom = tmp_path / "excel.csv"
    bom.write_bytes(rows.encode("utf-8-sig"))  # Excel's "CSV UTF-8"
    assert import_labels(fresh_db, tax, bom, sample="a").ratings == 1
    legacy = tmp_path / "legacy.csv"
    legacy.write_bytes(rows.replace("issues/1", "issues/2").encode("cp1252"))  # an older "CSV (Comma delimited)"
    report = import_labels(fresh_db, tax, legacy, sample="b")
    assert report.ratings == 1 and report.raters == {"Zoë"}
    binary = tmp_path / "labels.xlsx.csv"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(IssuemineError, match="not a text file"):
        import_labels(fresh_db, tax, binary, sample="c")


def test_export_then_import_round_trips(fresh_db, tax, tmp_path, db_path):
    from issuemine.db import open_db

    import_labels(fresh_db, tax, DRIFT, sample="drift")
    for fmt in ("csv", "json", "jsonl"):
        records = export_rows(fresh_db, tax, "drift")
        path = tmp_path / f"labels.{fmt}"
        with open(path, "w", encoding="utf-8") as fh:
            write_export(records, fmt, fh)
        assert {"rater", "taxonomy_version", "seconds", "labeled_at", "status"} <= set(records[0])
        other = open_db(str(tmp_path / f"{fmt}.db"))
        import_labels(other, tax, path, sample="drift")
        mine = ratings_frame(fresh_db, "drift").sort_values(["repo", "number", "rater", "dimension"])
        theirs = ratings_frame(other, "drift").sort_values(["repo", "number", "rater", "dimension"])
        cols = ["repo", "number", "rater", "dimension", "code"]
        assert mine[cols].values.tolist() == theirs[cols].values.tolist()
        other.close()
    assert json.loads((tmp_path / "labels.json").read_text())[0]["taxonomy_version"] == tax.version


def test_cli_agree_and_import(cli, db_path):
    from issuemine.cli.app import app

    db = str(db_path)
    result = cli.invoke(app, ["labels", "import", str(PILOT), "--sample", "pilot", "--db", db])
    assert result.exit_code == 0, result.output
    result = cli.invoke(app, ["agree", "--sample", "pilot", "--db", db, "--json"])
    data = {(r["dimension"], r["scope"]): r for r in json.loads(result.stdout)}
    assert round(data[("cause", "all")]["kappa"], 2) == 0.90
    bad = db_path.parent / "bad.csv"
    bad.write_text("url,rater,stage\nhttps://github.com/o/r/issues/3,A,Nowhere\n")
    result = cli.invoke(app, ["labels", "import", str(bad), "--db", db])
    assert result.exit_code == 2 and "line 2: unknown stage 'Nowhere'" in result.output
    out = cli.invoke(app, ["labels", "export", "--format", "jsonl", "--db", db])
    assert len(out.stdout.splitlines()) == 120


def test_data_files_are_shipped_with_provenance():
    provenance = (data_dir() / "PROVENANCE.md").read_text()
    for name in ("study-labels.csv", "pilot-ratings.csv", "drift-ratings.csv", "artifact-table11.csv"):
        assert (data_dir() / name).exists() and name in provenance
    assert "shared/" not in provenance  # public sources a user can follow, not this project's folder
    assert Path(STUDY).read_text().count("\n") == 201


def test_kappa_matches_scikit_learn():
    import random

    from sklearn.metrics import cohen_kappa_score

    from issuemine.labeling.agreement import cohen_kappa

    rng = random.Random(3)
    for _ in range(20):
        a = [rng.choice("abcde") for _ in range(80)]
        b = [x if rng.random() < 0.7 else rng.choice("abcde") for x in a]
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
