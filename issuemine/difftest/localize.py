"""Where a mismatching model goes wrong, and the smallest model that still shows it.

**Localize.** The model is regenerated from its seed (the same graph, weights and inputs) and
converted once more with every intermediate value of the framework model as a named output:
the exporter itself then names each framework tensor in the ONNX graph (``output_names`` for
torch.onnx, the function's outputs in order for tf2onnx), so the match between the two sides
comes from the exporter, not from guessing by value. The framework's intermediates and
onnxruntime's are compared in the graph's order under the tolerance policy; the first operator
whose output diverges, while everything it reads still agrees, is where the conversion is wrong.
Exposing intermediates can change what an exporter emits; whether the re-export still shows the
model's mismatch is recorded (``reproduced``).

**Reduce.** Delta debugging (Zeller's ddmin) over the operators upstream of the diverging one: a
candidate keeps some of them and feeds the values the rest would have produced as graph inputs,
taken from the framework, so the candidate is cut from the converted model with
``onnx.utils.Extractor`` and judged by the same oracle (its output still differs from the
framework's beyond the policy). The result is written as ``reduced.onnx`` with ``inputs.npz`` and
``expected.npz``: the attachment a maintainer wants in a bug report. Polygraphy's ``debug reduce``
is the model for this, but it drives an external check command per step and bisects ONNX nodes,
whose intermediate tensors have no framework reference; cutting at the framework's own tensors
gives every candidate an exact reference, which the oracle needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.difftest.execute import float64_outputs, max_delta, quietly, rounding_only, within
from issuemine.difftest.generate import Generated, generate, random_inputs, run_instructions
from issuemine.quality.targets import onnx_session


@dataclass
class Step:
    op: str  # the framework operator (NNSmith's name)
    inputs: list[str]  # framework tensor names it reads
    outputs: list[str]  # and writes


def steps(generated: Generated) -> list[Step]:
    from issuemine.difftest.generate import op_name

    found = []
    for inst in generated.ir.insts:
        op = op_name(inst)
        if op in ("Input", "Placeholder"):
            continue
        found.append(Step(op, list(inst.iexpr.args), list(inst.retvals())))
    return found


def framework_values(generated: Generated, names: list[str], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The framework's value of every tensor in ``names`` for one input set, eagerly."""
    if generated.framework == "torch":
        import torch

        if generated.architecture is not None:  # a zoo architecture: its leaf modules, tapped
            from issuemine.difftest.execute import torch_outputs
            from issuemine.difftest.zoo import tapped

            return dict(zip(names, torch_outputs(tapped(generated, names), generated, inputs), strict=True))
        with torch.no_grad():
            args = [torch.from_numpy(np.array(inputs[n], order="C", copy=True)) for n in generated.inputs]
            values = run_instructions(generated, names, args)
            return {n: v.detach().numpy() for n, v in zip(names, values, strict=True)}
    import tensorflow as tf

    values = run_instructions(generated, names, [tf.convert_to_tensor(inputs[n]) for n in generated.inputs])
    return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}


def ddmin(items: list[Any], fails: Callable[[list[Any]], bool]) -> list[Any]:
    """Zeller's ddmin: a 1-minimal sublist of ``items`` for which ``fails`` holds (it must hold for
    the whole list)."""
    n = 2
    while len(items) >= 2:
        size = len(items) // n
        chunks = [items[i : i + size] for i in range(0, len(items), size)] if size else [[x] for x in items]
        for chunk in chunks:
            if fails(chunk):
                items, n = chunk, 2
                break
        else:
            for chunk in chunks:
                rest = [x for x in items if x not in chunk]
                if rest and fails(rest):
                    items, n = rest, max(n - 1, 2)
                    break
            else:
                if n >= len(items):
                    break
                n = min(len(items), n * 2)
    return items


@dataclass
class Localization:
    op: str
    var: str
    onnx_nodes: list[str]  # "OpType name" of the ONNX node(s) producing the diverging tensor
    max_abs_diff: float | None
    input_set: int
    reproduced: bool
    reduced_ops: list[str]
    reduced_nodes: int
    reduced: str  # folder with reduced.onnx, inputs.npz, expected.npz
    attributes: list[str] = field(default_factory=list)  # the ONNX node's scalar attributes, "name=value"
    input_types: list[str] = field(default_factory=list)  # the operator's inputs, "dtype[rank]"

    def record(self) -> dict[str, Any]:
        return {
            "op_type": self.op,
            "var": self.var,
            "node": "; ".join(self.onnx_nodes),
            "max_abs_diff": self.max_abs_diff,
            "input_set": self.input_set,
            "reproduced": self.reproduced,
            "reduced_ops": self.reduced_ops,
            "reduced_nodes": self.reduced_nodes,
            "reduced": self.reduced,
            "attributes": self.attributes,
            "input_types": self.input_types,
        }


