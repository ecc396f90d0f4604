"""Campaigns: create or resume, deal the jobs to the workers, store each result as it arrives, and
report the study's Table 11.

A campaign's models are fixed by its parameters: model k of size n gets a seed derived from the
campaign seed, n and k, so the same campaign seed gives the same models, and a campaign run again
with the same parameters resumes: models already stored are not redone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.models import DifftestCampaign, DifftestModel
from issuemine.db.rows import upsert, utcnow
from issuemine.difftest.adapters import Adapter, adapter_spec, load_adapter
from issuemine.difftest.execute import NOISE_AWARE, OUTCOMES, TABLE_11
from issuemine.difftest.generate import METHOD
from issuemine.difftest.pool import DEFAULT_RUNNER, WorkerPool, default_memory
from issuemine.domain.tolerances import load_policies, stored_verdict
from issuemine.errors import IssuemineError
from issuemine.installed import versions as installed_versions


def adapter_class(converter: str) -> type[Adapter]:
    """The difftest adapter of a converter its file names (a one-line error for one it does not)."""
    return load_adapter(adapter_spec(converter))


PACKAGES = ("nnsmith", "torch", "onnxscript", "tensorflow-cpu", "tf2onnx", "onnx", "onnxruntime", "numpy", "z3-solver")


# Campaigns under the artifact's own policies (--protocol study) follow its pipeline: tf2onnx
# converts the SavedModel NNSmith writes (`python -m tf2onnx.convert --saved-model`), and the
# converted model goes straight to ONNX Runtime, with no ONNX checker between (its exporter_test.py
# and tf2onnx notebook run none), so that what the checker would reject fails, as it did there, in
# ONNX Runtime (a ReduceProd on int8: NOT_IMPLEMENTED) rather than as a conversion failure.
ARTIFACT_POLICIES = frozenset({"study-torch", "study-tf2onnx"})

MAX_NODES = 1_000  # NNSmith's models; the study went to 100
MAX_SIZES = 1_000


def parse_sizes(text: str) -> list[int]:
    """``15..100:5`` (from 15 to 100 in steps of 5), ``15,30,60``, or ``20``."""
    value = text.strip()
    found = re.fullmatch(r"(\d+)\.\.(\d+)(?::(\d+))?", value)
    usage = f"--nodes {text!r}: give a range (15..100:5), a list (15,30) or a number (20), sizes 1-{MAX_NODES}"
    try:
        if found:
            low, high, step = int(found[1]), int(found[2]), int(found[3] or 1)
            if step < 1 or high > MAX_NODES:  # checked before the range is made: 15..1000000000:1
                raise IssuemineError(usage)
            sizes = list(range(low, high + 1, step))
        else:
            sizes = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1 or max(sizes) > MAX_NODES or len(sizes) > MAX_SIZES:
        raise IssuemineError(usage)
    return sizes


def model_seed(campaign_seed: int, nodes: int, k: int) -> int:
    return (campaign_seed * 1_000_003 + nodes * 1_009 + k) % 2**31


def versions(python: str | None = None) -> dict[str, str]:
    """The versions the campaign's models run under: this interpreter's, or another environment's."""
    if python is None:
        return installed_versions(PACKAGES)
    import json
    import subprocess

    from issuemine.difftest.pool import env_worker_environ

    code = "import json, sys\nfrom issuemine.installed import versions\nprint(json.dumps(versions(sys.argv[1:])))"
    try:
        done = subprocess.run(
            [python, "-c", code, *PACKAGES], capture_output=True, text=True, timeout=120, env=env_worker_environ()
        )
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise IssuemineError(f"cannot read the versions of {python}: {exc}") from exc


