"""Real architectures, offline: the study's real-model test (its artifact converted Hugging Face
models) without the download. Every architecture is built from its library's own code with
random, seeded weights: `transformers` models from their configuration classes (made small: two
layers, narrow widths, short inputs, so that a CPU converts dozens in minutes), Keras applications
with ``weights=None``, and torchvision's model builders where torchvision loads beside this torch.
Nothing is fetched.

A zoo model is a :class:`~issuemine.difftest.generate.Generated` like NNSmith's: a PyTorch module
that takes the inputs positionally and returns a tuple of tensors (``exportable``), or a
TensorFlow function of the inputs (``forward``), so every adapter converts it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from issuemine.difftest.generate import Generated
from issuemine.errors import IssuemineError
from issuemine.resources import data_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: a difftest worker in a stack of the study's time
    import tomli as tomllib  # type: ignore[no-redef]

ZOO_INPUTS = 10  # seeded input sets per architecture (difftest run --models zoo; --inputs overrides)
SEQUENCE = 16  # tokens per text input
IMAGE = 32  # pixels per side of a transformers vision input (Keras applications: their minimum)

# The small shape every transformers text configuration gets (the names its config classes take).
SMALL_TEXT = {
    "vocab_size": 1000,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
    "bos_token_id": 0,  # the defaults (GPT-2's 50256) lie outside the small vocabulary
    "eos_token_id": 2,
}


@dataclass(frozen=True)
class Architecture:
    """One entry of ``data/zoo.toml``."""

    name: str
    family: str  # what it stands for: encoder, decoder, encoder-decoder, vision, convolutional
    library: str  # transformers, keras, torchvision
    kind: str  # text, seq2seq, vision, keras, torchvision: how it is built and fed
    model: str  # a transformers model class, a Keras application, a torchvision builder
    config: str = ""  # a transformers configuration class
    size: int = IMAGE
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def framework(self) -> str:
        """The NNSmith framework name the adapters use: torch or tensorflow."""
        return "tensorflow" if self.library == "keras" else "torch"

    def build(self) -> tuple[Any, dict[str, tuple[tuple[int, ...], str]], dict[str, tuple[int, int]]]:
        """The model, its inputs (name -> shape, dtype), and the range of each integer input."""
        return _BUILDERS[self.kind](self)


def _text(arch: Architecture) -> Any:
    """A transformers text model: token ids and an attention mask in, its first output out."""
    import transformers

    settings = {**SMALL_TEXT, **arch.settings}
    model = getattr(transformers, arch.model)(getattr(transformers, arch.config)(**settings))
    inputs = {"input_ids": ((1, SEQUENCE), "int64"), "attention_mask": ((1, SEQUENCE), "int64")}
    # Every token attended (a mask of ones): padding is another test.
    ranges = {"input_ids": (0, int(settings["vocab_size"])), "attention_mask": (1, 2)}
    return _first_output(model, list(inputs)), inputs, ranges


def _seq2seq(arch: Architecture) -> Any:
    """An encoder-decoder: source ids and decoder ids in, the decoder's last hidden state out."""
    import transformers

    settings = {"bos_token_id": 0, "eos_token_id": 2, **arch.settings}
    model = getattr(transformers, arch.model)(getattr(transformers, arch.config)(**settings))
    vocab = int(settings.get("vocab_size", 1000))
    inputs = {"input_ids": ((1, SEQUENCE), "int64"), "decoder_input_ids": ((1, SEQUENCE // 2), "int64")}
    return _first_output(model, list(inputs)), inputs, {name: (0, vocab) for name in inputs}


def _vision(arch: Architecture) -> Any:
    """A transformers vision model: pixel values in, its first output out."""
    import transformers

    model = getattr(transformers, arch.model)(getattr(transformers, arch.config)(**arch.settings))
    inputs = {"pixel_values": ((1, 3, arch.size, arch.size), "float32")}
    return _first_output(model, list(inputs)), inputs, {}


def _first_output(model: Any, names: list[str]) -> Any:
    """The model as a module of positional inputs returning a 1-tuple (its first output: the last
    hidden state), in inference mode."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *args: Any) -> tuple[Any, ...]:
            found = self.inner(**dict(zip(names, args, strict=True)), return_dict=False)
            return (found[0],)

    return Positional().eval()


def _keras(arch: Architecture) -> Any:
    """A Keras application with random weights, without its classifier (a softmax over random
    logits hides differences in the features), average-pooled."""
    import tensorflow as tf

    build = getattr(tf.keras.applications, arch.model)
    shape = (arch.size, arch.size, 3)
    model = build(weights=None, input_shape=shape, include_top=False, pooling="avg", **arch.settings)
    return model, {"image": ((1, *shape), "float32")}, {}


def _torchvision(arch: Architecture) -> Any:
    import torchvision

    model = getattr(torchvision.models, arch.model)(weights=None, **arch.settings).eval()
    return model, {"image": ((1, 3, arch.size, arch.size), "float32")}, {}


_BUILDERS: dict[str, Callable[[Architecture], Any]] = {
    "text": _text,
    "seq2seq": _seq2seq,
    "vision": _vision,
    "keras": _keras,
    "torchvision": _torchvision,
}
FIELDS = {f for f in Architecture.__dataclass_fields__}


def load_catalog(path: Path | None = None) -> dict[str, Architecture]:
    """The zoo of ``data/zoo.toml`` (or ``path``), checked: known fields and kinds, unique names."""
    path = path or data_dir() / "zoo.toml"
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("architecture", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IssuemineError(f"zoo {path}: {exc}") from exc
    found: dict[str, Architecture] = {}
    for entry in entries:
        unknown = sorted(set(entry) - FIELDS)
        name = entry.get("name", "?")
        if unknown or entry.get("kind") not in _BUILDERS or name in found:
            why = f"unknown fields {unknown}" if unknown else "a duplicate name" if name in found else "no such kind"
            raise IssuemineError(f"zoo {path}: architecture {name!r}: {why} (kinds: {', '.join(_BUILDERS)})")
        found[name] = Architecture(**entry)
    return found


CATALOG: dict[str, Architecture] = load_catalog()
TINY = ("bert", "gpt2", "keras-mobilenet-v3-small")  # what the tests run


def library_missing(library: str) -> str | None:
    """Why a library's architectures cannot be built here (None: they can)."""
    import importlib

    module = {"keras": "tensorflow"}.get(library, library)
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or torchvision's RuntimeError beside another torch
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        return f"{module} does not load here ({type(exc).__name__}: {first})"
    return None


def available(framework: str) -> list[Architecture]:
    """The architectures of a framework whose library loads here, in catalog order."""
    return [a for a in CATALOG.values() if a.framework == framework and library_missing(a.library) is None]


def choose(framework: str, names: list[str] | None) -> list[str]:
    """The architectures a campaign runs: ``names`` (checked), or every one its framework has here."""
    if not names:
        found = [a.name for a in available(framework)]
        if not found:
            raise IssuemineError(
                f"--models zoo: no {framework} architecture can be built here (pip install transformers)"
            )
        return found
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise IssuemineError(
            f"--architectures: unknown {', '.join(unknown)} (see `issuemine difftest zoo`: {', '.join(CATALOG)})"
        )
    for name in names:
        arch = CATALOG[name]
        if arch.framework != framework:
            raise IssuemineError(
                f"--architectures {name}: a {arch.framework} model, and this converter reads {framework}"
            )
        missing = library_missing(arch.library)
        if missing:
            raise IssuemineError(f"--architectures {name}: {missing}")
    return list(names)


def build(name: str, seed: int) -> Generated:
    """The architecture with weights drawn from ``seed`` (the same seed, the same weights)."""
    arch = CATALOG.get(name)
    if arch is None:
        raise IssuemineError(f"no architecture {name!r} in the zoo")
    start = time.perf_counter()
    _seed(arch.framework, seed)
    model, inputs, ranges = arch.build()
    if arch.framework == "torch":
        operators = _torch_operators(model)
        generated = Generated("torch", seed, len(operators), model, operators, inputs, ["output"], 0.0)
        generated.exportable = model  # every zoo module returns one output (see _first_output)
    else:
        operators = [type(layer).__name__ for layer in model.layers if type(layer).__name__ != "InputLayer"]
        generated = Generated("tensorflow", seed, len(operators), model, operators, inputs, ["output"], 0.0)
        generated.forward = _keras_forward(model)
    generated.input_ranges = ranges
    generated.architecture = name
    generated.seconds = time.perf_counter() - start
    return generated


def _seed(framework: str, seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
    else:
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)


def _torch_operators(model: Any) -> list[str]:
    """The model's leaf modules' types, in definition order: what it is built of."""
    return [type(m).__name__ for m in model.modules() if not list(m.children())]


def _keras_forward(model: Any) -> Callable[..., list[Any]]:
    def forward(*xs: Any) -> list[Any]:
        out = model(xs[0] if len(xs) == 1 else list(xs), training=False)
        return list(out) if isinstance(out, list | tuple) else [out]

    return forward


# -- localization: the model's leaf modules as taps ------------------------------------------------


def tap_names(generated: Generated, example: dict[str, Any]) -> list[tuple[str, str]]:
    """The leaf modules a PyTorch architecture runs on ``example``, in the order they run, as
    (qualified name, class name): those whose output is a floating-point tensor, each once (a module
    called twice, ALBERT's shared layers say, is tapped at its first call)."""
    import torch

    order: list[tuple[str, str]] = []
    seen: set[str] = set()

    def record(name: str) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            if name not in seen and _tensor(output) is not None:
                seen.add(name)
                order.append((name, type(module).__name__))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in _leaves(generated.exportable)]
    try:
        with torch.no_grad():
            generated.exportable(*(torch.from_numpy(np.array(example[n])) for n in generated.inputs))
    finally:
        for handle in handles:
            handle.remove()
    return order


def tapped(generated: Generated, names: list[str], module: Any = None) -> Any:
    """A module returning the tensors ``names``: leaf modules' outputs (by qualified name) and the
    model's own outputs, in that order; on ``module`` (the architecture's, widened say) or the
    architecture's own."""
    import torch

    inner = module if module is not None else generated.exportable
    outputs = set(generated.outputs)

    class Tapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> tuple[Any, ...]:
            captured: dict[str, Any] = {}

            def keep(name: str) -> Callable[..., None]:
                def hook(module: Any, args: Any, output: Any) -> None:
                    captured.setdefault(name, _tensor(output))

                return hook

            wanted = set(names) - outputs
            handles = [m.register_forward_hook(keep(n)) for n, m in _leaves(self.inner) if n in wanted]
            try:
                final = self.inner(*args)
            finally:
                for handle in handles:
                    handle.remove()
            finals = final if isinstance(final, tuple | list) else (final,)  # torchvision's: one tensor
            captured.update(zip(generated.outputs, finals, strict=False))
            return tuple(captured[n] for n in names)

    return Tapped().eval()


def _leaves(module: Any) -> list[tuple[str, Any]]:
    return [(n, m) for n, m in module.named_modules() if n and not list(m.children())]


def _tensor(output: Any) -> Any:
    """A module's output as one floating-point tensor (a tuple's first), or None."""
    import torch

    first = output[0] if isinstance(output, tuple | list) and output else output
    return first if isinstance(first, torch.Tensor) and first.is_floating_point() else None
