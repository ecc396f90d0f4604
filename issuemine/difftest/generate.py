"""Random models from NNSmith, the generator the ISSTA 2024 study used (``symbolic-cinit``).

A thin, tested adapter around ``nnsmith`` 0.1.0 from PyPI:

- the operator set is probed once per framework (NNSmith caches the probe on disk);
- a model is fully determined by (framework, seed, node count): the graph comes from
  ``model_gen(seed=...)``, the weights from the framework's RNG seeded with the same seed, and the
  test inputs from a NumPy generator seeded with it too. NNSmith's ``refine_weights`` is skipped: it
  searches for inputs under a wall-clock budget, so its result depends on the machine's speed, and
  reproducibility matters more here than avoiding NaN (NaN and Inf compare equal, as in NNSmith);
- z3's global context is renewed for every model, so that a model depends on its seed alone and
  not on what the worker generated before (see ``_fresh_solver``);
- nothing depends on the machine's speed: z3's checks are bounded by its resource count
  (``rlimit``) and NNSmith's generation budget by a count of steps (:class:`AttemptClock`), so the
  same seed gives the same model on a busy machine or a slower one;
- NNSmith prints every failed operator probe; that chatter is silenced.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

METHOD = "symbolic-cinit"


@dataclass
class Generated:
    framework: str
    seed: int
    nodes: int  # requested
    model: Any  # nnsmith Model (TorchModelCPU or TFModelCPU)
    operators: list[str]  # in graph order
    inputs: dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, numpy dtype)
    outputs: list[str]
    seconds: float
    ir: Any = None  # NNSmith's graph (its instructions name every tensor)
    exportable: Any = None  # built once by exportable()
    # A zoo architecture (difftest/zoo.py) rather than NNSmith's: its name, a TensorFlow model's
    # function of the inputs, and the range [low, high) of each integer input (token ids).
    architecture: str | None = None
    forward: Any = None
    input_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)


@contextlib.contextmanager
def quiet() -> Any:
    """NNSmith logs each failed operator probe and prints progress; none of it is ours to show."""
    for name in ("nnsmith", "mgen", "exec", "fuzz", "core"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@lru_cache(maxsize=2)
def model_type(framework: str) -> Any:
    from nnsmith.materialize import Model

    kind = Model.init(framework)
    kind.add_seed_setter()
    return kind


_APPLIED: dict[str, tuple[tuple[str, ...], list[Any]]] = {}
CACHE_ENV = "ISSUEMINE_NNSMITH_CACHE"


def prepare_operator_cache(framework: str, folder: Path) -> Path | None:
    """NNSmith's operator cache for ``framework`` in ``folder`` (a campaign's own), made once,
    before any worker starts, with its operators in a stable order; workers then all load the same
    file. None when it cannot be made: workers then use NNSmith's own cache, as before.

    NNSmith infers its operator set on first use and caches it in the user's cache folder: workers
    that each had to build it generated other models for their first jobs than every later run
    (the set inferred in memory is not the one read back from the file), and two creating the
    folder at once failed with FileExistsError. The set is copied from NNSmith's own cache where
    this machine has one; else it is inferred in a fresh interpreter (a process that generated
    models has narrowed NNSmith's operator classes). NNSmith's inference probes operators on random
    shapes and can fail its own assertions: it is tried three times."""
    import shutil

    from nnsmith import narrow_spec

    folder.mkdir(parents=True, exist_ok=True)
    name = f"{narrow_spec.get_cache_name(model_type(framework), None)}.yaml"
    path = folder / name
    if not path.exists():
        users = Path(_user_cache_dir()) / name
        if users.exists():
            shutil.copyfile(users, path.with_suffix(".partial"))
            _sort_cache(path.with_suffix(".partial"))
            path.with_suffix(".partial").replace(path)
        else:
            _infer_cache(framework, folder, path)
    if not path.exists():
        logging.getLogger(__name__).warning("no operator cache for %s in %s: NNSmith's own is used", framework, folder)
        return None
    narrow_spec.NNSMITH_CACHE_DIR = str(folder)
    os.environ[CACHE_ENV] = str(folder.resolve())  # this process and the workers it starts read it
    _APPLIED.pop(framework, None)  # this process, too, reads the file from now on
    return folder


def prepare_operator_cache_in(python: str, framework: str, folder: Path) -> Path | None:
    """:func:`prepare_operator_cache` run by another environment's interpreter (``difftest run
    --env``): its NNSmith and framework decide which operators exist and under which file name."""
    import subprocess

    from issuemine.difftest.pool import env_worker_environ

    code = (
        "import sys\nfrom pathlib import Path\nfrom issuemine.difftest.generate import prepare_operator_cache\n"
        "print(prepare_operator_cache(sys.argv[1], Path(sys.argv[2])) or '')"
    )
    try:
        done = subprocess.run(
            [python, "-c", code, framework, str(folder)],
            capture_output=True,
            text=True,
            timeout=3600,
            env=env_worker_environ(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1]:
        logging.getLogger(__name__).warning("no operator cache from %s: %s", python, done.stderr[-500:])
        return None
    return Path(lines[-1])


def _infer_cache(framework: str, folder: Path, path: Path) -> None:
    """Infer the operator set into ``folder`` in a fresh interpreter, up to three times."""
    import subprocess
    import sys

    code = "import sys\nfrom issuemine.difftest.generate import _build_cache\n_build_cache(*sys.argv[1:3])"
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", code, framework, str(folder)], capture_output=True, text=True, timeout=1800
        )
        if done.returncode == 0 and path.exists():
            return


@lru_cache(maxsize=4)
def _ensure_user_cache(framework: str) -> None:
    """Outside a campaign, NNSmith's own cache: made the way a campaign's is (inferred in a fresh
    interpreter, sorted) when this machine has none yet, so that the first generation on a fresh
    machine reads the same operator set from the file as every later one (NNSmith's own first
    inference keeps another order in memory than the one it writes)."""
    from nnsmith import narrow_spec

    folder = Path(_user_cache_dir())
    path = folder / f"{narrow_spec.get_cache_name(model_type(framework), None)}.yaml"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _infer_cache(framework, folder, path)


def _user_cache_dir() -> str:
    import nnsmith
    from appdirs import user_cache_dir

    return str(user_cache_dir(f"nnsmith-{nnsmith.__version__}"))


def _sort_cache(path: Path) -> None:
    from nnsmith import narrow_spec

    topset = narrow_spec.load_topset(str(path))
    narrow_spec.dump_topset(dict(sorted(topset.items())), str(path))


def _build_cache(framework: str, folder: str) -> None:
    """In a fresh interpreter: infer the operator set into ``folder``, then rewrite it sorted."""
    from nnsmith import narrow_spec

    narrow_spec.NNSMITH_CACHE_DIR = folder
    path = Path(folder) / f"{narrow_spec.get_cache_name(model_type(framework), None)}.yaml"
    partial = path.with_suffix(".inferred")
    with quiet():
        narrow_spec.auto_opset(model_type(framework))
    path.replace(partial)
    _sort_cache(partial)
    partial.replace(path)


def operator_set(framework: str, dtypes: list[str] | None = None) -> list[Any]:
    """The operators NNSmith can generate for ``framework`` on this machine (probed once; NNSmith
    caches the probe on disk), narrowed to ``dtypes``.

    NNSmith's ``dtype_choices`` only types new placeholders: an operator whose probed type
    combinations include float16 still asks for a float16 input. Restricting it (float32 tensors
    only, the default protocol) means keeping, per operator, the input and output type combinations made
    of those types alone, and dropping operators left with none. NNSmith keeps these combinations
    on the operator classes (``auto_opset`` sets them), so they are re-applied whenever a process
    asks for other types than last time."""
    from nnsmith import narrow_spec
    from nnsmith.narrow_spec import auto_opset

    if os.environ.get(CACHE_ENV):  # the campaign's own cache, built before its workers started
        narrow_spec.NNSMITH_CACHE_DIR = os.environ[CACHE_ENV]
    elif _user_cache_dir() == narrow_spec.NNSMITH_CACHE_DIR:
        _ensure_user_cache(framework)
    types = tuple(sorted(dtypes or ()))
    key = (*types, f"cache={narrow_spec.NNSMITH_CACHE_DIR}")  # another cache, another operator set
    if framework in _APPLIED and _APPLIED[framework][0] == key:
        return _APPLIED[framework][1]
    with quiet():
        ops = list(auto_opset(model_type(framework)))
    if types:
        kept = []
        for op in ops:
            ins = [c for c in op.in_dtypes if all(str(d) in types for d in c)]
            outs = [c for c in op.out_dtypes if all(str(d) in types for d in c)]
            if ins and outs:
                op.in_dtypes, op.out_dtypes = ins, outs
                kept.append(op)
        ops = kept
    _APPLIED[framework] = (key, ops)
    return ops


def op_name(inst: Any) -> str:
    return type(inst.iexpr.op).__name__


def generate(
    framework: str, seed: int, nodes: int, dtypes: list[str] | None = None, timeout_ms: int = 10_000
) -> Generated:
    """One model of about ``nodes`` operators, fully determined by ``seed``; its tensors are of
    ``dtypes`` (None or empty: every type NNSmith generates, as the study's artifact did)."""
    from nnsmith import graph_gen
    from nnsmith.graph_gen import model_gen

    start = time.perf_counter()
    kind = model_type(framework)
    _fresh_solver()
    # NNSmith's loop stops when its budget of milliseconds runs out: read off a clock that counts
    # its own readings instead, the budget is a number of steps, the same on a busy machine.
    graph_gen.time = AttemptClock()  # type: ignore[attr-defined]
    with quiet():
        gen = model_gen(
            opset=operator_set(framework, dtypes),
            method=METHOD,
            seed=seed,
            max_nodes=nodes,
            timeout_ms=timeout_ms,
            dtype_choices=list(dtypes) if dtypes else None,
        )
        ir = gen.make_concrete()
        _seed_framework(framework, seed)
        model = kind.from_gir(ir)
    operators = [op_name(inst) for inst in ir.insts if op_name(inst) not in ("Input", "Constant", "Placeholder")]
    inputs = {
        name: (tuple(int(d) for d in tensor.shape), np.dtype(tensor.dtype.numpy()).name)
        for name, tensor in model.input_like.items()
    }
    return Generated(
        framework, seed, nodes, model, operators, inputs, list(model.output_like), time.perf_counter() - start, ir
    )


def exportable(generated: Generated) -> Any:
    """The torch model as a plain module that only computes.

    NNSmith's ``SymbolNet.forward`` also checks every tensor for NaN and Inf with Python ``if``s on
    tensor values, and can log per-statement statistics; torch.export (the dynamo exporter) cannot
    trace a branch on data and fails every model with ``GuardOnDataDependentSymNode``. This module
    runs the same instructions with the same weights (the SymbolNet's module list is shared) and
    nothing else, so the framework reference and both exporters see one and the same computation.
    """
    if generated.exportable is None:
        generated.exportable = computing(generated, generated.outputs)
    return generated.exportable


def computing(generated: Generated, names: list[str]) -> Any:
    """A torch module with the model's weights that returns the tensors ``names`` (the model's
    outputs, or any of its intermediate tensors) as a tuple."""
    import torch

    if generated.architecture is not None:  # a zoo architecture: its leaf modules' outputs
        from issuemine.difftest.zoo import tapped

        return tapped(generated, names)

    class Exportable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlist = generated.model.torch_model.mlist  # the weights

        def forward(self, *args: Any) -> Any:
            return tuple(run_instructions(generated, names, list(args)))

    return Exportable().eval()


def run_instructions(generated: Generated, names: list[str], args: list[Any], widen: bool = False) -> list[Any]:
    """The tensors ``names`` of one forward pass over NNSmith's instructions, ``args`` in the
    model's input order: the computation alone (torch eagerly or traced; TensorFlow inside a
    ``tf.function`` or eagerly). ``widen`` (torch): every float32 result is carried on in float64, a
    cast to float32 included (the float64 reference of the noise-aware oracle)."""
    # No zip(strict=True) here: TensorFlow before 2.13 runs this under AutoGraph, whose zip has no
    # ``strict`` (a stack of the study's time, difftest run --env).
    if len(args) != len(generated.inputs):
        raise ValueError(f"{len(args)} inputs for a model of {len(generated.inputs)}")
    values = dict(zip(generated.inputs, args))  # noqa: B905
    if widen:
        import torch

        def wide(value: Any) -> Any:
            return value.double() if isinstance(value, torch.Tensor) and value.dtype == torch.float32 else value
    else:

        def wide(value: Any) -> Any:
            return value

    if generated.framework == "torch":
        steps = [(fn, inputs, outputs) for fn, inputs, outputs, _ in generated.model.torch_model.instructions]
    else:
        steps = [(i.fwd_fn, i.inp_keys, i.out_keys) for i in generated.model.net.instructions]
    for fn, inputs, outputs in steps:
        result = fn(*(values[name] for name in inputs))
        results = result if isinstance(result, list) else [result]
        if len(results) != len(outputs):
            raise ValueError(f"{type(fn).__name__} gave {len(results)} outputs for {len(outputs)}")
        values.update(zip(outputs, (wide(r) for r in results)))  # noqa: B905
    return [values[name] for name in names]


# z3's deterministic work budget per check (its resource count, not milliseconds): a shape query
# that would run for minutes gives up after the same amount of work on any machine.
Z3_RLIMIT = 20_000_000


class AttemptClock:
    """A stand-in for the ``time`` module in NNSmith's generator: each reading is one millisecond
    later than the one before, so ``timeout_ms`` becomes a count of loop steps and solver calls
    (NNSmith reads the clock once per step and once per check)."""

    def __init__(self) -> None:
        self.readings = 0

    def time(self) -> float:
        self.readings += 1
        return self.readings / 1000


def _fresh_solver() -> None:
    """A new z3 context for every model. NNSmith solves shapes in z3's one global context, whose
    state carries over from model to model: the same seed then gives other shapes depending on
    what the process generated before (a worker's job order). A fresh context makes a model depend
    on its seed alone.

    Its checks are bounded by z3's resource limit, set before the context exists (a context created
    afresh does not see what is set later); NNSmith's own per-check time-out is in milliseconds,
    which a busy machine reaches sooner, so it is off."""
    import z3

    z3.reset_params()
    z3.set_param("rlimit", Z3_RLIMIT)
    z3.z3._main_ctx = None  # z3.main_ctx() creates a new one on next use


def _seed_framework(framework: str, seed: int) -> None:
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
    else:
        import tensorflow as tf

        tf.random.set_seed(seed)


def random_inputs(generated: Generated, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` seeded input sets: floats from a standard normal, integers in [-8, 8) (or the input's
    range, such as token ids below a vocabulary's size), booleans fair."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(count):
        one = {}
        for name, (shape, dtype) in generated.inputs.items():
            kind = np.dtype(dtype)
            if kind == np.bool_:
                value: Any = rng.random(shape) < 0.5
            elif np.issubdtype(kind, np.integer):
                low, high = generated.input_ranges.get(name, (-8, 8))
                value = rng.integers(low, high, size=shape)
            elif np.issubdtype(kind, np.complexfloating):
                value = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
            else:
                value = rng.standard_normal(shape)
            # Always an array of the declared shape: a rank-0 draw comes back as a NumPy scalar.
            one[name] = np.asarray(value, dtype=kind).reshape(shape)
        found.append(one)
    return found
