"""Re-runs in the stacks of their time, on threads in the image of the study's labeled issues.

    python benchmarks/bench_era.py [--build] [--jobs 2] [--bisect] [--db PATH]

The development set's threads (tests/devset/: written in the image of the study's torch.onnx and
tf2onnx issues, answered by the study's labels) are loaded as issues with their opening dates and
labels, their snippets extracted, and every runnable one run twice: in the stack of its time
(`repro run --env era`: the reported version's stack, else the newest released before it was
opened) and in today's ('current'). Printed, per stack: runs, conversions compared (no harness
failure), converted-not-compared runs and why, labeled failures that fail again and how many with
the error the reporter pasted; the era tie-back (fixed since, still failing); the time the matrix
took with --jobs; with --bisect, the release that fixed each labeled failure that fails in its era
and passes today (built stacks only).

Without --build only stacks already built are used (`repro env build NAME`); the others' issues
are counted as left out.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from issuemine.db import Database, open_db
from issuemine.db.models import ReproCandidate, ReproRun
from issuemine.repro import environments as envs
from issuemine.repro import same_error
from issuemine.resources import data_dir
from issuemine.testing.devset import DEVSET, HELDOUT_DIR, load_devset

SAMPLE = "devset"


def load(db: Database, url: str, folder: Path) -> None:
    """The threads as fetched issues, labeled with the study's labels (sample 'devset')."""
    from typer.testing import CliRunner

    from issuemine.cli.app import app
    from issuemine.corpus.store import save_issue
    from issuemine.db.rows import ensure_repository

    with (data_dir() / "study-labels.csv").open(encoding="utf-8", newline="") as handle:
        created = {row["url"]: row["created"] for row in csv.DictReader(handle)}
    threads = load_devset(DEVSET) + load_devset(HELDOUT_DIR)
    labels = folder / "labels.csv"
    with db.session() as session, labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "stage", "symptom", "cause"])
        for number, thread in enumerate(threads, 1):
            repo = "pytorch/pytorch" if thread.converter == "torch.onnx" else "onnx/tensorflow-onnx"
            real = int(thread.url.rsplit("/", 1)[1])
            body = "\n\n".join(markdown or "" for _, markdown in thread.thread.posts)
            day = created.get(thread.url) or None
            raw = {"id": 10_000_000 + number, "number": real, "title": thread.title, "body": body}
            raw["state"] = "closed"
            if day:
                raw["created_at"] = f"{day}T00:00:00Z"
            save_issue(session, ensure_repository(session, repo), raw)
            answers = (thread.labels.get(k) for k in ("stage", "symptom", "cause"))
            writer.writerow([f"https://github.com/{repo}/issues/{real}", *answers])
    runner = CliRunner()
    command = ["labels", "import", str(labels), "--rater", "study", "--sample", SAMPLE, "--db", url]
    result = runner.invoke(app, command)
    if result.exit_code:
        raise SystemExit(result.output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="store_true", help="Build the stacks the threads need (downloads).")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--bisect", action="store_true", help="Bisect the labeled failures fixed since.")
    parser.add_argument("--db", help="Keep the database here (default: a temporary one).")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    from issuemine.repro.candidates import extract_issues
    from issuemine.repro.era import run_era
    from issuemine.repro.runs import RunOptions, run_issues
    from issuemine.repro.sandbox import Limits
    from issuemine.repro.tieback import repro_report

    folder = Path(tempfile.mkdtemp(prefix="bench-era-"))
    path = args.db or str(folder / "era.db")
    fresh = not Path(path).exists()
    db = open_db(path)
    if fresh:
        load(db, path, folder)
    extracted = extract_issues(db, SAMPLE)
    print(f"threads: {extracted.issues}; runnable candidates: {extracted.runnable}")
    options = RunOptions(env=envs.current(), limits=Limits(timeout=args.timeout), jobs=args.jobs)
    stacks = envs.load()

    started = time.perf_counter()
    era = run_era(db, options, SAMPLE, stacks, build_missing=args.build)
    era_seconds = time.perf_counter() - started
    started = time.perf_counter()
    today = run_issues(db, options, SAMPLE)
    today_seconds = time.perf_counter() - started
    print(f"stacks chosen: {era.stacks}")
    if era.not_built:
        print(f"left out, stack not built: {era.not_built} (rerun with --build)")
    if era.companions:
        print(f"companions installed: {era.companions}")
    print(
        f"matrix time with --jobs {args.jobs}: era {era.runs.ran} runs in {era_seconds:.0f} s; "
        f"today {today.ran} runs in {today_seconds:.0f} s"
    )
    per_stack(db)
    tied = repro_report(db, envs.ERA, SAMPLE)
    if tied.era is not None:
        print("\nlabeled failures in their era (columns: " + ", ".join(tied.era.as_dict()["columns"]) + ")")
        for converter, symptom, counts in tied.era.rows:
            print(f"  {converter:11} {symptom:14} {counts}")
        print(f"labeled crashes that crash in their era with the reported error and pass today: {tied.era.strongest}")
    if args.bisect:
        bisect_fixed(db, options, stacks)


def per_stack(db: Database) -> None:
    with db.session() as session:
        pasted = dict(session.execute(select(ReproCandidate.issue_id, ReproCandidate.tracebacks)).all())
        runs = session.scalars(select(ReproRun).where(ReproRun.variant == "as-written")).all()
        by_env: dict[str, list[ReproRun]] = {}
        for run in runs:
            by_env.setdefault(run.env, []).append(run)
        print("\nper stack: runs | compared | converted-not-compared | failing | failing with the reported error")
        for env, rows in sorted(by_env.items()):
            verdicts = Counter(r.verdict for r in rows)
            compared = verdicts["passes"] + verdicts["wrong-model"]
            failing = [r for r in rows if r.verdict in ("crash", "ort-load-fail", "wrong-model", "hang")]
            same = sum(
                1
                for r in failing
                if (same_error.compare(list(pasted.get(r.issue_id) or []), r.verdict, r.evidence or {}) or {}).get(
                    "match"
                )
                == same_error.SAME
            )
            print(
                f"  {env:12} {len(rows):4} | {compared:4} | {verdicts['converted-not-compared']:4} | "
                f"{len(failing):4} | {same:4}   {dict(verdicts)}"
            )
            reasons = Counter(
                (r.reason or "").split(":")[0][:80] for r in rows if r.verdict == "converted-not-compared"
            )
            for reason, count in reasons.most_common(4):
                print(f"      not compared ({count}): {reason}")


def bisect_fixed(db: Database, options: object, stacks: dict[str, envs.Environment]) -> None:
    from issuemine.repro.bisect import bisect_issue, store
    from issuemine.repro.runs import RunOptions

    assert isinstance(options, RunOptions)
    failing = ("crash", "ort-load-fail", "wrong-model")
    with db.session() as session:
        ids = sorted({r.issue_id for r in session.scalars(select(ReproRun)) if r.verdict in failing})
    print(f"\nbisecting {len(ids)} issues that failed in some stack (built stacks only)")
    statuses: Counter[str] = Counter()
    for issue_id in ids:
        result = bisect_issue(db, issue_id, options, stacks, build_missing=False)
        store(db, result)
        statuses[result.status] += 1
        if result.status in ("fixed", "regression"):
            print(f"  {result.issue}: {result.summary}")
    print(f"bisect results: {dict(statuses)}")


if __name__ == "__main__":
    main()
