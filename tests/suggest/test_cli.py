"""`issuemine suggest` and suggestions in the label session, on a real database."""

from __future__ import annotations

import json

from sqlalchemy import text

from issuemine.cli.app import app
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.session import LabelSession
from tests.cli.test_cli import assert_clean_error


def run(cli, *args: str):  # type: ignore[no-untyped-def]
    return cli.invoke(app, list(args), catch_exceptions=False)


def numbers(db) -> list[int]:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                text("SELECT i.number FROM issues i WHERE i.body IS NOT NULL AND i.body <> '' ORDER BY i.number")
            )
        ]


def import_labels(cli, db_path, tmp_path, issues: list[int]) -> None:  # type: ignore[no-untyped-def]
    rows = ["repo,number,rater,stage,symptom,cause"]
    for i, n in enumerate(issues):
        stage, symptom, cause = (("2", "1", "4"), ("3", "2", "2"))[i % 2]
        rows.append(f"onnx/tensorflow-onnx,{n},ana,{stage},{symptom},{cause}")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    result = run(cli, "labels", "import", str(path), "--db", str(db_path))
    assert result.exit_code == 0, result.output


def test_first_use_gets_the_study_model_then_train_show_and_evaluate(cli, label_db, db_path, tmp_path):
    db = str(db_path)
    first = numbers(label_db)[0]
    shown = json.loads(run(cli, "suggest", "show", f"onnx/tensorflow-onnx#{first}", "--db", db, "--json").stdout)
    assert shown["model"] == "study#1"
    for dim in ("stage", "symptom", "cause"):
        top3 = shown["suggestions"][dim]["top3"]
        assert 1 <= len(top3) <= 3 and top3[0]["confidence"] >= top3[-1]["confidence"]
        assert shown["suggestions"][dim]["evidence"]
    with label_db.engine.connect() as conn:
        source, trained_on = conn.execute(text("SELECT source, trained_on FROM suggest_models")).one()
    assert source == "data/study-labels.csv" and json.loads(trained_on)["issues"] == 150

    import_labels(cli, db_path, tmp_path, numbers(label_db)[:12])
    trained = json.loads(run(cli, "suggest", "train", "--db", db, "--json").stdout)
    assert trained["name"] == "labels" and trained["trained_on"]["issues"] == 12
    assert sorted(trained["trained_on"]["per_dimension"]["stage"].values()) == [6, 6]
    assert set(trained["versions"]) >= {"scikit-learn", "spacy", "python"}
    shown = json.loads(run(cli, "suggest", "show", f"onnx/tensorflow-onnx#{first}", "--db", db, "--json").stdout)
    assert shown["model"] == "labels#2"  # the newest model is the current one

    result = json.loads(run(cli, "suggest", "evaluate", "--cv", "3", "--db", db, "--json").stdout)
    assert result["issues"] == 12 and result["how"].startswith("3-fold")
    dims = {d["dimension"]: d for d in result["dimensions"]}
    assert dims["stage"]["n"] == 12 and dims["stage"]["baseline"] == 0.5
    human = run(cli, "suggest", "evaluate", "--cv", "3", "--db", db)
    assert "majority baseline" in human.output and "gold (rows)" in human.output


def test_evaluate_on_an_external_file_scores_unknown_issues_on_the_file_text(cli, label_db, db_path, tmp_path):
    db = str(db_path)
    known = numbers(label_db)[0]
    path = tmp_path / "external.csv"
    path.write_text(
        "url,converter,title,body,stage,symptom,cause\n"
        f"https://github.com/onnx/tensorflow-onnx/issues/{known},tf2onnx,,,Node Transformation,Crash,Shape Problem\n"
        "https://github.com/pytorch/pytorch/issues/999991,torch.onnx,Exporting aten::roll is not supported,"
        '"UnsupportedOperatorError: Exporting the operator aten::roll to ONNX opset version 9",'
        "Node Transformation,Crash,Incompatability\n"
        "https://github.com/pytorch/pytorch/issues/999992,torch.onnx,ONNX output differs from PyTorch,,"
        "Validation,Wrong Code,2\n"
    )
    result = json.loads(run(cli, "suggest", "evaluate", "--labels", str(path), "--db", db, "--json").stdout)
    assert result["issues"] == 3 and "not retrained" in result["how"]
    dims = {d["dimension"]: d for d in result["dimensions"]}
    assert dims["stage"]["n"] == 3 and dims["cause"]["n"] == 3
    assert dims["stage"]["baseline_code"] == "node-conversion"  # the study model's majority
    with label_db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM issues WHERE number > 999990")).scalar() == 0  # read only