@dataclass
class _Model:
    """A regenerated model converted with every intermediate tensor as a named output."""

    generated: Generated
    inputs: list[dict[str, np.ndarray]]
    plan: list[Step]
    names: list[str]  # framework tensors, in graph order
    onnx: Any  # the all-intermediates ModelProto
    tensor: dict[str, str]  # framework tensor -> ONNX tensor, as the exporter named it
    adapter: Any  # the campaign's converter adapter: how the reference is taken and a cut is run

    def feed(self, name: str) -> str:
        return name if name in self.generated.inputs else self.tensor[name]


class Oracle:
    """When a converted tensor is wrong: beyond the tolerance ``policy``, or, with ``reference``
    (float64 values of the framework's tensors: the noise-aware oracle), further from that
    reference than the framework's own float32 value is, by the oracle's margin. A tensor without a
    float64 reference is judged by the policy. Localizing under the noise-aware oracle finds the
    first operator that is wrong beyond rounding, where under 1e-7 the first operator whose
    rounding passed 1e-7 would be named."""

    def __init__(self, policy: dict[str, Any], reference: dict[str, np.ndarray] | None = None) -> None:
        self.policy, self.reference = policy, reference or {}

    def wrong(self, name: str, want: np.ndarray, got: np.ndarray) -> bool:
        if name in self.reference:
            verdict = rounding_only(want, got, self.reference[name])
            if verdict is not None:
                return not verdict
        return not within(want, got, self.policy)


def localize(job: dict[str, Any], out_dir: Path, policy: dict[str, Any], noise: bool = False) -> Localization | None:
    """The first diverging operator of the model ``job`` describes (as the campaign ran it), and a
    reduced model; None when no intermediate diverges under ``policy`` (with ``noise``: under the
    noise-aware oracle, the policy where a tensor has no float64 reference)."""
    import onnx

    model = _regenerate(job, out_dir / "all-intermediates.onnx")
    oracle = Oracle(policy)
    chosen, want, got = _first_mismatching_set(model, oracle)
    if noise:
        oracle = Oracle(policy, _reference(model, chosen))
        chosen, want, got = _first_mismatching_set(model, oracle, chosen)
    first = next((s for s in model.plan if any(oracle.wrong(n, want[n], got[n]) for n in s.outputs)), None)
    if first is None:
        return None
    var = next(n for n in first.outputs if oracle.wrong(n, want[n], got[n]))
    node = next((n for n in model.onnx.graph.node if model.tensor[var] in n.output), None)
    values = {**model.inputs[chosen], **want}
    if model.generated.architecture is not None:
        # A real architecture's leaf module is not reduced: ddmin cuts at framework tensors each
        # operator reads, and a module's inputs are not all other modules' outputs (a residual sum is
        # computed between them); the all-intermediates model stays in out_dir with the input set.
        reduced_ops: list[str] = []
        reduced_nodes = 0
        arrays: dict[str, Any] = dict(model.inputs[chosen])
        input_types = [f"{want[var].dtype}[{want[var].ndim}]"]
    else:
        kept, reduced, boundary = _reduce(model, first, var, values, oracle)
        onnx.save(reduced, str(out_dir / "reduced.onnx"))
        reduced_ops, reduced_nodes = [s.op for s in [*kept, first]], len(reduced.graph.node)
        arrays = {model.feed(n): values[n] for n in boundary}
        input_types = [f"{values[n].dtype}[{values[n].ndim}]" for n in first.inputs if n in values]
    expected: dict[str, Any] = {model.tensor[var]: want[var]}
    np.savez(out_dir / "inputs.npz", **arrays)
    np.savez(out_dir / "expected.npz", **expected)
    if reduced_ops:
        (out_dir / "reference.npz").unlink(missing_ok=True)  # an earlier localization's, under the other oracle
        if var in oracle.reference:  # still_fails judges the reduced model by the same oracle
            reference: dict[str, Any] = {model.tensor[var]: oracle.reference[var]}
            np.savez(out_dir / "reference.npz", **reference)
    return Localization(
        op=first.op,
        var=var,
        onnx_nodes=[f"{node.op_type} {node.name}".strip()] if node is not None else [],
        max_abs_diff=max_delta(want[var], got[var]),
        input_set=chosen,
        reproduced=any(oracle.wrong(n, want[n], got[n]) for n in model.generated.outputs),
        reduced_ops=reduced_ops,
        reduced_nodes=reduced_nodes,
        reduced=str(out_dir),
        attributes=_attributes(node),
        input_types=input_types,
    )


