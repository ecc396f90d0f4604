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
from issuemine.suggest.prior import WEIGHTS as PRIOR_WEIGHTS
from issuemine.suggest.prior import combine, prior

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


def _fit(x: Any, y: list[str], seed: int) -> tuple[Classifier, list[str]]:
    """A calibrated classifier for labels ``y``; returns it and the classes too rare to learn."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    counts = Counter(y)
    rare = sorted(c for c, n in counts.items() if n < MIN_EXAMPLES)
    keep = [i for i, c in enumerate(y) if counts[c] >= MIN_EXAMPLES]
    kept = [y[i] for i in keep]
    classes = sorted(set(kept))
    total = len(kept)
    prior = {c: counts[c] / total for c in classes} if total else {}
    if len(classes) < 2:
        return Classifier(classes, None, None, prior), rare
    xs = x[keep]

    def logistic() -> LogisticRegression:
        return LogisticRegression(C=4.0, max_iter=3000, random_state=seed)

    folds = min(3, min(Counter(kept).values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rare classes make some folds lack a class; sigmoid copes
        calibrated = CalibratedClassifierCV(logistic(), method="sigmoid", cv=folds).fit(xs, kept)
        explainer = logistic().fit(xs, kept)
    return Classifier(classes, calibrated, explainer, prior), rare


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
        # Which issues it learned from: a suggestion for one of them repeats its own label, and says so.
        trained_on["keys"] = sorted({e.key.lower() for e in usable})
        for dim in DIMENSIONS:
            rows = [i for i, e in enumerate(usable) if e.labels.get(dim)]
            if not rows:
                continue
            clf, rare = _fit(x[rows], [usable[i].labels[dim] for i in rows], seed)
            dimensions[dim] = clf
            trained_on["per_dimension"][dim] = dict(Counter(usable[i].labels[dim] for i in rows))
            if rare:
                trained_on["too_rare"][dim] = rare
        subcauses: dict[str, Classifier] = {}
        for family in taxonomy.causes_with_subtypes():
            rows = [i for i, e in enumerate(usable) if e.labels.get("cause") == family.code and e.labels.get(SUBCAUSE)]
            if rows:
                subcauses[family.code], _ = _fit(x[rows], [usable[i].labels[SUBCAUSE] for i in rows], seed)
        if not dimensions:
            raise IssuemineError("no issue has a final stage, symptom or cause to learn from")
        return cls(featurizer, dimensions, subcauses, trained_on, taxonomy.version, FEATURES_VERSION, seed)

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
        clf = self.dimensions.get(dimension)
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
