"""Converted-model quality benchmark: the full offline suite.

    python benchmarks/bench_quality.py [--quick]

Trains the six models (MLP, CNN, CNN with batch norm and dropout; PyTorch and Keras) on the digits,
converts each to every target, measures with the default settings (5 rounds of 50 timed calls per
batch size and thread setting, a fresh process per runtime, FGSM and PGD at three ε on 300 inputs),
and prints the suite's wall time and where it goes (training, conversion, measurement, attacks),
then the report table.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from issuemine.db import open_db
from issuemine.quality import store
from issuemine.quality.measure import Settings
from issuemine.quality.suite import run_suite


def main() -> None:
    settings = Settings.quick() if "--quick" in sys.argv else Settings()
    with tempfile.TemporaryDirectory() as folder:
        db = open_db(str(Path(folder) / "quality.db"))
        start = time.perf_counter()
        result = run_suite(db, ["torch", "keras"], Path(folder) / "work", 0, settings, progress=_progress)
        wall = time.perf_counter() - start
        print(f"\nquality suite: {len(result.models)} models, {result.rows} measurements, {wall:.0f} s wall")
        for part, seconds in sorted(result.timings.items(), key=lambda kv: -kv[1]):
            print(f"  {part:<12} {seconds:6.1f} s  ({seconds / wall:.0%})")
        print(f"  {'other':<12} {wall - sum(result.timings.values()):6.1f} s  (data, storing)")
        print()
        columns = [
            "accuracy",
            "changed",
            "max |Δ|",
            "p50 ms b1 t1",
            "p50 ms b1 t1 ×",
            "p50 ms b32 default ×",
            "peak MB ×",
            "size KB",
            "size KB ×",
            "FGSM ε=0.1",
            "PGD ε=0.1",
        ]
        print(f"{'model':<22} {'target':<17} " + " ".join(f"{c[:14]:>14}" for c in columns))
        for row in store.report_rows(store.measurements(db, result.suite)):
            cells = [_fmt(row.get(c)) for c in columns]
            print(
                f"{row['model']:<22} {row['target']:<17} "
                + " ".join(f"{c:>14}" for c in cells)
                + f"  {row['note'][:60]}"
            )
        db.close()


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