def _attributes(node: Any) -> list[str]:
    """A node's scalar attributes (``axis=1``, ``mode=b'linear'``): part of what makes a bug one bug."""
    if node is None:
        return []
    import onnx

    kinds = (onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING, onnx.AttributeProto.INTS)
    return sorted(f"{a.name}={onnx.helper.get_attribute_value(a)!r}"[:80] for a in node.attribute if a.type in kinds)


def _regenerate(job: dict[str, Any], path: Path) -> _Model:
    import onnx

    from issuemine.difftest.execute import adapter_of

    if job.get("architecture"):  # a real architecture: its leaf modules, in the order they run
        from issuemine.difftest.zoo import build, tap_names

        generated = build(job["architecture"], job["seed"])
        inputs = random_inputs(generated, int(job.get("inputs", 10)), job["seed"])
        taps = [Step(op, [], [name]) for name, op in tap_names(generated, inputs[0])]
        plan = [*taps, *(Step("output", [], [name]) for name in generated.outputs)]
    else:
        generated = generate(adapter_of(job).framework, job["seed"], job["nodes"], job.get("dtypes"))
        inputs = random_inputs(generated, int(job.get("inputs", 100)), job["seed"])
        plan = steps(generated)
    names = list(dict.fromkeys(n for s in plan for n in s.outputs))
    path.parent.mkdir(parents=True, exist_ok=True)
    adapter = adapter_of({**job, "out_dir": str(path.parent)})
    quietly(adapter.intermediates, generated, inputs[0], path, names)
    full = onnx.load(str(path))
    tensor = {name: out.name for name, out in zip(names, full.graph.output, strict=True)}
    return _Model(generated, inputs, plan, names, full, tensor, adapter)


