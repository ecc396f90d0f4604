"""The suggestion model: it finds separable classes, reports honestly, stores and reloads exactly."""

from __future__ import annotations

import numpy as np
import pytest

from issuemine.domain.taxonomy import taxonomy
from issuemine.errors import IssuemineError
from issuemine.suggest.evaluate import cross_validate, evaluate_model, score
from issuemine.suggest.features import IssueText, domain_features, harness_reading, tokens
from issuemine.suggest.model import Example, SuggestionModel
from issuemine.testing.labeled_issues import examples


def test_cross_validation_finds_separable_classes_and_beats_the_baseline():
    result = cross_validate(examples(), taxonomy(), folds=4, seed=0)
    scores = {s.dimension: s for s in result.scores}
    assert set(scores) == {"stage", "symptom", "cause", "subcause"}
    for dim in ("stage", "symptom", "cause"):
        s = scores[dim]
        assert s.n == 48
        assert s.accuracy >= 0.9 and s.macro_f1 >= 0.9 and s.kappa >= 0.8, s
        assert s.top3 >= s.accuracy
        assert s.baseline < 0.75 and s.accuracy > s.baseline  # the majority class alone does not get there
        assert sum(sum(row.values()) for row in s.confusion.values()) == 48
    # The sub-causes of the fixture alternate by issue number: no word tells them apart, and the
    # evaluation must not pretend otherwise.
    assert scores["subcause"].n == sum(1 for e in examples() if "subcause" in e.labels)
    assert scores["subcause"].kappa < 0.5


def test_score_fields_and_the_majority_baseline():
    gold = ["crash"] * 6 + ["hang"] * 2
    ranked = [[("crash", 0.9), ("hang", 0.1)]] * 7 + [[("hang", 0.6), ("crash", 0.4)]]
    s = score("symptom", gold, ranked, "crash")
    assert s.n == 8 and s.accuracy == pytest.approx(7 / 8) and s.baseline == pytest.approx(6 / 8)
    assert s.top3 == 1.0 and s.baseline_code == "crash"
    assert s.confusion == {"crash": {"crash": 6}, "hang": {"crash": 1, "hang": 1}}
    assert 0 < s.kappa < 1 and 0 < s.macro_f1 < 1
    assert set(s.as_dict()) >= {"accuracy", "macro_f1", "top3", "kappa", "baseline", "confusion"}


def test_a_saved_model_loads_and_predicts_identically_and_training_is_deterministic():
    data = examples()
    model = SuggestionModel.train(data, taxonomy(), seed=3)
    again = SuggestionModel.from_bytes(model.to_bytes())
    texts = [e.text for e in data[:10]]
    first, second = model.predict(texts), again.predict(texts)
    assert first == second
    retrained = SuggestionModel.train(data, taxonomy(), seed=3).predict(texts)
    assert retrained == first
    for per in first:
        for ranking in per.values():
            probabilities = [p for _, p in ranking]
            assert probabilities == sorted(probabilities, reverse=True)
    assert model.trained_on["issues"] == 48 and model.taxonomy_version == taxonomy().version
    with pytest.raises(IssuemineError, match="not one issuemine wrote"):
        SuggestionModel.from_bytes(__import__("pickle").dumps({"a": 1}))


def test_probabilities_are_calibrated_distributions():
    model = SuggestionModel.train(examples(), taxonomy())
    for per in model.predict([e.text for e in examples(12, seed=9)]):
        for dim in ("stage", "symptom", "cause"):
            assert sum(p for _, p in per[dim]) == pytest.approx(1.0, abs=1e-6)
        cause, p_cause = per["cause"][0]
        if cause == "incompatibility":  # P(sub-cause) is conditioned on the cause
            assert sum(p for _, p in per["subcause"]) == pytest.approx(p_cause, abs=1e-6)