def test_bad_label_files_are_one_line_errors(cli, db_path, tmp_path):
    db = str(db_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("url,title,stage\nhttps://github.com/o/r/issues/1,t,Somewhere\n")
    assert_clean_error(run(cli, "suggest", "evaluate", "--labels", str(bad), "--db", db), "unknown stage")
    empty = tmp_path / "empty.csv"
    empty.write_text("url,title,stage\n")
    assert_clean_error(run(cli, "suggest", "evaluate", "--labels", str(empty), "--db", db), "no labeled rows")
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x00\x01\x02PK\x03\x04" * 50)
    assert_clean_error(run(cli, "suggest", "evaluate", "--labels", str(binary), "--db", db))
    assert_clean_error(run(cli, "suggest", "show", "o/r#5", "--db", db), "no issue o/r#5")
    assert_clean_error(run(cli, "suggest", "train", "--db", db), "no issue in the database has final labels")


def test_the_session_shows_suggestions_with_evidence_unless_the_sample_hides_them(cli, label_db, db_path):
    from issuemine.cli.labeling import _prepare_suggestions

    tax = taxonomy()
    assert _prepare_suggestions(label_db, tax, "s", needed=False) is True
    session = LabelSession(label_db, tax, "s", "ana").start()
    assert session.screen().suggestion is None  # shown after the answer, not before
    session.press("e")  # the evidence is there at any time
    assert session.screen().pane == "evidence" and session.screen().issue.evidence["stage"]
    suggested = session.screen().issue.suggestions["stage"]
    assert suggested[2] == "study#1" and 0 < suggested[1] <= 1
    session.press("e")
    session.press("1")
    assert session.screen().message.startswith("stage: the model ")

    # A sample that opts in pre-selects from its threshold; Enter then accepts.
    result = run(cli, "suggest", "mode", "--sample", "s", "--preselect", "0", "--db", str(db_path))
    assert "pre-selected at confidence 0.00" in result.output
    from issuemine.suggest.store import sample_preselect

    pre = LabelSession(label_db, tax, "s", "carl", preselect=sample_preselect(label_db, "s")).start()
    assert pre.screen().suggestion == suggested
    pre.press("\r")
    with label_db.engine.connect() as conn:
        stored = conn.execute(
            text("SELECT r.code FROM ratings r JOIN raters p ON p.id = r.rater_id WHERE p.name = 'carl'")
        ).scalar()
    assert stored == suggested[0]

    result = run(cli, "suggest", "mode", "--sample", "s", "--hide", "--db", str(db_path))
    assert "hidden" in result.output
    assert _prepare_suggestions(label_db, tax, "s", needed=False) is False
    blind = LabelSession(label_db, tax, "s", "bob", suggestions=False).start()
    assert blind.screen().suggestion is None
    blind.press("e")
    assert blind.screen().message == "suggestions are hidden for this sample"
    assert_clean_error(run(cli, "suggest", "mode", "--sample", "nosuch", "--db", str(db_path)), "no sample")


def test_order_uncertain_puts_the_least_certain_issues_first(label_db):
    from issuemine.cli.labeling import _prepare_suggestions

    tax = taxonomy()
    _prepare_suggestions(label_db, tax, "s", needed=True)
    with label_db.engine.connect() as conn:
        mean = dict(
            conn.execute(
                text(
                    "SELECT issue_id, AVG(confidence) FROM suggestions WHERE dimension IN ('stage','symptom','cause') "
                    "GROUP BY issue_id"
                )
            ).all()
        )
    session = LabelSession(label_db, tax, "s", "ana", order="uncertain").start()
    assert [round(mean[i], 6) for i in session.queue] == sorted(round(mean[i], 6) for i in session.queue)
    assert session.screen().issue.issue_id == session.queue[0]