def environment_python(
    name: str | None, envs_file: Path | None = None, building: Callable[[str], None] | None = None
) -> str | None:
    """The interpreter of the environment a campaign runs in (None: this one). A stack that is not
    built, or lacks NNSmith, is made ready first when ``building`` is given (it is told what is
    being done; this needs the package index), else it is an error that says what to run."""
    if name is None:
        return None
    from issuemine.repro import environments

    if name == environments.CURRENT:
        return None
    found = environments.load(envs_file)
    env = found.get(name)
    if env is None:
        known = ", ".join(n for n in found if n != environments.CURRENT)
        raise IssuemineError(f"--env {name!r}: no such environment (known: {known}; see `issuemine repro env list`)")
    version = tuple(int(part) for part in (env.base_python or "").split(".")[:2] if part.isdigit())
    if len(version) == 2 and version < (3, 10):
        raise IssuemineError(
            f"--env {name!r}: difftest workers need Python 3.10 or newer ({name} has {env.base_python})"
        )
    if not env.has_difftest:
        if building is None:
            raise IssuemineError(
                f"--env {name!r} cannot run difftest workers yet; run: issuemine repro env build {name} --difftest"
            )
        if not env.built:
            building(f"building {name} (its pins, from the package index)")
            environments.build(env)
        building(f"installing NNSmith into {name}")
        environments.add_difftest(env, environments.difftest_packages(envs_file))
    return env.python


@dataclass
class Plan:
    converter: str
    exporter: str
    opset: int
    seed: int
    sizes: list[int]
    per_size: int
    inputs: int = 100
    policy: str | None = None
    dtypes: list[str] = field(default_factory=lambda: ["float32"])  # [] = all NNSmith knows (the study's)
    environment: str | None = None  # a stack of the environments file (difftest run --env); None: this one
    architectures: list[str] | None = None  # a zoo campaign's real architectures (difftest/zoo.py)

    @classmethod
    def zoo(cls, converter: str, exporter: str, opset: int, seed: int, architectures: list[str], **rest: Any) -> Plan:
        """A campaign of real architectures: one model per architecture (its place in the list is
        its "size"), weights drawn from the campaign seed."""
        return cls(
            converter,
            exporter,
            opset,
            seed,
            list(range(1, len(architectures) + 1)),
            1,
            architectures=architectures,
            **rest,
        )

    def check(self) -> None:
        exporters = adapter_class(self.converter).exporters
        if self.exporter not in exporters:
            raise IssuemineError(
                f"--exporter {self.exporter!r} does not belong to {self.converter}: {', '.join(exporters)}"
            )
        if self.per_size < 1 or self.inputs < 1:
            raise IssuemineError("--per-size and --inputs must be at least 1")
        known = {
            "float16",
            "float32",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "bool",
            "complex64",
            "complex128",
        }
        unknown = sorted(set(self.dtypes) - known)
        if unknown:
            raise IssuemineError(f"--dtypes: unknown {', '.join(unknown)} (known: {', '.join(sorted(known))}, all)")


