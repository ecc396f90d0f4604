"""Differential-testing commands: run (or resume) a campaign, report Table 11, show a model."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from issuemine.cli.common import (
    DbOption,
    JsonOption,
    ReportFormatOption,
    check_report_format,
    database,
    err,
    handle_errors,
    out,
    print_csv,
    print_json,
    print_markdown,
    table,
)
from issuemine.errors import IssuemineError

difftest_app = typer.Typer(
    help="Differential testing of converters: generate models (NNSmith), convert, compare, count (Table 11).",
    no_args_is_help=True,
)


def _need_extra() -> None:
    try:
        import nnsmith  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise IssuemineError(
            "difftest needs NNSmith and onnxruntime: pip install 'issuemine[repro,difftest]' (scripts/setup.sh does)"
        ) from None


@difftest_app.command("run")
@handle_errors
def run_cmd(
    converter: str = typer.Option(
        "torch.onnx",
        "--converter",
        help="torch.onnx, tf2onnx, onnx2torch (ONNX to PyTorch), onnx2tf (ONNX to TFLite or TensorFlow), or any "
        "converter whose file names a difftest_adapter (`issuemine converters` says which).",
    ),
    models: str = typer.Option(
        "nnsmith",
        "--models",
        help="nnsmith: generated models (--nodes, --per-size); zoo: real architectures with seeded random "
        "weights, built offline (transformers, Keras applications, torchvision; `issuemine difftest zoo` "
        "lists them), one model each.",
    ),
    architectures: str | None = typer.Option(
        None,
        "--architectures",
        help="With --models zoo: these architectures, comma-separated (default: every one the converter's "
        "framework can build here).",
    ),
    nodes: str = typer.Option("15..100:5", "--nodes", help="Model sizes: a range 15..100:5, a list 15,30, or 20."),
    per_size: int = typer.Option(20, "--per-size", min=1, max=100_000, help="Models per size."),
    seed: int = typer.Option(
        1, "--seed", min=0, max=2**31 - 1, help="Campaign seed: the same seed gives the same models."
    ),
    exporter: str | None = typer.Option(
        None,
        "--exporter",
        help="torch.onnx: torchscript (default) or dynamo; tf2onnx: tf2onnx; onnx2torch: onnx2torch (ONNX to "
        "PyTorch, ONNX Runtime the reference) or round-trip (PyTorch to ONNX and back, PyTorch the reference); "
        "onnx2tf: tflite (LiteRT's interpreter) or keras (TensorFlow).",
    ),
    protocol: str = typer.Option(
        "default",
        "--protocol",
        help="default: float32 tensors, opset 17, 100 inputs, policy abs-1e-7. study: the ISSTA 2024 artifact's "
        "settings: every data type NNSmith generates, opset 16, torch.onnx one input under study-torch "
        "(rtol 1e-3, atol 1e-7), tf2onnx 10 inputs under study-tf2onnx (max |Δ| ≤ 1e-7). Options given "
        "explicitly override the protocol's.",
    ),
    opset: int | None = typer.Option(
        None, "--opset", min=7, max=30, help="ONNX opset to export to (7-30; default: the protocol's)."
    ),
    inputs: int | None = typer.Option(
        None,
        "--inputs",
        min=1,
        max=10_000,
        help="Random input sets per model, run in both framework and runtime (default: the protocol's).",
    ),
    dtypes: str | None = typer.Option(
        None, "--dtypes", help="Tensor types to generate, comma-separated, or all (default: the protocol's)."
    ),
    policy: str | None = typer.Option(
        None, "--policy", help="Tolerance policy that decides a mismatch (default: the protocol's)."
    ),
    jobs: int = typer.Option(
        2, "--jobs", min=1, max=256, help="Worker processes (with Ray: models in flight at once)."
    ),
    executor: str = typer.Option(
        "pool",
        "--executor",
        help="pool: worker processes on this machine; ray: Ray tasks (pip install 'issuemine\\[ray]').",
    ),
    address: str | None = typer.Option(
        None, "--address", help="With --executor ray: join this cluster (HOST:PORT); default: a local Ray on loopback."
    ),
    timeout: float = typer.Option(
        60.0,
        "--timeout",
        min=1.0,
        help="Seconds one model may take (generate, convert, 2 × --inputs runs) before it counts as a hang; "
        "a model takes 1-12 s on one core here.",
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Stop after this many models (the next run resumes)."
    ),
    memory: float | None = typer.Option(
        None,
        "--memory",
        help="GB one worker may allocate; a model needing more fails with an allocation error "
        "(default: 80% of this machine's memory shared by the workers).",
    ),
    out_dir: Path = typer.Option(
        Path("issuemine-difftest"), "--out", help="Where ONNX files of failing models and worker logs go."
    ),
    env: str | None = typer.Option(
        None,
        "--env",
        help="Run the workers in this environment (a stack of `issuemine repro env list`, e.g. one of the "
        "study's time); built and given NNSmith first if it has not been (needs the package index). "
        "Default: the interpreter issuemine runs in.",
    ),
    envs_file: Path | None = typer.Option(
        None, "--envs-file", help="Environments file (repro-envs.toml) that defines --env; default: the catalog's."
    ),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Generate, convert, check, load and compare models; every model's outcome is stored as it
    finishes, and running the same campaign again resumes it.

    Each model runs in a worker process with a time limit: a converter or runtime that crashes,
    aborts or hangs becomes that model's outcome and the worker is replaced. Generated models are
    not hostile code, so they run outside the bubblewrap sandbox.
    """
    _need_extra()
    from issuemine.difftest.campaign import Plan, adapter_class, run

    if memory is not None and memory <= 0:
        raise IssuemineError("--memory: give the GB one worker may allocate, more than 0")
    if address and executor != "ray":
        raise IssuemineError("--address joins a Ray cluster: give it with --executor ray")

    preset = protocol_settings(protocol, converter)
    chosen_dtypes = dtypes if dtypes is not None else preset["dtypes"]
    chosen_exporter = exporter or (adapter_class(converter).exporters or ("",))[0]
    chosen_opset = opset if opset is not None else preset["opset"]
    if models not in ("nnsmith", "zoo"):
        raise IssuemineError(f"--models {models!r}: choose nnsmith or zoo")
    if architectures is not None and models != "zoo":
        raise IssuemineError("--architectures chooses real architectures: give it with --models zoo")
    if models == "zoo":
        from issuemine.difftest.zoo import ZOO_INPUTS, choose

        names = [a.strip() for a in (architectures or "").split(",") if a.strip()]
        plan = Plan.zoo(
            converter,
            chosen_exporter,
            chosen_opset,
            seed,
            choose(adapter_class(converter).framework, names),
            inputs=inputs if inputs is not None else ZOO_INPUTS,
            policy=policy or preset["policy"],
            dtypes=["float32"],
            environment=env,
        )
    else:
        plan = Plan(
            converter,
            chosen_exporter,
            chosen_opset,
            seed,
            _sizes(nodes),
            per_size,
            inputs if inputs is not None else preset["inputs"],
            policy or preset["policy"],
            [] if chosen_dtypes.strip() == "all" else [d.strip() for d in chosen_dtypes.split(",") if d.strip()],
            env,
        )
    plan.check()
    if env is not None and executor == "ray":
        raise IssuemineError("--env runs on the local worker pool: a Ray cluster's workers run Ray's Python")
    from issuemine.difftest.campaign import environment_python

    python = environment_python(env, envs_file, building=lambda what: err.print(f"{what} ..."))
    database_ = database(db)
    total = len(plan.sizes) * plan.per_size
    start = time.perf_counter()
    with Progress(
        TextColumn("[bold]difftest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}  {task.fields[counts]}"),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("models", total=total, rate="", counts="")
        ran = 0

        def progress(result: dict[str, Any], counts: Counter[str]) -> None:
            nonlocal ran
            ran += 1
            minutes = (time.perf_counter() - start) / 60
            counts_text = ", ".join(f"{k} {v}" for k, v in counts.most_common())
            bar.update(task, advance=1, rate=f"{ran / minutes:.0f} models/min" if minutes else "", counts=counts_text)

        report = run(
            database_,
            plan,
            out_dir,
            jobs,
            timeout,
            progress=progress,
            limit=limit,
            started=lambda planned: bar.update(task, completed=planned.skipped),
            executor=executor,
            address=address,
            memory=int(memory * 2**30) if memory else None,
            python=python,
        )
    if as_json:
        print_json({**report.__dict__, "outcomes": dict(report.outcomes)})
        return
    err.print(
        f"campaign {report.campaign}: {report.ran} models run, {report.skipped} already done (resumed), "
        f"{report.planned} planned; {report.replaced_workers} worker(s) replaced; {report.seconds:.0f} s"
    )
    _print_table(database_, [report.campaign], "md")


@difftest_app.command("zoo")
@handle_errors
def zoo_cmd(as_json: bool = JsonOption) -> None:
    """The real architectures `difftest run --models zoo` converts: built offline from their libraries
    with seeded random weights, and whether each library loads here."""
    from issuemine.difftest.zoo import CATALOG, library_missing

    missing = {lib: library_missing(lib) for lib in {a.library for a in CATALOG.values()}}
    rows = [
        {
            "architecture": a.name,
            "family": a.family,
            "library": a.library,
            "framework": a.framework,
            "available": missing[a.library] is None,
            "why_not": missing[a.library] or "",
        }
        for a in CATALOG.values()
    ]
    if as_json:
        print_json(rows)
        return
    out.print(
        table(
            "The zoo: real architectures, random weights",
            ["architecture", "family", "library", "framework", "here"],
            [
                [
                    r["architecture"],
                    r["family"],
                    r["library"],
                    r["framework"],
                    "yes" if r["available"] else r["why_not"],
                ]
                for r in rows
            ],
        )
    )


@difftest_app.command("report")
@handle_errors
def report_cmd(
    campaign_id: int | None = typer.Option(None, "--campaign", help="One campaign (default: every campaign)."),
    policy: str | None = typer.Option(
        None,
        "--policy",
        help="Decide mismatches by this tolerance policy, or by noise-aware: wrong only when further from a "
        "float64 run of the framework model than the framework's own float32 output, by more than 8 times plus "
        "16 ULPs (default: each campaign's own policy).",
    ),
    fmt_: str = typer.Option("md", "--format", help="md, csv, json, or latex (Table 11, for a paper)."),
    show_signatures: bool = typer.Option(
        False, "--signatures", help="Distinct bugs: failures and mismatches grouped into signatures, with counts."
    ),
    signature: int | None = typer.Option(
        None, "--signature", min=1, help="One signature (its number in --signatures) as a ready bug report (Markdown)."
    ),
    db: str | None = DbOption,
    as_json: bool = typer.Option(False, "--json", help="The same as --format json."),
) -> None:
    """Table 11: outcomes (conversion failure, ONNX Runtime failure, mismatch, success) per converter,
    exporter and model size; Table 12: operators and operator sequences of mismatched vs correct
    models; the most frequent failure messages, grouped; and the localized diverging operators.
    Every policy's verdict is stored with each model, so --policy recounts without re-running.
    --format json gives every part; csv and latex give Table 11. --signatures counts distinct bugs (a failure's
    stage and normalized message; a mismatch's first diverging operator with its attributes and input
    types, rounding left out) with the mined issues that name the same operator; --signature N writes
    one as a bug report."""
    fmt_ = "json" if as_json else check_report_format(fmt_, ("md", "csv", "json", "latex"))
    database_ = database(db, reads=True)
    if fmt_ == "latex" and (signature is not None or show_signatures):
        raise IssuemineError("--format latex gives Table 11; signatures are md, csv or json")
    if signature is not None:
        from issuemine.difftest.signatures import bug_report

        out.print(bug_report(database_, signature, policy), markup=False, highlight=False, soft_wrap=True)
        return
    if show_signatures:
        _print_signatures(database_, campaign_id, policy, fmt_)
        return
    _print_table(database_, [campaign_id] if campaign_id else None, fmt_, policy)
    if fmt_ == "md":
        _print_findings(database_, campaign_id, policy)


def _print_signatures(db: Any, campaign_id: int | None, policy: str | None, fmt_: str) -> None:
    from issuemine.difftest.signatures import signatures

    rows = [s.row() for s in signatures(db, campaign_id, policy)]
    if fmt_ == "json":
        print_json(rows)
        return
    for row in rows:
        row["already_reported"] = ", ".join(row["already_reported"]) or "-"
    if fmt_ == "csv":
        print_csv(rows, missing="")
        return
    columns = ["signature", "campaign", "converter", "kind", "where", "detail", "models", "example", "already_reported"]
    title = f"Distinct failures and mismatches: {len(rows)} signature(s)"
    print_markdown(title, columns, [[r[c] if r[c] is not None else "-" for c in columns] for r in rows])


def _print_table(db: Any, ids: list[int] | None, fmt_: str, policy: str | None = None) -> None:
    from issuemine.difftest.campaign import table_11
    from issuemine.difftest.report import summary

    rows = table_11(db, ids, policy)
    if not rows:
        raise IssuemineError("no campaign yet: run `issuemine difftest run`")
    if fmt_ == "json":
        print_json(summary(db, ids[0] if ids else None, policy))
        return
    if fmt_ == "csv":
        print_csv(rows, missing=0)
        return
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if fmt_ == "latex":
        import pandas as pd

        from issuemine.analysis.tables import latex

        frame = pd.DataFrame([[r.get(c, 0) for c in columns] for r in rows], columns=columns)
        caption = "Differential-testing outcomes per converter, exporter and model size (Table 11)"
        print(latex(frame.set_index("campaign"), caption=caption, label="tab:difftest-outcomes"), end="")
        return
    print_markdown("Table 11: differential-testing outcomes", columns, [[r.get(c, 0) for c in columns] for r in rows])


def _print_findings(db: Any, campaign_id: int | None, policy: str | None) -> None:
    from issuemine.difftest.campaign import rounding_survivors
    from issuemine.difftest.report import campaign_ids, error_groups, localized, real_architectures, sequences

    ids = campaign_ids(db, campaign_id)
    rows = []
    for found in (sequences(db, i, policy) for i in ids):
        top = "; ".join(f"{t['sequence']} ({t['models']})" for t in found["top_reduced"][:5])
        rows.append(
            [
                found["campaign"],
                f"{found['converter']} {found['exporter']}",
                f"{found['mismatched_models']} / {found['correct_models']}",
                ", ".join(found["ops_only_mismatched"]) or "-",
                found["shared_by_mismatched"],
                found["shared_with_correct"],
                found["only_mismatched"],
                found["reduced_only_mismatched"],
                f"{found['models_with_only_mismatched']} of {found['mismatched_models']}",
                top or "-",
            ]
        )
    columns = [
        "campaign",
        "setup",
        "mismatched / correct",
        "ops only in mismatched",
        "seqs shared by mismatched",
        "shared with correct",
        "mismatch-only",
        "reduced",
        "models with one",
        "most carried reduced (models)",
    ]
    print_markdown("Table 12: operator sequences of mismatched vs correct models", columns, rows)
    errors = error_groups(db, ids)
    if errors:
        columns = ["campaign", "outcome", "stage", "models", "message", "example"]
        print_markdown("Most frequent failures", columns, [[e[c] for c in columns] for e in errors])
    rounding = rounding_survivors(db, ids)
    if any(r["mismatches"] for r in rounding):
        columns = ["campaign", "converter", "exporter", "policy", "mismatches", "with_reference", "beyond_rounding"]
        title = "Rounding versus bugs: mismatches the noise-aware oracle (float64 reference) still calls wrong"
        print_markdown(title, columns, [[r[c] for c in columns] for r in rounding])
    real = real_architectures(db, ids, policy)
    if real:
        columns = ["architecture", "family", "setup", "outcome", "max |Δ|", "within", "error", "model"]
        rows_ = [
            [
                r["architecture"],
                r["family"],
                r["setup"],
                r["outcome"],
                f"{r['max_abs_diff']:.3g}" if r["max_abs_diff"] is not None else "-",
                ", ".join(r["within"]) or "-",
                r["error"] or "-",
                r["model"],
            ]
            for r in real
        ]
        print_markdown("Real architectures (random weights): outcome, max |Δ| and the policies within", columns, rows_)
    found_ops = localized(db, ids)
    if found_ops:
        columns = ["campaign", "model", "operator", "node", "max_abs_diff", "reduced_nodes", "reduced"]
        print_markdown("Localized: first diverging operator", columns, [[r[c] for c in columns] for r in found_ops])


@difftest_app.command("replicate")
@handle_errors
def replicate_cmd(
    campaign_ids: list[int] = typer.Option(
        [], "--campaign", help="A campaign to compare (repeat; default: every campaign run under --protocol study)."
    ),
    fmt_: str = ReportFormatOption,
    db: str | None = DbOption,
) -> None:
    """The study's Table 11 replicated: each campaign beside the counts of the ISSTA 2024 artifact
    (the same model sizes), a chi-squared test of whether the outcome distributions differ, and for
    each outcome whose share moved by more than 8 points the evidence: which ONNX Runtime kernels
    were missing then and now and how often the generator drew their operators, what conversion
    failures say. Run the campaigns with `difftest run --protocol study`, in a stack of the study's
    time (`--env`) and in today's.

    Example: issuemine difftest replicate --campaign 3 --campaign 4"""
    from sqlalchemy import select

    from issuemine.db.models import DifftestCampaign
    from issuemine.difftest.replication import markdown, replication

    check_report_format(fmt_)
    database_ = database(db, reads=True)
    ids = list(campaign_ids)
    if not ids:
        with database_.session() as session:
            query = select(DifftestCampaign.id).where(DifftestCampaign.policy.like("study-%"))
            ids = list(session.scalars(query.order_by(DifftestCampaign.id)))
    results = replication(database_, ids)
    if fmt_ == "json":
        print_json(results)
    elif fmt_ == "csv":
        print_csv(
            [
                {"converter": r["converter"], "nodes": row["nodes"], "side": name, **cells}
                for r in results
                for row in r["rows"]
                for name, cells in row.items()
                if name != "nodes"
            ]
        )
    else:
        typer.echo(markdown(results))


@difftest_app.command("models")
@handle_errors
def models_cmd(
    campaign_id: int | None = typer.Option(None, "--campaign", help="One campaign (default: every campaign)."),
    outcome: str | None = typer.Option(
        None, "--outcome", help="Only this outcome: mismatch, success, ort-failure, conversion-failure, ..."
    ),
    policy: str | None = typer.Option(
        None, "--policy", help="Decide mismatch or success by this policy, or noise-aware (default: the campaign's)."
    ),
    operator: str | None = typer.Option(None, "--operator", help="Only models with this operator (NNSmith's name)."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many rows."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """The models of the campaigns, with their ids for `difftest show` and `difftest localize`:
    outcome (under --policy), size, seed, max |Δ|, and the error's first line or the localized
    operator.

    Example: issuemine difftest models --outcome mismatch --policy noise-aware --operator Erf"""
    from issuemine.difftest.campaign import models, outcome_under, policy_name
    from issuemine.difftest.execute import OUTCOMES
    from issuemine.difftest.report import campaign_ids, message_pattern

    if outcome is not None and outcome not in (*OUTCOMES, "worker-crash", "timeout"):
        raise IssuemineError(f"--outcome {outcome!r}: choose {', '.join(OUTCOMES)}")
    chosen = policy_name(policy) if policy else None
    database_ = database(db, reads=True)
    rows = []
    for i in campaign_ids(database_, campaign_id):
        for m in models(database_, i):
            verdict = outcome_under(m, chosen)
            if (outcome and verdict != outcome) or (operator and operator not in (m.operators or [])):
                continue
            detail = message_pattern(m.error, 80) if m.error else (m.localized or {}).get("op_type") or ""
            rows.append(
                {
                    "id": m.id,
                    "campaign": i,
                    "nodes": m.nodes,
                    "seed": m.seed,
                    "outcome": verdict,
                    "max_abs_diff": m.max_abs_diff,
                    "operators": len(m.operators or []),
                    "detail": detail,
                }
            )
    shown = rows[:limit]
    if as_json:
        print_json(shown)
        return
    columns = ["id", "campaign", "nodes", "seed", "outcome", "max_abs_diff", "operators", "detail"]
    title = f"Models: {len(shown)} of {len(rows)}" + (f" (--limit {limit})" if len(rows) > limit else "")
    cells = [[f"{r[c]:.3g}" if c == "max_abs_diff" and r[c] is not None else r[c] for c in columns] for r in shown]
    print_markdown(title, columns, cells)


@difftest_app.command("show")
@handle_errors
def show_cmd(
    model_id: int = typer.Argument(..., help="A model's id (difftest_models.id; `difftest report --format json`)."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """One model: seed and size, operators, outcome, the error or the max |Δ| and differing outputs,
    the verdict under every tolerance policy, and where its time went."""
    from issuemine.db.models import DifftestModel

    with database(db, reads=True).session() as session:
        row = session.get(DifftestModel, model_id)
        if row is None:
            raise IssuemineError(f"no difftest model {model_id}")
        data = {c.name: getattr(row, c.name) for c in DifftestModel.__table__.columns}
    if as_json:
        print_json(data)
        return
    out.print(
        f"[bold]model {model_id}[/] of campaign {data['campaign_id']}: {data['node_count']} operators "
        f"(asked {data['nodes']}), seed {data['seed']} — [bold]{data['outcome']}[/]",
        highlight=False,
    )
    out.print(f"operators: {' → '.join(data['operators']) or '-'}", highlight=False, soft_wrap=True)
    if data["stage"]:
        out.print(f"stage: {data['stage']}", highlight=False)
    if data["error"]:
        out.print(f"error: {data['error']}", highlight=False, soft_wrap=True, markup=False)
    if data["max_abs_diff"] is not None:
        out.print(f"max |Δ|: {data['max_abs_diff']:.3g}; outputs beyond the policy: {data['differing'] or 'none'}")
    elif data["differing"]:
        out.print(f"outputs beyond the policy: {data['differing']} (no max |Δ|: a shape or integer values differ)")
    if data["policies"]:
        out.print("policies: " + ", ".join(f"{k} {'ok' if v else 'mismatch'}" for k, v in data["policies"].items()))
    out.print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in data["durations"].items()), highlight=False)
    out.print(f"ONNX file: {data['onnx_path'] or 'not kept (regenerate from the seed and size)'}", highlight=False)


@difftest_app.command("localize")
@handle_errors
def localize_cmd(
    model_id: int | None = typer.Argument(None, help="A mismatching model's id (`difftest report --format json`)."),
    every: bool = typer.Option(
        False, "--all", help="Every mismatch not localized yet that is more than rounding (noise-aware oracle)."
    ),
    campaign_id: int | None = typer.Option(None, "--campaign", help="With --all: one campaign (default: each)."),
    budget: float = typer.Option(
        600.0, "--budget", min=1.0, help="With --all: seconds to spend; models left over wait for the next run."
    ),
    policy: str | None = typer.Option(
        None,
        "--policy",
        help="Tolerance policy, or noise-aware: wrong only beyond float32 rounding against a float64 run "
        "(default: the campaign's; with --all, noise-aware).",
    ),
    out_dir: Path = typer.Option(
        Path("issuemine-difftest"), "--out", help="Where the reduced model, its inputs and expected outputs go."
    ),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Find the first operator whose output diverges, then shrink the model by delta debugging to
    the smallest part that still mismatches: reduced.onnx, inputs.npz and expected.npz, ready to
    attach to a bug report. The finding is stored with the model and shows in `difftest report`;
    `--all` localizes every mismatch that survives the noise-aware oracle, within `--budget` seconds
    (a model started before the budget ran out is finished), so `difftest report --signatures` can
    group them."""
    _need_extra()
    from issuemine.difftest.localize import localize_stored

    database_ = database(db)
    if every == (model_id is not None):
        raise IssuemineError("give a model id, or --all (every mismatch not localized yet)")
    if every:
        from issuemine.difftest.execute import NOISE_AWARE

        # Under 1e-7 the first operator whose rounding passed 1e-7 would be named, not the bug.
        _localize_all(database_, campaign_id, budget, policy or NOISE_AWARE, out_dir, as_json)
        return
    assert model_id is not None
    found = localize_stored(database_, model_id, out_dir / "localized", policy)
    if found is None:
        raise IssuemineError(
            f"model {model_id}: no intermediate value diverges when the model is converted again with its "
            "intermediates exposed (the exporter emits another graph then); nothing to localize"
        )
    if as_json:
        print_json(found.record())
        return
    delta = (
        f"max |Δ| {found.max_abs_diff:.3g}"
        if found.max_abs_diff is not None
        else "no max |Δ|: its shape or integer values differ"
    )
    out.print(
        f"[bold]model {model_id}[/]: first diverging operator [bold]{found.op}[/] (tensor {found.var}; ONNX "
        f"{', '.join(found.onnx_nodes) or 'node not found'}), {delta} on input set {found.input_set}",
        highlight=False,
    )
    if not found.reproduced:
        out.print(
            "note: in the re-export with intermediates exposed, the model's outputs agree with the framework: this "
            "divergence is masked downstream and may not be what made the campaign's model mismatch"
        )
    if not found.reduced_ops:  # a real architecture: its leaf modules are tapped, not reduced
        out.print(
            f"not reduced (a real architecture's module): {found.reduced}/all-intermediates.onnx with inputs.npz "
            "and expected.npz",
            highlight=False,
        )
        return
    out.print(
        f"reduced to {found.reduced_nodes} ONNX node(s) ({' → '.join(found.reduced_ops)}): "
        f"{found.reduced}/reduced.onnx with inputs.npz and expected.npz",
        highlight=False,
    )


def _localize_all(
    db: Any, campaign_id: int | None, budget: float, policy: str | None, out_dir: Path, as_json: bool
) -> None:
    from issuemine.difftest.campaign import models, outcome_under
    from issuemine.difftest.execute import NOISE_AWARE
    from issuemine.difftest.localize import localize_stored
    from issuemine.difftest.report import campaign_ids

    todo = [
        m.id
        for i in campaign_ids(db, campaign_id)
        for m in models(db, i)
        if m.localized is None
        and outcome_under(m, None if policy == NOISE_AWARE else policy) == "mismatch"
        and (m.policies or {}).get(NOISE_AWARE) is not True
    ]
    deadline = time.monotonic() + budget
    done: dict[str, list[int]] = {"localized": [], "nothing to localize": [], "failed": [], "left for later": []}
    with Progress(TextColumn("localizing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("localize", total=len(todo))
        for model_id in todo:
            if time.monotonic() > deadline:
                done["left for later"].append(model_id)
                continue
            try:
                found = localize_stored(db, model_id, out_dir / "localized", policy)
                done["localized" if found is not None else "nothing to localize"].append(model_id)
            except Exception as exc:  # one model the localizer cannot handle must not end the rest
                err.print(f"model {model_id}: {type(exc).__name__}: {str(exc)[:200]}", markup=False, highlight=False)
                done["failed"].append(model_id)
            bar.advance(task)
    if as_json:
        print_json(done)
        return
    out.print(", ".join(f"{len(v)} {k}" for k, v in done.items()) + f" (of {len(todo)} mismatches beyond rounding)")


@difftest_app.command("coverage")
@handle_errors
def coverage_cmd(
    models_dir: Path = typer.Argument(..., help="A folder of ONNX models (say, a converter's own test models)."),
    campaign_id: int | None = typer.Option(None, "--campaign", help="Sequences of one campaign (default: each)."),
    policy: str | None = typer.Option(None, "--policy", help="Tolerance policy deciding mismatches."),
    db: str | None = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """What share of the operator sequences found only in mismatched models (reduced to their
    shortest new part) the given ONNX models contain: the study's proposed coverage metric for a
    converter's test suite, with the uncovered sequences that most mismatched models carry."""
    from issuemine.difftest.report import coverage_of

    if not models_dir.is_dir():
        raise IssuemineError(f"{models_dir}: not a folder")
    found = coverage_of(database(db, reads=True), models_dir, campaign_id, policy)
    if as_json:
        print_json(found)
        return
    out.print(f"{found['models']} ONNX model(s) under {found['folder']}", highlight=False)
    for line in found["unreadable"]:
        err.print(f"skipped {line}", highlight=False, markup=False)
    rows = [
        [
            c["campaign"],
            f"{c['converter']} {c['exporter']}",
            c["sequences"],
            c["covered"],
            "-" if c["share"] is None else f"{c['share']:.1%}",
            "; ".join(f"{u['sequence']} ({u['models']})" for u in c["uncovered_most_carried"][:5]) or "-",
        ]
        for c in found["campaigns"]
    ]
    columns = ["campaign", "setup", "mismatch-only sequences", "covered", "share", "uncovered, most carried"]
    out.print(table("Coverage of mismatch-only operator sequences", columns, rows))


def protocol_settings(protocol: str, converter: str) -> dict[str, Any]:
    """A protocol's campaign settings. ``study`` is the ISSTA 2024 artifact's, as its code runs
    them (exporter_test.py, config/main.yaml and tf2onnx_analysis.ipynb): NNSmith symbolic-cinit
    with every data type, opset 16; torch.onnx compared on one input (NNSmith's oracle) with
    find_mismatch's tolerances, tf2onnx on 10 random inputs with max |Δ| ≤ 1e-7."""
    if protocol == "default":
        return {"opset": 17, "inputs": 100, "dtypes": "float32", "policy": "abs-1e-7"}
    if protocol == "study":
        if converter == "tf2onnx":
            return {"opset": 16, "inputs": 10, "dtypes": "all", "policy": "study-tf2onnx"}
        return {"opset": 16, "inputs": 1, "dtypes": "all", "policy": "study-torch"}
    raise IssuemineError(f"--protocol {protocol!r}: choose default or study")


def _sizes(text: str) -> list[int]:
    from issuemine.difftest.campaign import parse_sizes

    return parse_sizes(text)
