"""The study's Table 11, replicated in a stack of its time and in today's.

    python benchmarks/bench_replication.py [--per-size 20] [--sizes 15..100:5] [--jobs 2]
        [--env era-2023 --envs-file tests/repro/era-stack.toml] [--converters torch.onnx,tf2onnx]
        [--db replication.db]

Runs, per converter, a ``--protocol study`` campaign (every data type NNSmith generates, opset 16,
the artifact's mismatch rule) with the workers in the named stack of the study's time and another
in the interpreter issuemine runs in, on the same seeds, then prints ``difftest replicate``: each
beside the artifact's own counts per size and in total, a chi-squared test per campaign, and the
evidence for every outcome whose share moved by more than 8 points. Campaigns resume: run it again
with the same ``--db`` to finish one that was cut short. Needs the stack built with NNSmith
(``issuemine repro env build era-2023 --envs-file tests/repro/era-stack.toml --difftest``;
``scripts/setup.sh --dev`` does).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from issuemine.cli.difftest import protocol_settings
from issuemine.db import open_db
from issuemine.difftest.campaign import EXPORTERS, Plan, environment_python, parse_sizes, run
from issuemine.difftest.replication import markdown, replication


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-size", type=int, default=20)
    parser.add_argument("--sizes", default="15..100:5")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--env", default="era-2023")
    parser.add_argument("--envs-file", type=Path, default=Path("tests/repro/era-stack.toml"))
    parser.add_argument("--converters", default="torch.onnx,tf2onnx")
    parser.add_argument("--db", default="replication.db")
    parser.add_argument("--out", type=Path, default=Path("replication-files"))
    args = parser.parse_args()
    db = open_db(args.db)
    ids = []
    for converter in args.converters.split(","):
        preset = protocol_settings("study", converter)
        for env in (args.env, None):
            plan = Plan(
                converter,
                EXPORTERS[converter][0],
                preset["opset"],
                args.seed,
                parse_sizes(args.sizes),
                args.per_size,
                preset["inputs"],
                preset["policy"],
                [],
                env,
            )
            python = environment_python(env, args.envs_file)
            start = time.perf_counter()
            report = run(db, plan, args.out, args.jobs, python=python)
            ids.append(report.campaign)
            print(
                f"{converter} in {env or 'today'}: campaign {report.campaign}, {report.ran} models run "
                f"({report.skipped} resumed) in {time.perf_counter() - start:.0f} s; {dict(report.outcomes)}",
                flush=True,
            )
    print()
    print(markdown(replication(db, ids)))


if __name__ == "__main__":
    main()