def open_campaign(db: Database, plan: Plan, python: str | None = None) -> int:
    """The campaign with exactly these parameters (to resume), or a new one. ``python`` is the
    interpreter of ``plan.environment``, whose versions a new campaign records."""
    plan.check()
    policy = load_policies().get(plan.policy).name
    same_env = (
        DifftestCampaign.environment.is_(None)
        if plan.environment is None
        else DifftestCampaign.environment == plan.environment
    )
    with db.session() as session:
        found = session.scalar(
            select(DifftestCampaign.id).where(
                DifftestCampaign.converter == plan.converter,
                DifftestCampaign.exporter == plan.exporter,
                DifftestCampaign.opset == plan.opset,
                DifftestCampaign.seed == plan.seed,
                DifftestCampaign.per_size == plan.per_size,
                DifftestCampaign.inputs == plan.inputs,
                DifftestCampaign.policy == policy,
                same_env,
            )
        )
        if found is not None:
            row = session.get(DifftestCampaign, found)
            assert row is not None
            same_models = (row.architectures or None) == (plan.architectures or None)
            if list(row.sizes) == plan.sizes and sorted(row.dtypes) == sorted(plan.dtypes) and same_models:
                return int(found)
        now = utcnow()
        row = DifftestCampaign(
            converter=plan.converter,
            exporter=plan.exporter,
            opset=plan.opset,
            seed=plan.seed,
            sizes=plan.sizes,
            per_size=plan.per_size,
            inputs=plan.inputs,
            dtypes=sorted(plan.dtypes),
            policy=policy,
            generator="zoo" if plan.architectures else f"nnsmith {versions().get('nnsmith')} {METHOD}",
            architectures=plan.architectures,
            versions=versions(python),
            environment=plan.environment,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        return int(row.id)


def campaign(db: Database, campaign_id: int | None = None) -> DifftestCampaign:
    with db.session() as session:
        query = select(DifftestCampaign).order_by(DifftestCampaign.id.desc()).limit(1)
        if campaign_id is not None:
            query = select(DifftestCampaign).where(DifftestCampaign.id == campaign_id)
        row = session.scalar(query)
        if row is None:
            raise IssuemineError(
                f"no campaign {campaign_id}"
                if campaign_id is not None
                else "no campaign yet: run `issuemine difftest run`"
            )
        session.expunge(row)
        return row


def jobs(db: Database, campaign_id: int, out_dir: Path) -> list[dict[str, Any]]:
    """The campaign's models not stored yet, smallest first."""
    row = campaign(db, campaign_id)
    with db.session() as session:
        done = set(
            session.execute(
                select(DifftestModel.nodes, DifftestModel.seed).where(DifftestModel.campaign_id == campaign_id)
            ).all()
        )
    policies = [p.as_dict() for p in load_policies().policies]
    adapter = adapter_spec(row.converter)
    zoo = list(row.architectures or [])
    todo = []
    for nodes in row.sizes:
        for k in range(row.per_size):
            seed = model_seed(row.seed, nodes, k)
            if (nodes, seed) in done:
                continue
            todo.append(
                {
                    "campaign": campaign_id,
                    "converter": row.converter,
                    "adapter": adapter,
                    "exporter": row.exporter,
                    "opset": row.opset,
                    "seed": seed,
                    "nodes": nodes,
                    "inputs": row.inputs,
                    "dtypes": list(row.dtypes),
                    "policies": policies,
                    "policy": row.policy,
                    "checker": row.policy not in ARTIFACT_POLICIES,
                    # and tf2onnx converts the SavedModel NNSmith writes, by its command line
                    "saved_model": row.converter == "tf2onnx" and row.policy in ARTIFACT_POLICIES and not zoo,
                    "out_dir": str(out_dir),
                    **({"architecture": zoo[nodes - 1]} if zoo else {}),
                }
            )
    return todo


def store(db: Database, campaign_id: int, result: dict[str, Any]) -> None:
    """One model's result, committed at once (a killed campaign keeps every finished model)."""
    record = {
        "campaign_id": campaign_id,
        "nodes": int(result["nodes"]),
        "seed": int(result["seed"]),
        "node_count": result.get("node_count"),
        "operators": result.get("operators") or [],
        "outcome": result["outcome"],
        "stage": result.get("stage"),
        "error": result.get("error"),
        "max_abs_diff": result.get("max_abs_diff"),
        "differing": result.get("differing") or [],
        "policies": result.get("policies") or {},
        "onnx_path": result.get("onnx"),
        "durations": result.get("durations") or {},
        "graph": result.get("graph"),
        "architecture": result.get("architecture"),
        "finished_at": utcnow(),
    }
    with db.session() as session:
        upsert(session, DifftestModel, [record], ["campaign_id", "nodes", "seed"])
        row = session.get(DifftestCampaign, campaign_id)
        if row is not None:
            row.updated_at = utcnow()


@dataclass
class RunReport:
    campaign: int
    planned: int
    skipped: int  # already stored: resumed
    ran: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    replaced_workers: int = 0
    seconds: float = 0.0


def run(
    db: Database,
    plan: Plan,
    out_dir: Path,
    jobs_: int = 2,
    timeout: float = 60.0,
    runner: str = DEFAULT_RUNNER,
    progress: Callable[[dict[str, Any], Counter[str]], None] = lambda result, counts: None,
    limit: int | None = None,
    started: Callable[[RunReport], None] = lambda report: None,
    executor: str = "pool",
    address: str | None = None,
    memory: int | None = None,
    python: str | None = None,
) -> RunReport:
    """Run (or resume) a campaign on the local worker pool, or on Ray (``executor="ray"``, at
    ``address`` or on a local instance). ``limit`` stops after that many models (a campaign run in
    parts: the next run resumes). ``started`` learns, before any model runs, how many are planned
    and how many a resumed campaign already has. ``memory`` caps what one worker may allocate
    (bytes; default: 80% of this machine's memory shared by the workers; none on a cluster).
    ``python`` runs the workers in another environment's interpreter (``plan.environment``'s, from
    :func:`environment_python`)."""
    import time

    if executor not in ("pool", "ray"):  # before the campaign is opened: a typo creates no campaign
        raise IssuemineError(f"--executor {executor!r}: choose pool or ray")
    if python is not None and executor == "ray":
        raise IssuemineError("--env runs on the local worker pool: a Ray cluster's workers run Ray's Python")
    campaign_id = open_campaign(db, plan, python)
    todo = jobs(db, campaign_id, out_dir / f"campaign-{campaign_id}")
    planned = len(plan.sizes) * plan.per_size
    report = RunReport(campaign_id, planned, planned - len(todo))
    if limit is not None:
        todo = todo[:limit]
    started(report)
    start = time.perf_counter()

    def done(task: dict[str, Any], result: dict[str, Any]) -> None:
        store(
            db,
            campaign_id,
            {**result, "seed": task["seed"], "nodes": task["nodes"], "architecture": task.get("architecture")},
        )
        report.ran += 1
        report.outcomes[result["outcome"]] += 1
        progress(result, report.outcomes)

    log = out_dir / f"campaign-{campaign_id}" / "workers.log"
    if todo and not plan.architectures:
        # NNSmith's operator cache, made once here, where the campaign's files are, before any worker
        # starts: every worker then loads the same, order-stable file (see prepare_operator_cache).
        # It travels with each job, so workers started earlier (a Ray cluster's) read it too.
        from issuemine.difftest.generate import prepare_operator_cache, prepare_operator_cache_in

        framework = adapter_class(plan.converter).framework
        if python is None:
            cache = prepare_operator_cache(framework, out_dir / "nnsmith-cache")
        else:  # the environment's NNSmith and framework decide its operator set
            folder = out_dir / f"nnsmith-cache-{plan.environment}"
            cache = prepare_operator_cache_in(python, framework, folder)
        if cache is not None:
            todo = [{**job, "nnsmith_cache": str(cache.resolve())} for job in todo]
    if memory is None and not (executor == "ray" and address):  # a cluster's machines are not this one
        memory = default_memory(jobs_)
    if executor == "ray":
        from issuemine.difftest.ray_executor import RayExecutor

        pool: WorkerPool | RayExecutor = RayExecutor(jobs_, timeout, log, runner, address, memory)
    else:
        pool = WorkerPool(jobs_, timeout, log, runner, memory, python)
    pool.run(todo, done)
    report.replaced_workers = pool.replaced
    report.seconds = time.perf_counter() - start
    return report


# -- Table 11 ------------------------------------------------------------------------------------


def models(db: Database, campaign_id: int) -> list[DifftestModel]:
    with db.session() as session:
        rows = list(
            session.scalars(
                select(DifftestModel)
                .where(DifftestModel.campaign_id == campaign_id)
                .order_by(DifftestModel.nodes, DifftestModel.seed)
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


def policy_name(policy: str) -> str:
    """A tolerance policy's name (aliases resolved), or the noise-aware oracle's."""
    return policy if policy == NOISE_AWARE else load_policies().get(policy).name


def rounding_survivors(db: Database, campaign_ids: list[int], policy: str = "abs-1e-7") -> list[dict[str, Any]]:
    """Per campaign: the models that mismatch under ``policy`` (1e-7 by default), how many of them
    had a float64 reference, and how many of those the noise-aware oracle still calls wrong."""
    rows = []
    name = load_policies().get(policy)
    for campaign_id in campaign_ids:
        info = campaign(db, campaign_id)
        compared = [m for m in models(db, campaign_id) if m.outcome in ("mismatch", "success")]
        mismatched = [m for m in compared if stored_verdict(m.policies or {}, name) is False]
        judged = [m for m in mismatched if (m.policies or {}).get(NOISE_AWARE) is not None]
        rows.append(
            {
                "campaign": campaign_id,
                "converter": info.converter,
                "exporter": info.exporter,
                "policy": name.name,
                "mismatches": len(mismatched),
                "with_reference": len(judged),
                "beyond_rounding": sum(1 for m in judged if m.policies[NOISE_AWARE] is False),
            }
        )
    return rows


def outcome_under(model: DifftestModel, policy: str | None) -> str:
    """The model's outcome, with a compared model's mismatch or success decided by ``policy``
    (every policy's verdict is stored, so switching needs no re-run)."""
    if policy is None or model.outcome not in ("mismatch", "success"):
        return model.outcome
    if policy == NOISE_AWARE:  # not a tolerance: a verdict against a float64 reference, when there was one
        within = (model.policies or {}).get(NOISE_AWARE)
        return model.outcome if within is None else ("success" if within else "mismatch")
    rule = load_policies().get(policy)
    within = stored_verdict(model.policies or {}, rule)
    if within is None and rule.rtol == 0 and model.max_abs_diff is not None:
        # A campaign stored before this policy existed: an absolute rule is decided by the stored
        # max |Δ| alone (a relative one needs the outputs, which are not kept: that model keeps its outcome).
        within = model.max_abs_diff <= rule.atol
    if within is None:
        return model.outcome
    return "success" if within else "mismatch"


def table_11(db: Database, campaign_ids: list[int] | None = None, policy: str | None = None) -> list[dict[str, Any]]:
    """Outcome counts per campaign (converter and exporter) and node count, and a total per campaign;
    with ``policy``, mismatches are decided by that tolerance policy instead of the campaign's."""
    if policy is not None:
        policy = policy_name(policy)
    with db.session() as session:
        ids = campaign_ids or list(session.scalars(select(DifftestCampaign.id).order_by(DifftestCampaign.id)))
    rows = []
    for campaign_id in ids:
        info = campaign(db, campaign_id)
        found = models(db, campaign_id)
        by_size: dict[int, Counter[str]] = {}
        for model in found:
            by_size.setdefault(model.nodes, Counter())[outcome_under(model, policy)] += 1
        total: Counter[str] = Counter(outcome_under(m, policy) for m in found)
        zoo = list(info.architectures or [])  # a zoo campaign: a row per architecture, by name
        for nodes, counts in [*sorted(by_size.items()), ("all", total)]:
            if zoo and isinstance(nodes, int):
                nodes = zoo[nodes - 1] if 0 < nodes <= len(zoo) else nodes
            row: dict[str, Any] = {
                "campaign": campaign_id,
                "converter": info.converter,
                "exporter": info.exporter,
                "policy": policy or info.policy,
                "nodes": nodes,
                "models": sum(counts.values()),
            }
            row.update(
                {outcome: counts.get(outcome, 0) for outcome in OUTCOMES if outcome in TABLE_11 or counts.get(outcome)}
            )
            rows.append(row)
    return rows
