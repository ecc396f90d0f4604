"""Run the loopback GitHub server on its own: ``python -m issuemine.testing.ghserver --sizes REPO=N,...``.

Prints its URL on the first line of stdout, then serves until killed (used by the benchmarks).
"""

from __future__ import annotations

import argparse
import sys
import time

from issuemine.testing.ghserver.corpus import build_corpus
from issuemine.testing.ghserver.server import GitHubTestServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="pytorch/pytorch=1500,onnx/tensorflow-onnx=1500")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args()
    sizes = {name: int(n) for name, n in (part.split("=") for part in args.sizes.split(","))}
    server = GitHubTestServer(build_corpus(sizes, seed=args.seed, long_timelines=10), latency=args.latency).start()
    sys.stdout.write(server.url + "\n")
    sys.stdout.flush()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
