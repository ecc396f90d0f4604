"""Analysis benchmark: `analyze --out` on a synthetic database of 100,000 labeled issues.

    python benchmarks/bench_analysis.py [--issues 100000]

Prints the time for all tables (final labels read from the database, every table in four formats,
RQ3; figures excluded; target < 10 s) and for the whole report with figures and HTML.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from issuemine.db import Database, open_db
from issuemine.db.models import Assignment, Issue, Rater, RaterIssue, Rating, Repository, Sample, SampleMember
from issuemine.db.rows import table_of, utcnow
from issuemine.domain.taxonomy import taxonomy

REPOS = (("pytorch/pytorch", "torch.onnx"), ("onnx/tensorflow-onnx", "tf2onnx"))


def build(db: Database, n: int) -> None:
    """n issues with one rater's labels, opened between 2018 and 2023, in sample 'big'."""
    tax = taxonomy()
    rng = random.Random(9)
    now = utcnow()
    start = datetime(2018, 1, 1)
    with db.session() as session:
        repo_ids = []
        for name, _ in REPOS:
            repo = Repository(full_name=name)
            session.add(repo)
            session.flush()
            repo_ids.append(repo.id)
        rater = Rater(name="bench", created_at=now)
        sample = Sample(name="big", seed=0, per_converter=n, params={}, created_at=now)
        session.add_all([rater, sample])
        session.flush()
        conn = session.connection()
        issues = []
        for i in range(n):
            opened = start + timedelta(days=rng.uniform(0, 5 * 365))
            issues.append(
                {
                    "repository_id": repo_ids[i % 2],
                    "number": i + 1,
                    "title": f"issue {i}",
                    "state": "closed",
                    "created_at": opened,
                    "closed_at": opened + timedelta(days=rng.expovariate(1 / 30)),
                    "is_pull_request": False,
                    "source": "stub",
                    "timeline_complete": False,
                }
            )
        conn.execute(table_of(Issue).insert(), issues)
        ids = [row[0] for row in conn.execute(table_of(Issue).select().with_only_columns(table_of(Issue).c.id))]
        members, assigned, ratings, work = [], [], [], []
        for k, issue_id in enumerate(ids):
            members.append({"sample_id": sample.id, "issue_id": issue_id, "converter": REPOS[k % 2][1], "position": k})
            assigned.append({"sample_id": sample.id, "issue_id": issue_id, "rater_id": rater.id, "position": k})
            cause = rng.choice(tax.all_codes("cause"))
            codes = {
                "stage": rng.choice(tax.all_codes("stage")),
                "symptom": rng.choice(tax.all_codes("symptom")),
                "cause": cause,
            }
            subs = tax.subtypes(cause)
            if subs:
                codes["subcause"] = rng.choice(subs).code
            ratings += [
                {
                    "issue_id": issue_id,
                    "rater_id": rater.id,
                    "dimension": d,
                    "code": c,
                    "taxonomy_version": tax.version,
                    "created_at": now,
                    "updated_at": now,
                }
                for d, c in codes.items()
            ]
            work.append(
                {
                    "issue_id": issue_id,
                    "rater_id": rater.id,
                    "status": "done",
                    "seconds": 60.0,
                    "taxonomy_version": tax.version,
                    "source": "import",
                    "started_at": now,
                    "updated_at": now,
                }
            )
        for model, rows in ((SampleMember, members), (Assignment, assigned), (Rating, ratings), (RaterIssue, work)):
            conn.execute(table_of(model).insert(), rows)


def _command(db_path: str, out: Path, *extra: str) -> float:
    """Wall time of `issuemine analyze --out` as a user runs it: start-up, tables, agreement, figures, HTML."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "issuemine", "analyze", "--db", db_path, "--sample", "big", "--out", str(out), *extra],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        db = open_db(f"{d}/big.db")
        build(db, args.issues)
        db.close()
        no_figures = _command(f"{d}/big.db", Path(d) / "tables", "--no-figures")
        with_figures = _command(f"{d}/big.db", Path(d) / "full")
    print(f"analysis benchmark: {args.issues:,} labeled issues (SQLite), `issuemine analyze --out` end to end")
    print(f"without figures (9 tables x 4 formats, RQ3, agreement, HTML): {no_figures:.1f} s  (target < 10 s)")
    print(f"with figures (PNG + PDF): {with_figures:.1f} s")


if __name__ == "__main__":
    main()
