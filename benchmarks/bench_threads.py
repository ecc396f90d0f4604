"""Reproduction on realistic threads: what extraction finds, what the re-runs say, per exporter.

    python benchmarks/bench_threads.py [--no-run] [--jobs 2]

On the fixture threads of tests/repro/threads/ (written in the image of real torch.onnx and tf2onnx
issues, with the answers expected): the share of threads with a runnable candidate, the repairs
made, how many pasted tracebacks are read, and, running every
runnable candidate in the sandbox (both exporters for snippets written for the TorchScript one),
the share that reaches the converter and the verdicts per variant and exporter.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from issuemine.repro.extract import Candidate, extract
from issuemine.testing.threads import Thread, load_threads

THREADS = Path(__file__).resolve().parent.parent / "tests" / "repro" / "threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="Extraction only, no sandboxed runs.")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    threads = load_threads(THREADS)
    started = time.perf_counter()
    candidates = [extract(t.posts) for t in threads]
    extract_s = time.perf_counter() - started

    print(f"threads: {len(threads)} ({Counter(t.converter for t in threads)})")
    print(f"extraction: {extract_s * 1000 / len(threads):.1f} ms per thread")
    for converter in sorted({t.converter for t in threads}):
        mine = [(t, c) for t, c in zip(threads, candidates, strict=True) if t.converter == converter]
        runnable = sum(c.runnable for _, c in mine)
        expected = sum(t.expected["runnable"] for t, _ in mine)
        share = f"{runnable}/{len(mine)} ({runnable / len(mine):.0%}; expected {expected})"
        print(f"  {converter}: runnable candidates {share}")
    # The a* threads reach the converter through `import X as Y` / `from X import f [as g]` forms.
    aliased = [(t, c) for t, c in zip(threads, candidates, strict=True) if t.name.startswith("a")]
    if aliased:
        calls = sum(c.conversions == t.expected["conversions"] for t, c in aliased)
        verdicts = sum(c.runnable == t.expected["runnable"] for t, c in aliased)
        by = Counter(t.converter for t, _ in aliased)
        print(
            f"aliased and from-imports ({len(aliased)} threads: {dict(by)}): converter calls found {calls}/"
            f"{len(aliased)}, runnable as expected {verdicts}/{len(aliased)}"
        )
    repairs = Counter(r["kind"] for c in candidates for r in c.provenance.get("repairs", []))
    repaired = sum(1 for c in candidates if c.provenance.get("repairs"))
    print(f"repaired threads: {repaired}; repairs: {dict(repairs)}")
    reasons = Counter((c.reason or "").split(":")[0] for c in candidates if not c.runnable)
    print(f"why not runnable: {dict(reasons)}")

    read = sum(1 for c in candidates if c.tracebacks)
    print(f"pasted tracebacks read: {read} threads (stages against human labels: benchmarks/bench_devset.py)")
    if args.no_run:
        return
    run(threads, candidates, args.jobs)


def run(threads: list[Thread], candidates: list[Candidate], jobs: int) -> None:
    from issuemine.repro.environments import current, features
    from issuemine.repro.runs import Job, Outcome, Runner, RunOptions, variants_of
    from issuemine.repro.sandbox import Limits

    runner = Runner(RunOptions(env=current(), limits=Limits(timeout=120), jobs=jobs))
    todo = [
        Job(index, c.script, variant=variant)
        for index, c in enumerate(candidates)
        if c.runnable
        for variant in variants_of(c.provenance, features(runner.options.env.python))
    ]
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    runner.run_all(todo, outcomes.append)
    seconds = time.perf_counter() - started
    print(f"\nsandboxed runs: {len(outcomes)} in {seconds:.0f} s ({runner.kind}, --jobs {jobs})")
    as_written = [o for o in outcomes if o.job.variant == "as-written"]
    reached = sum(o.verdict.reached_converter for o in as_written)
    runnable = sum(c.runnable for c in candidates)
    print(f"reach the converter (as written): {reached}/{runnable} runnable, {reached}/{len(threads)} threads")
    table: dict[tuple[str, str], Counter[str]] = {}
    for outcome in outcomes:
        thread = threads[outcome.job.issue_id]
        calls = outcome.verdict.evidence.get("calls") or []
        exporter = next((c.get("exporter") for c in calls if c.get("exporter")), None) or "-"
        key = (thread.converter, f"{outcome.job.variant} ({exporter})")
        table.setdefault(key, Counter())[outcome.verdict.verdict] += 1
    print("verdicts per converter, variant (exporter):")
    for (converter, variant), counts in sorted(table.items()):
        print(f"  {converter:11} {variant:32} {dict(counts.most_common())}")
    by_issue: dict[int, dict[str, str]] = {}
    for outcome in outcomes:
        by_issue.setdefault(outcome.job.issue_id, {})[outcome.job.variant] = outcome.verdict.verdict
    flips = {i: v for i, v in by_issue.items() if len(set(v.values())) > 1}
    print(f"verdict depends on the exporter: {len(flips)} thread(s)")
    for index, verdicts in sorted(flips.items()):
        print(f"  {threads[index].name}: {verdicts}")
    labeled = Counter((threads[o.job.issue_id].expected.get("labeled"), o.verdict.verdict) for o in as_written)
    print(f"labeled symptom vs verdict (as written): {dict(labeled)}")


if __name__ == "__main__":
    main()
