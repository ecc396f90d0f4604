"""Reproduction benchmarks.

    python benchmarks/bench_repro.py

(1) Per-run overhead: sandbox start + interpreter + torch import + shim + a trivial snippet that
    uses torch, measured from the host (request sent to answer received), median over repeated
    runs, in both modes:
      cold  a fresh bubblewrap sandbox and interpreter per snippet (torch imported each time);
      warm  one sandboxed interpreter with the frameworks imported forks a child per snippet.
    For reference, ``python -c "import torch"`` outside any sandbox. Target: warm median < 1 s.
(2) Throughput: 50 trivial snippets (each exports a one-layer model to ONNX and has it checked in
    ONNX Runtime) with --jobs 2 in warm mode, sandbox start-up included.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from issuemine.repro.environments import current
from issuemine.repro.runs import Job, Outcome, Runner, RunOptions
from issuemine.repro.sandbox import Limits

TRIVIAL = "import torch\nprint(torch.ones(2).sum().item())\n"
EXPORT = (
    "import torch\n"
    "model = torch.nn.Linear(4, {n})\n"
    "torch.onnx.export(model, (torch.randn(2, 4),), 'm.onnx', dynamo=False)\n"
)


def overhead(warm: bool, runs: int) -> tuple[float, float, str]:
    runner = Runner(RunOptions(env=current(), limits=Limits(timeout=120), warm=warm))
    times = []
    with runner.zygote(0) as zygote:
        started = time.perf_counter()
        if warm:
            zygote.start()
        startup = time.perf_counter() - started
        for _ in range(runs):
            began = time.perf_counter()
            outcome = runner.classify(zygote, Job(None, TRIVIAL))
            times.append(time.perf_counter() - began)
            assert outcome.result.get("exit_code") == 0, outcome.result.get("tail")
    return statistics.median(times), startup, runner.kind


def plain_import(runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def throughput(count: int, jobs: int) -> tuple[float, dict[str, int]]:
    runner = Runner(RunOptions(env=current(), limits=Limits(timeout=120), jobs=jobs))
    outcomes: list[Outcome] = []
    began = time.perf_counter()
    runner.run_all([Job(None, EXPORT.format(n=1 + i % 7)) for i in range(count)], outcomes.append)
    elapsed = time.perf_counter() - began
    verdicts: dict[str, int] = {}
    for outcome in outcomes:
        verdicts[outcome.verdict.verdict] = verdicts.get(outcome.verdict.verdict, 0) + 1
    return elapsed, verdicts


def main() -> None:
    print(f"reference: python -c 'import torch' (no sandbox), median of 5: {plain_import(5):.2f} s")
    cold, _, kind = overhead(warm=False, runs=7)
    print(f"cold ({kind}): fresh sandbox + interpreter + torch import + shim per run, median of 7: {cold:.2f} s")
    warm, startup, _ = overhead(warm=True, runs=30)
    print(f"warm ({kind}): forked child per run, median of 30: {warm * 1000:.0f} ms (sandbox start-up {startup:.2f} s)")
    elapsed, verdicts = throughput(50, 2)
    print(f"throughput: 50 export snippets, --jobs 2, warm: {elapsed:.1f} s, {50 / elapsed:.1f} snippets/s {verdicts}")


if __name__ == "__main__":
    main()
