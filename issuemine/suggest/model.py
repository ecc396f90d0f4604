"""The suggestion model: features shared by all dimensions, one calibrated classifier per dimension.

Stage, symptom and cause each get a logistic regression over the same features, wrapped in
``CalibratedClassifierCV`` (sigmoid), so a suggestion's confidence means what it says: of the
suggestions made at 80%, about 80% are right. The sub-cause is conditioned on the cause: one
classifier per cause that has sub-types, trained on the issues with that cause; its confidence is
P(cause) × P(sub-cause | cause). A plain logistic regression per dimension, fitted on the same data,
explains a suggestion: the features whose weight × value pushed hardest toward it.

Classes with fewer than two examples cannot be learned (nor calibrated); they are left out and
listed in what the model was trained on. Everything is seeded: the same examples and seed give the
same model.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from issuemine.domain.taxonomy import SUBCAUSE, Taxonomy
from issuemine.errors import IssuemineError
from issuemine.suggest.features import FEATURES_VERSION, IssueText, domain_features, tokens
from issuemine.suggest.prior import CONTEXT_GRID, GRID, MIN_TO_CHOOSE, combine, prior
from issuemine.suggest.prior import WEIGHTS as PRIOR_WEIGHTS

DIMENSIONS = ("stage", "symptom", "cause")
MIN_EXAMPLES = 2  # per class: fewer cannot be learned nor calibrated


@dataclass
class Example:
    """One labeled issue: where it comes from, its text and its final codes."""

    key: str  # owner/repo#number
    text: IssueText
    labels: dict[str, str]


def _words(doc: list[str]) -> list[str]:
    """Unigrams and bigrams of a token list (module level: the vectorizer is pickled with it)."""
    return doc + [f"{a} {b}" for a, b in pairwise(doc)]


class Featurizer:
    """Words (TF-IDF over spaCy lemmas), character n-grams of the title and report head, and the
    named domain signals, side by side in one sparse matrix."""

    def __init__(self) -> None:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.words = TfidfVectorizer(analyzer=_words, min_df=2, sublinear_tf=True, max_features=30_000)
        self.chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True, max_features=30_000
        )
        self.domain = DictVectorizer()

    def fit_transform(self, texts: list[IssueText]) -> Any:
        return self._matrix(texts, fit=True)

    def transform(self, texts: list[IssueText]) -> Any:
        return self._matrix(texts, fit=False)

    def _matrix(self, texts: list[IssueText], fit: bool) -> Any:
        from scipy.sparse import hstack

        parts = (
            (self.words, tokens(t.full() for t in texts)),
            (self.chars, [t.head() for t in texts]),
            (self.domain, [domain_features(t) for t in texts]),
        )
        return hstack([v.fit_transform(x) if fit else v.transform(x) for v, x in parts]).tocsr()

    def names(self) -> list[str]:
        """Readable feature names: `word "export"`, `chars "resiz"`, and the domain signal names."""
        return (
            [f'word "{w}"' for w in self.words.get_feature_names_out()]
            + [f'chars "{c.strip()}"' for c in self.chars.get_feature_names_out()]
            + [str(n) for n in self.domain.get_feature_names_out()]
        )


@dataclass
class Classifier:
    """One dimension (or one cause's sub-causes): calibrated probabilities and an explainer."""

    classes: list[str]
    calibrated: Any | None  # None: a single learnable class, always suggested at its training share
    explainer: Any | None
    prior: dict[str, float]  # the training share of each class (the majority baseline reads it)

    def proba(self, x: Any) -> np.ndarray:
        if self.calibrated is None:
            return np.tile(np.array([self.prior[c] for c in self.classes]), (x.shape[0], 1))
        return np.asarray(self.calibrated.predict_proba(x))

    def contributions(self, x: Any, code: str) -> np.ndarray | None:
        if self.explainer is None or code not in self.classes:
            return None
        coef = self.explainer.coef_
        row = 0 if coef.shape[0] == 1 else list(self.explainer.classes_).index(code)
        sign = -1.0 if coef.shape[0] == 1 and code == self.explainer.classes_[0] else 1.0
        return np.asarray(x.multiply(coef[row] * sign).todense()).ravel()


def _fit(x: Any, y: list[str], seed: int) -> tuple[Classifier, list[str], np.ndarray | None]:
    """A calibrated classifier for labels ``y``; returns it, the classes too rare to learn, and each
    issue's out-of-fold probabilities over its classes (from the calibration folds' models, which
    did not see the issue; zeros for the rare classes' issues; None when nothing was learned)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    counts = Counter(y)
    rare = sorted(c for c, n in counts.items() if n < MIN_EXAMPLES)
    keep = [i for i, c in enumerate(y) if counts[c] >= MIN_EXAMPLES]
    kept = [y[i] for i in keep]
    classes = sorted(set(kept))
    total = len(kept)
    prior = {c: counts[c] / total for c in classes} if total else {}
    if len(classes) < 2:
        return Classifier(classes, None, None, prior), rare, None
    xs = x[keep]

    def logistic() -> LogisticRegression:
        return LogisticRegression(C=4.0, max_iter=3000, random_state=seed)

    splitter = StratifiedKFold(n_splits=min(3, min(Counter(kept).values())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rare classes make some folds lack a class; sigmoid copes
        calibrated = CalibratedClassifierCV(logistic(), method="sigmoid", cv=splitter).fit(xs, kept)
        explainer = logistic().fit(xs, kept)
    oof = np.zeros((len(y), len(classes)))
    for (_, test), fold in zip(splitter.split(xs, kept), calibrated.calibrated_classifiers_, strict=True):
        oof[[keep[i] for i in test]] = fold.predict_proba(xs[test])
    return Classifier(classes, calibrated, explainer, prior), rare, oof


CONTEXT_MIN = 4  # training issues a symptom/stage pair needs before its causes are trusted over the symptom's


def _cause_context(examples: list[Example]) -> dict[str, dict[str, int]]:
    """Cause counts per "symptom/stage" pair and per symptom, over the issues labelled with all three."""
    counts: dict[str, Counter[str]] = {}
    for e in examples:
        symptom, stage, cause = (e.labels.get(d) for d in ("symptom", "stage", "cause"))
        if symptom and stage and cause:
            for key in (f"{symptom}/{stage}", symptom):
                counts.setdefault(key, Counter())[cause] += 1
    return {key: dict(sorted(c.items())) for key, c in sorted(counts.items())}


def in_context(
    per: dict[str, list[tuple[str, float]]], context: dict[str, dict[str, int]], weight: float
) -> dict[str, list[tuple[str, float]]]:
    """The cause ranking re-weighted by how often each cause went with the suggested symptom and stage
    in the training labels (add-one smoothed, raised to ``weight``, divided by the cause's overall
    share so the model's own class frequencies are not counted twice)."""
    causes = per.get("cause")
    if not causes or not per.get("symptom") or not per.get("stage"):
        return per
    symptom, stage = per["symptom"][0][0], per["stage"][0][0]
    counts = context.get(f"{symptom}/{stage}", {})
    if sum(counts.values()) < CONTEXT_MIN:
        counts = context.get(symptom, {})
    if not counts:
        return per
    overall: Counter[str] = Counter()
    for key, c in context.items():
        if "/" not in key:
            overall.update(c)
    n, k, total = sum(counts.values()), len(causes), sum(overall.values())
    scored = {
        code: p * (((counts.get(code, 0) + 1) / (n + k)) / ((overall.get(code, 0) + 1) / (total + k))) ** weight
        for code, p in causes
    }
    norm = sum(scored.values()) or 1.0
    return {**per, "cause": sorted(((c, p / norm) for c, p in scored.items()), key=lambda p: -p[1])}


def _choose_weights(
    usable: list[Example], oof: dict[str, tuple[list[int], list[str], np.ndarray]], context: dict[str, dict[str, int]]
) -> tuple[dict[str, float], dict[str, str]]:
    """The prior's weights this model's own labels favour: per dimension, the weight of ``GRID`` under
    which the out-of-fold predictions agree best with the labels (the cause: its top three); then how
    much the suggested symptom and stage re-rank the cause. A dimension with fewer than
    ``MIN_TO_CHOOSE`` labeled issues keeps the development set's weight. So labels that follow the
    prior's rules keep it strong, and labels that do not (a user's own codebook) turn it down."""
    weights = dict(PRIOR_WEIGHTS)
    how = {d: "the development set's" for d in (*DIMENSIONS, "context")}
    guesses = [prior(e.text) for e in usable]
    ranked: dict[str, list[list[tuple[str, float]] | None]] = {}
    for dim, (rows, classes, proba) in oof.items():
        if len(rows) < MIN_TO_CHOOSE:
            continue
        ranked[dim] = [None] * len(usable)
        for row, p in zip(rows, proba, strict=True):
            if p.any():
                ranked[dim][row] = sorted(zip(classes, map(float, p), strict=True), key=lambda q: -q[1])

        def agreement(weight: float, dim: str = dim) -> float:
            scored = [
                (combine({dim: r}, {dim: g[dim]} if dim in g else {}, {dim: weight})[dim], usable[i].labels[dim])
                for i, (r, g) in enumerate(zip(ranked[dim], guesses, strict=True))
                if r is not None
            ]
            top1 = sum(r[0][0] == gold for r, gold in scored) / len(scored)
            top3 = sum(gold in [c for c, _ in r[:3]] for r, gold in scored) / len(scored)
            return top3 + top1 / 100 if dim == "cause" else top1

        weights[dim] = max(GRID, key=lambda w: (round(agreement(w), 9), -w))
        how[dim] = "chosen on these labels"
    if all(d in ranked for d in DIMENSIONS) and context:

        def in_context_agreement(weight: float) -> float:
            hits = total = 0
            for i, e in enumerate(usable):
                per = {d: ranked[d][i] for d in DIMENSIONS}
                if any(r is None for r in per.values()):
                    continue
                combined = combine(per, guesses[i], weights)  # type: ignore[arg-type]
                cause = in_context(combined, context, weight)["cause"] if weight else combined["cause"]
                hits += e.labels["cause"] in [c for c, _ in cause[:3]]
                total += 1
            return hits / total if total else 0.0

        weights["context"] = max(CONTEXT_GRID, key=lambda w: (round(in_context_agreement(w), 9), -w))
        how["context"] = "chosen on these labels"
    return weights, how


@dataclass
class SuggestionModel:
    featurizer: Featurizer
    dimensions: dict[str, Classifier]
    subcauses: dict[str, Classifier]  # cause code -> its sub-cause classifier
    trained_on: dict[str, Any] = field(default_factory=dict)
    taxonomy_version: str = ""
    features_version: str = FEATURES_VERSION
    seed: int = 0
    # The prior's weight per dimension (issuemine.suggest.prior): rules over the whole thread that a
    # model trained on titles cannot learn, folded into its ranking.
    prior_weights: dict[str, float] = field(default_factory=lambda: dict(PRIOR_WEIGHTS))
    # The causes of the training issues per symptom and stage ("crash/node-conversion", "crash", ...):
    # raters' causes follow what broke and where (a graph optimizer's failures are algorithmic
    # errors, a wrong model's are mostly types and shapes), so the suggested symptom and stage
    # re-rank the cause. Learned from the labels, so a user's own labels retrain it too.
    cause_context: dict[str, dict[str, int]] = field(default_factory=dict)

    # -- training -------------------------------------------------------------------------------

    @classmethod
    def train(cls, examples: list[Example], taxonomy: Taxonomy, seed: int = 0) -> SuggestionModel:
        usable = [e for e in examples if e.text.title or e.text.body]
        if len(usable) < 4:
            raise IssuemineError(
                f"{len(usable)} labeled issue(s) with text: too few to train a suggestion model (label a few more)"
            )
        featurizer = Featurizer()
        x = featurizer.fit_transform([e.text for e in usable])
        dimensions: dict[str, Classifier] = {}
        trained_on: dict[str, Any] = {"issues": len(usable), "per_dimension": {}, "too_rare": {}}
        oof: dict[str, tuple[list[int], list[str], np.ndarray]] = {}
        # Which issues it learned from: a suggestion for one of them repeats its own label, and says so.
        trained_on["keys"] = sorted({e.key.lower() for e in usable})
        for dim in DIMENSIONS:
            rows = [i for i, e in enumerate(usable) if e.labels.get(dim)]
            if not rows:
                continue
            clf, rare, proba = _fit(x[rows], [usable[i].labels[dim] for i in rows], seed)
            dimensions[dim] = clf
            if proba is not None:
                oof[dim] = (rows, clf.classes, proba)
            trained_on["per_dimension"][dim] = dict(Counter(usable[i].labels[dim] for i in rows))
            if rare:
                trained_on["too_rare"][dim] = rare
        subcauses: dict[str, Classifier] = {}
        for family in taxonomy.causes_with_subtypes():
            rows = [i for i, e in enumerate(usable) if e.labels.get("cause") == family.code and e.labels.get(SUBCAUSE)]
            if rows:
                subcauses[family.code], _, _ = _fit(x[rows], [usable[i].labels[SUBCAUSE] for i in rows], seed)
        with_subcause = [e.labels[SUBCAUSE] for e in usable if e.labels.get(SUBCAUSE) and e.labels.get("cause")]
        if with_subcause:
            trained_on["per_dimension"][SUBCAUSE] = dict(Counter(with_subcause))
        if not dimensions:
            raise IssuemineError("no issue has a final stage, symptom or cause to learn from")
        model = cls(featurizer, dimensions, subcauses, trained_on, taxonomy.version, FEATURES_VERSION, seed)
        model.cause_context = _cause_context(usable)
        model.prior_weights, how = _choose_weights(usable, oof, model.cause_context)
        trained_on["prior"] = {d: {"weight": w, "from": how.get(d, "")} for d, w in model.prior_weights.items()}
        return model

    # -- predicting -----------------------------------------------------------------------------

    def predict(self, texts: list[IssueText]) -> list[dict[str, list[tuple[str, float]]]]:
        """Per issue and dimension, every learnable code with its probability, most likely first.
        The sub-cause ranking is for the most likely cause, with P(cause) × P(sub-cause | cause)."""
        if not texts:
            return []
        x = self.featurizer.transform(texts)
        ranked: list[dict[str, list[tuple[str, float]]]] = [{} for _ in texts]
        for dim, clf in self.dimensions.items():
            for i, row in enumerate(clf.proba(x)):
                ranked[i][dim] = sorted(zip(clf.classes, map(float, row), strict=True), key=lambda p: -p[1])
        weights = getattr(self, "prior_weights", PRIOR_WEIGHTS)  # models stored before the prior: its default
        if any(weights.values()):
            ranked = [combine(per, prior(text), weights) for per, text in zip(ranked, texts, strict=True)]
        context = getattr(self, "cause_context", {})  # models stored before it: none
        if context and weights.get("context", 0.0) > 0:
            ranked = [in_context(per, context, weights["context"]) for per in ranked]
        for i, per in enumerate(ranked):
            if not per.get("cause"):
                continue
            cause, p_cause = per["cause"][0]
            sub = self.subcauses.get(cause)
            if sub is not None:
                probs = sub.proba(x[i])[0]
                per[SUBCAUSE] = sorted(
                    ((c, float(p) * p_cause) for c, p in zip(sub.classes, probs, strict=True)), key=lambda p: -p[1]
                )
        return ranked

    def explain(self, text: IssueText, dimension: str, code: str, top: int = 6) -> list[tuple[str, float]]:
        """The features that pushed hardest toward ``code``: (name, contribution), largest first."""
        x = self.featurizer.transform([text])
        clf = self.dimensions.get(dimension)
        if dimension == SUBCAUSE:
            clf = self.subcauses.get(code.split(".")[0])
        contributions = clf.contributions(x, code) if clf else None
        if contributions is None:
            return []
        names = self.featurizer.names()
        order = np.argsort(-contributions)[:top]
        return [(names[j], round(float(contributions[j]), 3)) for j in order if contributions[j] > 0]

    def trained_on_issue(self, key: str) -> bool:
        """Whether the issue ``owner/repo#N`` was in the training data."""
        return key.lower() in set(self.trained_on.get("keys") or [])

    def majority(self, dimension: str) -> str | None:
        """The most frequent code of a dimension in the training labels (the majority baseline)."""
        counts = (self.trained_on.get("per_dimension") or {}).get(dimension)
        if counts:
            return max(sorted(counts), key=lambda c: counts[c])
        clf = self.dimensions.get(dimension)
        if dimension == SUBCAUSE:  # models stored before sub-cause counts: the majority cause's majority
            cause = self.majority("cause")
            clf = self.subcauses.get(cause) if cause else None
        return max(clf.prior, key=lambda c: clf.prior[c]) if clf and clf.prior else None

    # -- storing --------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        pickle.dump(self, buffer, protocol=pickle.HIGHEST_PROTOCOL)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> SuggestionModel:
        # A model is the user's own artifact, stored in the user's own database: unpickling it is
        # as trusted as opening the database. Models from elsewhere should be retrained, not loaded.
        model = pickle.loads(data)
        if not isinstance(model, SuggestionModel):
            raise IssuemineError("the stored suggestion model is not one issuemine wrote: retrain it")
        return model
