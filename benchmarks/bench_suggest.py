"""Label-suggestion benchmarks.

    python benchmarks/bench_suggest.py

(1) How good the study model's suggestions are: 5-fold stratified cross-validation (seed 0) on the
    bundled study labels (150 labeled titles; the study published no bodies), per dimension:
    accuracy, macro-F1, top-3 accuracy, Cohen's κ and the majority baseline.
(2) Training time: the study model from cold (spaCy loaded, nothing cached), and models on 500,
    2,000 and 4,000 generated labeled issues (report, traceback, environment lines).
(3) Scoring: issues per second when filling suggestions for 1,000 issues.
"""

from __future__ import annotations

import statistics
import time

from issuemine.domain.taxonomy import taxonomy
from issuemine.suggest.evaluate import cross_validate
from issuemine.suggest.model import SuggestionModel
from issuemine.suggest.store import file_examples, study_labels
from issuemine.testing.labeled_issues import examples


def main() -> None:
    tax = taxonomy()
    study = [e for e in file_examples(study_labels(), tax) if e.text.title]

    start = time.perf_counter()
    SuggestionModel.train(study, tax)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    SuggestionModel.train(study, tax)
    warm = time.perf_counter() - start
    print(f"study model: {len(study)} labeled titles, trained in {cold:.1f} s cold (spaCy load), {warm:.1f} s warm")

    start = time.perf_counter()
    result = cross_validate(study, tax, folds=5, seed=0)
    took = time.perf_counter() - start
    print(f"\n{result.how} on the study labels ({took:.0f} s)")
    print(f"{'dimension':<10} {'n':>4} {'accuracy':>9} {'macro-F1':>9} {'top-3':>6} {'kappa':>6} {'baseline':>9}")
    for s in result.scores:
        print(
            f"{s.dimension:<10} {s.n:>4} {s.accuracy:>9.3f} {s.macro_f1:>9.3f} {s.top3:>6.3f} {s.kappa:>6.3f} "
            f"{s.baseline:>9.3f}  ({s.baseline_code})"
        )

    print("\ntraining on generated labeled issues (report + traceback + environment lines)")
    for n in (500, 2000, 4000):
        data = examples(n, seed=n)
        chars = statistics.mean(len(e.text.full()) for e in data)
        start = time.perf_counter()
        model = SuggestionModel.train(data, tax, seed=0)
        trained = time.perf_counter() - start
        texts = [e.text for e in examples(1000, seed=n + 1)]
        start = time.perf_counter()
        model.predict(texts)
        scored = time.perf_counter() - start
        print(
            f"  {n:>5} issues (mean {chars:.0f} chars): trained in {trained:5.1f} s; "
            f"scored 1,000 new issues in {scored:.1f} s ({1000 / scored:.0f} issues/s)"
        )


if __name__ == "__main__":
    main()
