"""Differential-testing benchmark.

    python benchmarks/bench_difftest.py [--per-size 20] [--jobs 2] [--sizes 15,100]
    python benchmarks/bench_difftest.py --whole 15..100:5 --per-size 56 [--setups torchscript,tf2onnx]

Models per minute through generate → framework run → convert → check → ORT load → 100 inputs →
compare, per converter and exporter (torch.onnx TorchScript, torch.onnx dynamo, tf2onnx, and
onnx2torch the other way: ONNX Runtime's outputs are the reference, the converted module runs in
PyTorch), at 15 and
100 nodes, on the local worker pool, with where the time goes (summed over models, per step) and
the outcomes (Table 11). The first TensorFlow run also pays NNSmith's operator probe (cached after).

``--whole`` runs, per setup, one campaign over the whole size range instead (15..100:5 with 56 per
size is 1,008 models, the issue's "1,000 models at 15-100 nodes"), and prints its wall time.

``--db PATH`` reads the campaigns a ``difftest run`` already stored there instead of running any:
per campaign, its wall time (first to last stored model; a resumed campaign's pauses count), and
per size the models per minute of wall time and where the time in models went.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from issuemine.db import open_db
from issuemine.difftest.campaign import Plan, campaign, models, parse_sizes, run

SETUPS = (
    ("torch.onnx", "torchscript"),
    ("torch.onnx", "dynamo"),
    ("tf2onnx", "tf2onnx"),
    ("onnx2torch", "onnx2torch"),  # ONNX → PyTorch: ONNX Runtime is the reference, torch runs the result
    ("onnx2torch", "round-trip"),  # PyTorch → ONNX → PyTorch: the generated model is the reference
    ("onnx2tf", "tflite"),  # ONNX → TFLite (LiteRT's interpreter), ONNX Runtime the reference
    ("onnx2tf", "keras"),  # ONNX → TensorFlow (the Keras model onnx2tf builds)
)
STEPS = ("generate", "framework", "convert", "load", "run", "compare")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-size", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sizes", default="15,100")
    parser.add_argument("--whole", help="one campaign per setup over these sizes, e.g. 15..100:5")
    parser.add_argument("--setups", default="torchscript,dynamo,tf2onnx,onnx2torch,round-trip,tflite,keras")
    parser.add_argument("--db", help="report the campaigns stored in this database instead of running new ones")
    args = parser.parse_args()
    if args.db:
        stored(args.db)
        return
    groups = [parse_sizes(args.whole)] if args.whole else [[int(s)] for s in args.sizes.split(",")]
    setups = [s for s in SETUPS if s[1] in args.setups.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        db = open_db(str(Path(folder) / "difftest.db"))
        print(f"difftest benchmark: {args.per_size} models per size, --jobs {args.jobs}, 100 inputs per model")
        for converter, exporter in setups:
            for sizes in groups:
                nodes = f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else sizes[0]
                plan = Plan(converter, exporter, 17, 1, sizes, args.per_size, 100, "study")
                start = time.perf_counter()
                report = run(db, plan, Path(folder) / "out", args.jobs)  # the default time limit, as a campaign has
                wall = time.perf_counter() - start
                found = models(db, report.campaign)
                steps = Counter[str]()
                for model in found:
                    steps.update({k: float(v) for k, v in model.durations.items()})
                spent = sum(steps.values()) or 1.0
                where = ", ".join(f"{s} {steps[s] / spent:.0%}" for s in STEPS if steps[s])
                outcomes = ", ".join(f"{k} {v}" for k, v in Counter(m.outcome for m in found).most_common())
                print(
                    f"{converter:<10} {exporter:<11} {nodes:>3} nodes: {len(found) / wall * 60:6.1f} models/min "
                    f"({len(found)} models, {wall:.0f} s wall, workers included)  time in models: {where}\n"
                    f"{'':<27}outcomes: {outcomes}\n"
                    f"{'':<27}1,000 models at this mix: {1000 * wall / max(len(found), 1) / 60:.0f} min"
                )
        db.close()


def stored(path: str) -> None:
    from issuemine.difftest.report import campaign_ids

    db = open_db(path)
    for campaign_id in campaign_ids(db):
        found = models(db, campaign_id)
        if not found:
            continue
        info = campaign(db, campaign_id)
        wall = (max(m.finished_at for m in found) - info.created_at).total_seconds()
        print(
            f"campaign {campaign_id} {info.converter} {info.exporter}: {len(found)} models in {wall / 60:.1f} min "
            f"({len(found) / wall * 60:.1f} models/min; "
            f"1,000 models at this mix: {1000 * wall / len(found) / 60:.0f} min)"
        )
        by_size: dict[int, list[Any]] = {}
        for model in found:
            by_size.setdefault(model.nodes, []).append(model)
        previous = info.created_at
        for nodes, group in sorted(by_size.items()):
            last = max(m.finished_at for m in group)
            span = max((last - previous).total_seconds(), 1e-9)
            previous = last
            steps = Counter[str]()
            for model in group:
                steps.update({k: float(v) for k, v in model.durations.items()})
            spent = sum(steps.values()) or 1.0
            where = ", ".join(f"{s} {steps[s] / spent:.0%}" for s in STEPS if steps[s])
            slow = Counter(m.outcome for m in group if m.outcome in ("timeout", "worker-crash"))
            print(
                f"  {nodes:>3} nodes: {len(group) / span * 60:6.1f} models/min, {spent / len(group):5.2f} s per model "
                f"in a worker ({where}){'; ' + ', '.join(f'{k} {v}' for k, v in slow.items()) if slow else ''}"
            )
    db.close()


if __name__ == "__main__":
    main()
