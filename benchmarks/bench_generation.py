"""Model generation rate: NNSmith bounded by time (as it ships) against the deterministic budget.

    python benchmarks/bench_generation.py [--models 20] [--sizes 15,50,100] [--framework torch]

Generates the same seeds twice per size in one process: once with NNSmith's own clock (its loop
stops after 10,000 ms of wall time, z3 unbounded), once as ``difftest`` does (``generate``: a fresh
z3 context per model with a resource limit, the loop's budget counted in steps). Prints models per
second for each, and how many of the seeds gave the same operators both ways (the budgets differ,
so some models may differ; what matters for ``difftest`` is that its own way gives one model per
seed on any machine).
"""

from __future__ import annotations

import argparse
import time

from issuemine.difftest.generate import METHOD, generate, model_type, op_name, operator_set, quiet


def timed(framework: str, seed: int, nodes: int) -> list[str]:
    """NNSmith as it ships: the global z3 context, its clock in milliseconds."""
    import time as clock

    import z3
    from nnsmith import graph_gen
    from nnsmith.graph_gen import model_gen

    z3.reset_params()
    z3.z3._main_ctx = None
    graph_gen.time = clock  # type: ignore[attr-defined]
    model_type(framework)
    with quiet():
        gen = model_gen(
            opset=operator_set(framework, ["float32"]),
            method=METHOD,
            seed=seed,
            max_nodes=nodes,
            timeout_ms=10_000,
            dtype_choices=["float32"],
        )
        ir = gen.make_concrete()
    return [op_name(i) for i in ir.insts if op_name(i) not in ("Input", "Constant", "Placeholder")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--sizes", default="15,50,100")
    parser.add_argument("--framework", default="torch")
    args = parser.parse_args()
    generate(args.framework, 0, 5, ["float32"])  # operator set and imports, outside the timings
    print(f"{'nodes':>5}  {'time-bounded models/s':>22}  {'deterministic models/s':>23}  same operators")
    for nodes in (int(n) for n in args.sizes.split(",")):
        seeds = range(1000 + nodes, 1000 + nodes + args.models)
        start = time.perf_counter()
        before = [timed(args.framework, seed, nodes) for seed in seeds]
        t_before = time.perf_counter() - start
        start = time.perf_counter()
        after = [generate(args.framework, seed, nodes, ["float32"]).operators for seed in seeds]
        t_after = time.perf_counter() - start
        same = sum(a == b for a, b in zip(before, after, strict=True))
        print(
            f"{nodes:>5}  {args.models / t_before:>22.2f}  {args.models / t_after:>23.2f}  {same} of {args.models}",
            flush=True,
        )


if __name__ == "__main__":
    main()