def _first_mismatching_set(
    model: _Model, oracle: Oracle, only: int | None = None
) -> tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The first input set (or input set ``only``) whose model outputs differ (the campaign's
    verdict came from all of them; the first is used when none does), with both sides' values of
    every tensor."""
    feeds = [i.name for i in model.onnx.graph.input]
    chosen = [(k, one) for k, one in enumerate(model.inputs) if only is None or k == only]
    sets = [{n: one[n] for n in feeds} for _, one in chosen]
    converted = model.adapter.run_onnx(model.onnx, sets)  # converted once, run on every set
    reference = None
    if model.adapter.reference_is_onnx:  # the reference is ONNX Runtime's on the source itself
        reference = onnx_session(model.onnx.SerializeToString())
    found = None
    for (k, one), outs, feed in zip(chosen, converted, sets, strict=True):
        got = dict(zip(model.names, outs, strict=True))
        if reference is not None:
            want = dict(zip(model.names, reference.run(None, feed), strict=True))
        else:
            want = framework_values(model.generated, model.names, one)
        found = found or (k, want, got)
        if any(oracle.wrong(n, want[n], got[n]) for n in model.generated.outputs):
            return k, want, got
    assert found is not None
    return found


def _reference(model: _Model, chosen: int) -> dict[str, np.ndarray] | None:
    """Float64 values of every framework tensor on input set ``chosen`` (None: the model has no
    float64 run: TensorFlow, another float type, an operator without a float64 kernel)."""
    found = float64_outputs(model.generated, [model.inputs[chosen]], model.names)
    return dict(zip(model.names, found[0], strict=True)) if found else None


def _reduce(
    model: _Model, first: Step, var: str, values: dict[str, np.ndarray], oracle: Oracle
) -> tuple[list[Step], Any, list[str]]:
    """ddmin over the operators upstream of ``first``: the fewest that, with the framework's values
    fed where the others were, still make ``var`` differ. Returns them, the cut model, its inputs."""
    from onnx.utils import Extractor

    def cut(kept: list[Step]) -> tuple[Any, list[str]]:
        made = {n for s in kept for n in s.outputs}
        boundary = list(dict.fromkeys(n for s in kept for n in s.inputs if n not in made))
        sub = Extractor(model.onnx).extract_model([model.feed(n) for n in boundary], [model.tensor[var]])
        return sub, boundary

    def fails(subset: list[Step]) -> bool:
        try:
            sub, boundary = cut([*subset, first])
            outs = model.adapter.run_onnx(sub, [{model.feed(n): values[n] for n in boundary}])[0]
        except Exception:
            return False  # not a valid cut (an input the extractor cannot reach): not failing
        return oracle.wrong(var, values[var], outs[0])

    upstream = _ancestors(model.plan, first)
    kept = ddmin(upstream, fails) if upstream and not fails([]) else []
    return (kept, *cut([*kept, first]))


def _ancestors(plan: list[Step], target: Step) -> list[Step]:
    """The steps ``target`` depends on, in graph order."""
    producer = {n: s for s in plan for n in s.outputs}
    needed: set[int] = set()
    todo = [n for n in target.inputs if n in producer]
    while todo:
        step = producer[todo.pop()]
        if id(step) not in needed:
            needed.add(id(step))
            todo += [n for n in step.inputs if n in producer]
    return [s for s in plan if id(s) in needed]


def still_fails(folder: Path, policy: dict[str, Any]) -> tuple[bool, float | None]:
    """Run a reduced model on its saved inputs: does it still differ from the saved expectation
    (by the oracle it was reduced under: the noise-aware one where a float64 reference was saved)?"""
    import onnx

    model = onnx.load(str(folder / "reduced.onnx"))
    feeds = dict(np.load(folder / "inputs.npz"))
    expected = dict(np.load(folder / "expected.npz"))
    saved = folder / "reference.npz"
    reference = dict(np.load(saved)) if saved.exists() else None
    got = dict(
        zip([o.name for o in model.graph.output], onnx_session(model.SerializeToString()).run(None, feeds), strict=True)
    )
    name, want = next(iter(expected.items()))
    return Oracle(policy, reference).wrong(name, want, got[name]), max_delta(want, got[name])


def localize_stored(db: Any, model_id: int, out_root: Path, policy: str | None = None) -> Localization | None:
    """Localize a stored model of a campaign and keep the finding with it (``difftest_models.localized``).
    ``policy`` ``noise-aware`` localizes under the noise-aware oracle (the campaign's policy where a
    tensor has no float64 reference)."""
    from issuemine.db.models import DifftestModel
    from issuemine.difftest.campaign import campaign, outcome_under
    from issuemine.difftest.execute import NOISE_AWARE
    from issuemine.domain.tolerances import load_policies
    from issuemine.errors import IssuemineError

    noise = policy == NOISE_AWARE
    with db.session() as session:
        row = session.get(DifftestModel, model_id)
        if row is None:
            raise IssuemineError(f"no difftest model {model_id}")
        session.expunge(row)
    info = campaign(db, row.campaign_id)
    chosen = load_policies().get(info.policy if noise else policy or info.policy)
    name = NOISE_AWARE if noise else chosen.name
    verdict = outcome_under(row, name)
    if verdict != "mismatch":
        raise IssuemineError(f"model {model_id} is a {verdict} under policy {name}: only a mismatch can be localized")
    from issuemine.difftest.adapters import adapter_spec, load_adapter

    spec = adapter_spec(info.converter)
    if not load_adapter(spec).localizes:
        raise IssuemineError(
            f"{info.converter}'s adapter cannot convert with intermediate tensors as outputs: localization "
            "covers converters to ONNX (torch.onnx, tf2onnx)"
        )
    job = {
        "converter": info.converter,
        "adapter": spec,
        "exporter": info.exporter,
        "opset": info.opset,
        "seed": row.seed,
        "nodes": row.nodes,
        "inputs": info.inputs,
        "dtypes": list(info.dtypes),
        **({"architecture": row.architecture} if row.architecture else {}),
    }
    found = localize(job, out_root / f"model-{model_id}", chosen.as_dict(), noise)
    with db.session() as session:
        stored = session.get(DifftestModel, model_id)
        assert stored is not None
        stored.localized = {**(found.record() if found else {"op_type": None}), "policy": name}
    return found
