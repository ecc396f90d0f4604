"""How good the suggestions are, measured: cross-validated on the labels in hand, or on a file of
issues the model never saw.

Per dimension: accuracy, macro-F1, top-3 accuracy, Cohen's κ against the gold labels, the
majority-class baseline (the most frequent class of the training data, predicted for every issue)
and the confusion table. Cross-validation is stratified k-fold with a fixed seed; the features are
fitted inside each fold, so no word of a test issue leaks into its model.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from issuemine.domain.taxonomy import SUBCAUSE, Taxonomy
from issuemine.errors import IssuemineError
from issuemine.suggest.model import DIMENSIONS, Example, SuggestionModel


@dataclass
class DimensionScore:
    dimension: str
    n: int
    accuracy: float
    macro_f1: float
    top3: float
    kappa: float
    baseline: float  # accuracy of always suggesting the training majority
    baseline_code: str | None
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # gold -> predicted -> count
    # Coverage against accuracy: (confidence threshold, share of issues at or above it, accuracy there)
    coverage: list[tuple[float, float, float]] = field(default_factory=list)
    threshold_90: float | None = None  # the lowest threshold at which accuracy reaches 0.90
    how: str = ""  # what is scored, where it needs saying (the sub-cause: given the true cause, or end to end)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Evaluation:
    how: str  # "5-fold cross-validation, seed 0" or "model study#1 on FILE"
    issues: int
    scores: list[DimensionScore]

    def as_dict(self) -> dict[str, Any]:
        return {"how": self.how, "issues": self.issues, "dimensions": [s.as_dict() for s in self.scores]}


def score(
    dimension: str, gold: list[str], ranked: list[list[tuple[str, float]]], majority: str | None
) -> DimensionScore:
    """Scores of ranked predictions against gold codes (an empty ranking counts as wrong)."""
    from sklearn.metrics import cohen_kappa_score, f1_score

    predicted = [r[0][0] if r else "" for r in ranked]
    n = len(gold)
    labels = sorted(set(gold) | {p for p in predicted if p})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # κ of a constant prediction is 0 with a warning
        kappa = float(cohen_kappa_score(gold, predicted)) if n and len(set(gold) | set(predicted)) > 1 else 0.0
    confusion: dict[str, dict[str, int]] = {}
    for g, p in zip(gold, predicted, strict=True):
        confusion.setdefault(g, {}).setdefault(p or "-", 0)
        confusion[g][p or "-"] += 1
    return DimensionScore(
        dimension=dimension,
        n=n,
        accuracy=sum(g == p for g, p in zip(gold, predicted, strict=True)) / n if n else 0.0,
        macro_f1=float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)) if n else 0.0,
        top3=sum(g in [c for c, _ in r[:3]] for g, r in zip(gold, ranked, strict=True)) / n if n else 0.0,
        kappa=kappa,
        baseline=sum(g == majority for g in gold) / n if n else 0.0,
        baseline_code=majority,
        confusion=confusion,
        coverage=(curve := coverage_curve(gold, ranked)),
        threshold_90=next((t for t, share, acc in curve if share > 0 and acc >= TARGET_ACCURACY), None),
    )


TARGET_ACCURACY = 0.90
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(0, 20))


def coverage_curve(gold: list[str], ranked: list[list[tuple[str, float]]]) -> list[tuple[float, float, float]]:
    """Per confidence threshold t: the share of issues whose top suggestion has confidence ≥ t, and
    its accuracy on them (what a sample that pre-selects only above t would get)."""
    curve = []
    for t in THRESHOLDS:
        kept = [(g, r[0][0]) for g, r in zip(gold, ranked, strict=True) if r and r[0][1] >= t]
        share = len(kept) / len(gold) if gold else 0.0
        accuracy = sum(g == p for g, p in kept) / len(kept) if kept else 0.0
        curve.append((t, round(share, 4), round(accuracy, 4)))
    return curve


def cross_validate(
    examples: list[Example],
    taxonomy: Taxonomy,
    folds: int = 5,
    seed: int = 0,
    prior_weights: dict[str, float] | None = None,
) -> Evaluation:
    """Stratified k-fold per dimension: each issue is predicted by a model that never saw it.

    The sub-cause is scored on the issues whose gold cause has sub-types twice, labelled: given the
    true cause (what the session asks after the rater chose the cause), and end to end (the
    predicted cause, then its sub-cause). ``prior_weights`` overrides the prior's weights
    (:mod:`issuemine.suggest.prior`; zeros turn it off)."""
    return cross_validate_grid(examples, taxonomy, [prior_weights], folds, seed)[0]


def cross_validate_grid(
    examples: list[Example],
    taxonomy: Taxonomy,
    grid: Sequence[dict[str, float] | None],
    folds: int = 5,
    seed: int = 0,
) -> list[Evaluation]:
    """:func:`cross_validate` once per prior weighting of ``grid`` (None: the model's own), on the same
    folds and the same trained models: the weights act at prediction time, so each fold trains once."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise IssuemineError("--cv needs at least 2 folds")
    examples = [e for e in examples if e.text.title or e.text.body]  # nothing to read, nothing to learn
    scores: list[list[DimensionScore]] = [[] for _ in grid]
    for dimension in (*DIMENSIONS, SUBCAUSE):
        rows = [e for e in examples if e.labels.get(dimension)]
        if len(rows) < folds:
            continue
        gold = [e.labels[dimension] for e in rows]
        strata = gold if min(Counter(gold).values()) >= 2 else [g if Counter(gold)[g] >= 2 else "~" for g in gold]
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        ranked: list[list[list[tuple[str, float]]]] = [[[] for _ in rows] for _ in grid]
        end_to_end: list[list[list[tuple[str, float]]]] = [[[] for _ in rows] for _ in grid]
        majorities: list[str | None] = [None for _ in rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # classes rarer than the fold count
            splits = list(splitter.split(rows, strata))
        for train, test in splits:
            train_examples = [_only(rows[i], dimension) for i in train]
            try:
                model = SuggestionModel.train(train_examples, taxonomy, seed)
            except IssuemineError:
                continue
            own = dict(model.prior_weights)
            majority = _majority([rows[i].labels[dimension] for i in train])
            for g, weights in enumerate(grid):
                model.prior_weights = dict(own if weights is None else weights)
                predictions = model.predict([rows[i].text for i in test])
                for i, per in zip(test, predictions, strict=True):
                    ranked[g][i] = _ranking(model, per, rows[i], dimension)
                    end_to_end[g][i] = per.get(SUBCAUSE, []) if dimension == SUBCAUSE else []
            for i in test:
                majorities[i] = majority
        for g in range(len(grid)):
            scores[g].append(_pooled(dimension, gold, ranked[g], majorities))
            if dimension == SUBCAUSE:
                scores[g][-1].how = "given the true cause"
                scores[g].append(_pooled(dimension, gold, end_to_end[g], majorities))
                scores[g][-1].how = "end to end (the predicted cause, then its sub-cause)"
    how = f"{folds}-fold stratified cross-validation, seed {seed}"
    return [Evaluation(how, len(examples), per) for per in scores]


def _only(example: Example, dimension: str) -> Example:
    """The example with just the labels one dimension's model needs (the cause, for a sub-cause)."""
    # The cause is re-ranked by the suggested symptom and stage (SuggestionModel.cause_context), which
    # it learns from the training issues' labels of those dimensions: they are not the test's answers.
    keep = {dimension, "cause"} if dimension == SUBCAUSE else {dimension}
    if dimension == "cause":
        keep |= {"symptom", "stage"}
    return Example(example.key, example.text, {d: c for d, c in example.labels.items() if d in keep})


def _ranking(
    model: SuggestionModel, per: dict[str, list[tuple[str, float]]], example: Example, dimension: str
) -> list[tuple[str, float]]:
    if dimension != SUBCAUSE:
        return per.get(dimension, [])
    clf = model.subcauses.get(example.labels.get("cause", ""))
    if clf is None:
        return []
    probs = clf.proba(model.featurizer.transform([example.text]))[0]
    return sorted(zip(clf.classes, map(float, probs), strict=True), key=lambda p: -p[1])


def _majority(codes: list[str]) -> str | None:
    return Counter(sorted(codes)).most_common(1)[0][0] if codes else None


def _pooled(
    dimension: str, gold: list[str], ranked: list[list[tuple[str, float]]], majorities: list[str | None]
) -> DimensionScore:
    """Scores over all folds' predictions; the baseline uses each fold's own training majority."""
    result = score(dimension, gold, ranked, _majority(gold))
    result.baseline = sum(g == m for g, m in zip(gold, majorities, strict=True)) / len(gold)
    result.baseline_code = _majority([m for m in majorities if m])
    return result


def evaluate_model(model: SuggestionModel, name: str, examples: list[Example]) -> Evaluation:
    """Score a trained model on labeled issues (it is not retrained)."""
    predictions = model.predict([e.text for e in examples])
    scores = []
    for dimension in (*DIMENSIONS, SUBCAUSE):
        rows = [i for i, e in enumerate(examples) if e.labels.get(dimension)]
        if not rows:
            continue
        gold = [examples[i].labels[dimension] for i in rows]
        ranked = [_ranking(model, predictions[i], examples[i], dimension) for i in rows]
        majority = model.majority(dimension)
        scores.append(score(dimension, gold, ranked, majority))
        if dimension == SUBCAUSE:
            scores[-1].how = "given the true cause"
            scores.append(score(dimension, gold, [predictions[i].get(SUBCAUSE, []) for i in rows], majority))
            scores[-1].how = "end to end (the predicted cause, then its sub-cause)"
    return Evaluation(f"model {name}, not retrained", len(examples), scores)
