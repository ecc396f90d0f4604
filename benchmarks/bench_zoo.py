"""Real architectures, offline: every zoo architecture with every setup that applies.

    python benchmarks/bench_zoo.py [--jobs 2] [--architectures bert,gpt2] [--setups torchscript,tf2onnx]

Runs ``difftest run --models zoo`` per setup (torch.onnx TorchScript and dynamo, onnx2torch and the
round trip, and onnx2tf to TFLite for the PyTorch architectures; tf2onnx for the Keras
applications), each a campaign in a temporary database, on 10 seeded input sets per architecture.
Prints each campaign's wall time and the table a converter maintainer reads before a release:
architectures × setups, each cell the outcome under abs-1e-7 with max |Δ| ("(rounding)" where the
noise-aware oracle calls a mismatch rounding), failures with their message in brief.
Nothing is downloaded: weights are random and seeded.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from issuemine.db import open_db
from issuemine.difftest.campaign import Plan, run
from issuemine.difftest.report import real_architectures
from issuemine.difftest.zoo import ZOO_INPUTS, available

SETUPS = (
    ("torch.onnx", "torchscript", "torch"),
    ("torch.onnx", "dynamo", "torch"),
    ("onnx2torch", "onnx2torch", "torch"),
    ("onnx2torch", "round-trip", "torch"),
    ("onnx2tf", "tflite", "torch"),
    ("tf2onnx", "tf2onnx", "tensorflow"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--architectures", help="only these (comma-separated); default: every one buildable here")
    parser.add_argument("--setups", default="torchscript,dynamo,onnx2torch,round-trip,tflite,tf2onnx")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per architecture")
    args = parser.parse_args()
    chosen = set(args.architectures.split(",")) if args.architectures else None
    setups = [s for s in SETUPS if s[1] in args.setups.split(",")]
    cells: dict[str, dict[str, str]] = {}
    families: dict[str, str] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        db = open_db(str(Path(folder) / "zoo.db"))
        for converter, exporter, framework in setups:
            names = [a.name for a in available(framework) if chosen is None or a.name in chosen]
            if not names:
                continue
            plan = Plan.zoo(converter, exporter, 17, 1, names, inputs=ZOO_INPUTS, policy="abs-1e-7")
            start = time.perf_counter()
            report = run(db, plan, Path(folder) / "out", args.jobs, args.timeout)
            wall = time.perf_counter() - start
            rows = real_architectures(db, [report.campaign])
            counts: dict[str, int] = {}
            for row in rows:
                counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
                families[row["architecture"]] = row["family"]
                cells.setdefault(row["architecture"], {})[f"{converter} {exporter}"] = _cell(row)
            print(
                f"{converter} {exporter}: {len(rows)} architectures in {wall:.0f} s "
                f"({wall / max(len(rows), 1):.1f} s each, --jobs {args.jobs}); {counts}",
                flush=True,
            )
        db.close()
    columns = [f"{c} {e}" for c, e, _ in setups]
    print(f"\nall setups: {time.perf_counter() - started:.0f} s\n")
    print("| architecture | family | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for name, found in cells.items():
        print(f"| {name} | {families[name]} | " + " | ".join(found.get(c, "") for c in columns) + " |")


def _cell(row: dict) -> str:
    outcome = row["outcome"]
    if outcome in ("success", "mismatch"):
        delta = f" {row['max_abs_diff']:.1e}" if row["max_abs_diff"] is not None else ""
        noise = "noise-aware" in row["within"]
        return (
            f"{'ok' if outcome == 'success' else 'Δ'}{delta}{' (rounding)' if outcome == 'mismatch' and noise else ''}"
        )
    missing = re.search(r"operation_type='(\w+)'", row["error"])  # onnx2torch's "Converter is not implemented"
    brief = f"no converter for {missing[1]}" if missing else row["error"][:90]
    return f"{outcome}: {brief}".replace("|", "/")


if __name__ == "__main__":
    main()