def test_evidence_names_the_traceback_frame_and_the_words():
    data = examples()
    model = SuggestionModel.train(data, taxonomy())
    optimizer = next(e for e in data if e.labels["stage"] == "graph-optimization")
    reasons = [name for name, _ in model.explain(optimizer.text, "stage", "graph-optimization", top=10)]
    assert any("tf2onnx-optimizer" in r or "optimizer" in r for r in reasons), reasons
    reading = harness_reading(optimizer.text)
    assert reading is not None and reading[0] == "graph-optimization" and "optimizer" in reading[1]


def test_domain_features_read_prose_and_tracebacks_apart():
    text = IssueText(
        "Exported model gives different outputs",
        "The max abs diff is 0.3.\n\n```\n" + examples()[0].text.body.split("```")[1] + "\n```",
    )
    found = domain_features(text)
    assert found["out:different"] == 1.0 and found["title out:different"] == 1.0
    assert "traceback" in found and any(k.startswith("exception:") for k in found)
    assert tokens(["Exporting models exported"]) == [["export", "model", "export"]]  # lemmas


def test_too_few_issues_is_a_clear_error():
    few = [Example("o/r#1", IssueText("a"), {"stage": "export"})]
    with pytest.raises(IssuemineError, match="too few to train"):
        SuggestionModel.train(few, taxonomy())


def test_evaluate_model_on_unseen_issues_uses_the_training_majority():
    data = examples(60, seed=1)
    model = SuggestionModel.train(data[:40], taxonomy())
    result = evaluate_model(model, "m#1", data[40:])
    stage = next(s for s in result.scores if s.dimension == "stage")
    assert stage.n == 20 and stage.accuracy >= 0.9
    assert stage.baseline_code == model.majority("stage")
    expected = np.mean([e.labels["stage"] == stage.baseline_code for e in data[40:]])
    assert stage.baseline == pytest.approx(expected)
    # The sub-cause's baseline too, both ways it is scored: the training's most frequent sub-cause.
    subcauses = [s for s in result.scores if s.dimension == "subcause"]
    trained = [e.labels["subcause"] for e in data[:40] if "subcause" in e.labels]
    majority = max(sorted(set(trained)), key=trained.count)
    assert [s.baseline_code for s in subcauses] == [majority, majority]
    unseen = [e.labels["subcause"] for e in data[40:] if "subcause" in e.labels]
    assert unseen.count(majority) and subcauses[0].baseline == pytest.approx(unseen.count(majority) / len(unseen))


def test_a_suggestion_for_a_training_issue_says_so_and_a_replication_can_train_without_it(fresh_db, catalog, tmp_path):
    import csv

    from issuemine.labeling.ratings import import_labels
    from issuemine.resources import data_dir
    from issuemine.suggest.store import current_model, evidence, train_study_model

    tax = taxonomy()
    with (data_dir() / "study-labels.csv").open(encoding="utf-8", newline="") as handle:
        titled = [row for row in csv.DictReader(handle) if row["title"]][:4]
    path = tmp_path / "replication.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "symptom"])
        writer.writerows([[row["url"], row["symptom"]] for row in titled])
    import_labels(fresh_db, tax, path, rater="me", sample="rep", catalog=catalog)
    keys = [f"{row['repo']}#{row['number']}" for row in titled]

    study = current_model(fresh_db, tax).model  # the study model: trained on every titled issue
    assert all(study.trained_on_issue(k) for k in keys)
    said = evidence(study, IssueText(titled[0]["title"]), "symptom", "crash", keys[0])
    assert said[0].startswith("this issue is in the model's training data")
    assert not evidence(study, IssueText("an unseen title"), "symptom", "crash", "someone/else#1")[0].startswith(
        "this issue"
    )

    without = current_model(fresh_db, tax, train_study_model(fresh_db, tax, exclude_sample="rep"))
    assert without.name == "study-without-rep" and without.trained_on["excluded"] == {"sample": "rep", "issues": 4}
    assert not any(without.model.trained_on_issue(k) for k in keys)
    assert without.trained_on["issues"] == study.trained_on["issues"] - 4
