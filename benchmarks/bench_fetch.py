"""Fetch benchmark against the loopback GitHub server (a separate process), no added latency.

    python benchmarks/bench_fetch.py            # 3,000-issue corpus (+ a 1,000-issue one for memory)

Prints: (1) requests per issue for a full crawl; (2) requests for a refresh when nothing changed,
those counted by the rate limit and the conditional ones answered 304, per repository; (3) issues
stored per second in a full crawl (timelines and comments included); (4) peak memory (max RSS) of
the fetching process for two corpus sizes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CONVERTERS = ("torch.onnx", "tf2onnx")


def worker(api_url: str, db: str, refresh: str) -> None:
    """One fetch run of both converters, in this process; prints JSON figures."""
    from issuemine.corpus.fetch import Fetcher
    from issuemine.db import open_db
    from issuemine.domain.converters import load_catalog
    from issuemine.github.client import GitHubClient

    catalog = load_catalog()
    database = open_db(db)
    client = GitHubClient(api_url)
    fetcher = Fetcher(database, client, refresh_timelines=refresh)
    start = time.perf_counter()
    reports = [fetcher.fetch(catalog[name]) for name in CONVERTERS]
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "listed": sum(r.listed for r in reports),
                "saved": sum(r.saved for r in reports),
                "timelines": sum(r.timelines for r in reports),
                "requests": sum(r.requests for r in reports),
                "per_repo": {r.repo: {"counted": r.counted, "not_modified": r.not_modified} for r in reports},
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run_worker(api_url: str, db: str, refresh: str = "unavailable") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", api_url, db, refresh], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_server(sizes: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "issuemine.testing.ghserver", "--sizes", sizes],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def measure(total: int, tmp: Path) -> tuple[dict, dict]:
    half = total // 2
    server, url = start_server(f"pytorch/pytorch={half},onnx/tensorflow-onnx={total - half}")
    try:
        db = str(tmp / f"bench-{total}.db")
        crawl = run_worker(url, db)
        refresh = run_worker(url, db)
        return crawl, refresh
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--issues", type=int, default=3000)
    parser.add_argument("--small", type=int, default=1000, help="second corpus size, for the memory comparison")
    parser.add_argument("--worker", nargs=3, metavar=("API_URL", "DB", "REFRESH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        crawl, refresh = measure(args.issues, tmp)
        small, _ = measure(args.small, tmp)
    print(f"fetch benchmark: {args.issues} issues (pytorch/pytorch + onnx/tensorflow-onnx), loopback, no latency")
    print(
        f"(1) full crawl: {crawl['requests']} requests for {crawl['listed']} issues listed = "
        f"{crawl['requests'] / crawl['listed']:.3f} requests/issue  (target <= 1.05)"
    )
    for repo, r in refresh["per_repo"].items():
        print(
            f"(2) unchanged refresh, {repo}: {r['counted']} counted requests  (target <= 3), "
            f"{r['not_modified']} conditional requests answered 304"
        )
    print(
        f"(3) full crawl: {crawl['saved']} issues stored ({crawl['timelines']} with timelines) in "
        f"{crawl['seconds']:.1f} s = {crawl['saved'] / crawl['seconds']:.0f} issues/s  (target >= 300)"
    )
    print(
        f"(4) peak memory (max RSS) of the fetching process: {small['max_rss_mb']:.0f} MB for {args.small} issues, "
        f"{crawl['max_rss_mb']:.0f} MB for {args.issues} issues"
    )


if __name__ == "__main__":
    main()
