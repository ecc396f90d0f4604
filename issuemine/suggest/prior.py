"""What a converter engineer concludes from a whole thread before any model is trained: the prior.

Rules over the full thread (title, body, comments), not learned from titles:

- symptom: "allclose", max-difference and different-output language, a re-run that gave a wrong
  model, or a title that says the converted model is wrong ("wrongly", "malformed", "should use",
  "is not converted into") → wrong model; hang words → hang; install, build, CI, import or linker
  words in the title (not a nightly build or a TorchScript-compiled model) → build failure; a
  conversion error, traceback or a title that says the conversion failed → crash; latency and
  memory words with no error → bad performance;
- stage: a build or install failure → not distinguishable (no conversion step ran); the stage the
  calibrated stage rules read from a pasted traceback; a graph optimizer in the title or its log
  lines → graph optimization; a title about the project's build, CI, tests,
  dependencies or a whole opset → not distinguishable (an operator asked for is node conversion);
  any other failure → node conversion, where raters place most of them;
- cause: a build failure → misconfiguration; the converter's tests in the title → testing; a graph
  optimizer, rewriter or pass in the title or its log lines → algorithmic error; then what the
  title, the error messages, then the thread say is wrong: something not supported →
  incompatibility, a data type → type problem, shapes (title or message only) → shape problem.

The rules were written against the development set's human labels (tests/devset/threads/), and
measured on its held-out threads (tests/devset/heldout/), which they were not written from.

Each rule says why it fired. :func:`combine` folds the prior into the learned model's ranking
with a weight per dimension (``WEIGHTS``) chosen on the development set (tests/devset/,
``benchmarks/bench_suggest.py --devset``), so a user's own labels still retrain the text model
while the prior carries what titles cannot teach. ``WEIGHTS["context"]`` is how much the suggested
symptom and stage re-rank the cause (:func:`issuemine.suggest.model.in_context`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from issuemine.domain.converters import knowledge
from issuemine.domain.stages import FALLBACK, NOT_DISTINGUISHABLE, infer_stage
from issuemine.domain.tracebacks import find_tracebacks, parse_traceback
from issuemine.suggest.features import SIGNALS, IssueText

# How much the prior's answer is multiplied by before the ranking is renormalized, per dimension.
# 0 ignores the prior. Chosen on the development set (see the module doc).
WEIGHTS = {"stage": 16.0, "symptom": 16.0, "cause": 16.0, "context": 0.5}
# The weights a model may choose from when it learns its own (SuggestionModel.train), and how many
# labeled issues a dimension needs before the labels choose rather than the development set.
GRID = (0.0, 2.0, 4.0, 8.0, 16.0)
CONTEXT_GRID = (0.0, 0.5, 1.0)
MIN_TO_CHOOSE = 30


ERROR_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception|Failure)|RuntimeError|\[ONNXRuntimeError\])\b.*", re.M)
# A converter being called: an issue that shows one is about a conversion, not about installing.
CONVERSION = re.compile(
    r"torch\.onnx\.export|dynamo_export|tf2onnx\.convert|from_keras|from_saved_model|export\(", re.I
)
# How reporters title a converted model that is wrong rather than a conversion that stopped: the
# graph is wrong, malformed, differs, "ends up with", "is not converted into", "should use".
WRONG_TITLE = re.compile(
    r"\b(?:wrong(?:ly)?|incorrect\w*|malformed|differ\w*|mismatch\w*|unstable|instead of|not converted|"
    r"ends? up|not fused|static batch|gets?|emits?|becomes?|loses?|should (?:use|get|be))\b",
    re.I,
)
# How reporters title a conversion that stopped, with or without the traceback pasted.
FAILURE_TITLE = re.compile(
    r"\b(?:fails?|failed|failure|errors?|crash\w*|cannot|can.t|couldn.t|unable|breaks?|no symbolic|missing|"
    r"not supported|unsupported)\b",
    re.I,
)
# A graph optimizer named in the title, or its log lines in the thread: raters place these in the
# graph optimization stage whatever else the thread shows.
OPTIMIZER_TITLE = re.compile(
    r"optimi[sz](?:e|ation)|transpose optimizer|constant.?fold|folded|duplicate|not removed", re.I
)
# What raters cannot place in any conversion step: the project's build, CI and tests, its
# dependencies, a whole opset or domain (an operator, by contrast, is node conversion).
INFRASTRUCTURE_TITLE = re.compile(
    r"(?:support|for|to) opset \d+|\bci\b|flaky|linker|unresolved external|module not found|no module named|"
    r"cannot import|pip install|\btests?\b|\bdomain\b|>=\s*\d",
    re.I,
)
BUILD_TITLE = re.compile(
    r"\bci\b|linker|unresolved external|module not found|no module named|cannot import|pip install|import tf2onnx",
    re.I,
)
# Build words that are not about building anything: a release channel, a model compiled by TorchScript.
NOT_A_BUILD = re.compile(
    r"nightly builds?|\b(?:script|torchscript|jit)[- ]?compiled|compiled (?:model|graph|function|module)|"
    r"torch\.compile",
    re.I,
)
OPTIMIZER_LOG = re.compile(r"tf2onnx\.optimizer|optimize_transpose|TransposeOptimizer|transpose_optimizer")


@dataclass(frozen=True)
class Guess:
    code: str
    why: str


def prior(text: IssueText) -> dict[str, Guess]:
    """The prior's guess per dimension (stage, symptom), with why; a dimension it cannot judge is absent."""
    full = text.full()
    errors = _errors(full)
    failure = bool(errors) or bool(ERROR_LINE.search(full))
    signals = {name for name, pattern in SIGNALS.items() if pattern.search(full)}
    guesses: dict[str, Guess] = {}
    symptom = _symptom(text, failure, signals, full)
    if symptom:
        guesses["symptom"] = symptom
    stage = _stage(errors, text.title, full, symptom)
    if stage:
        guesses["stage"] = stage
    cause = _cause(errors, text.title, full, symptom)
    if cause:
        guesses["cause"] = cause
    return guesses


# What the error says is wrong, in a converter engineer's words: an operator or version the converter
# does not support, a data type, a shape. Read from the error messages first, then the whole thread.
UNSUPPORTED = re.compile(
    r"not supported|unsupported|is not implemented|not implemented for|no (?:symbolic|converter|conversion)|"
    r"opset[ _]?(?:version)?\s*\d+|Exporting the operator|couldn't export|cannot export|NOT_IMPLEMENTED",
    re.I,
)
TYPES = re.compile(
    r"\bdtype\b|\btype mismatch|\b(?:int8|int32|int64|uint8|float16|fp16|bfloat16|float64|double|bool(?:ean)?)\b|"
    r"\bCast\b|TypeError|expected (?:scalar )?type|tensor\(\w+\)",
    re.I,
)
# The converter's own test suite (a flaky test, a test harness): raters give these the cause "testing".
TESTS_TITLE = re.compile(r"flaky|\btests?\b|unit ?tests?|\bTest[A-Z]\w+|OpInfo", re.I)
# A graph optimizer, rewriter or compiler pass named in the title: when it breaks a graph, the rewrite
# it computes is wrong, which the codebook calls an algorithmic error.
REWRITE_TITLE = re.compile(r"optimi[sz](?:er|ation|e_)|rewriter|_jit_pass|\bpass\b|constant.?fold|not fused", re.I)
SHAPES = re.compile(
    r"\bshapes?\b|\bdimensions?\b|\brank\b|\bbroadcast|\breshape\b|dynamic[_ ]axes|size mismatch|\bdim\b", re.I
)


def _cause(errors: list[tuple[dict, str]], title: str, full: str, symptom: Guess | None) -> Guess | None:
    if symptom and symptom.code == "build-failure":
        return Guess("misconfiguration", "a build or install failure")
    if TESTS_TITLE.search(title):
        return Guess("testing", "the title is about the converter's tests")
    if REWRITE_TITLE.search(title) or OPTIMIZER_LOG.search(full):
        return Guess("algorithmic-error", "a graph optimizer, rewriter or pass in the title or its log lines")
    messages = " ".join(str(error.get("message") or "") for error, _ in errors)
    for text, where in ((title, "the title"), (messages, "the error message"), (full, "the thread")):
        if not text:
            continue
        if UNSUPPORTED.search(text):
            return Guess("incompatibility", f"{where} says something is not supported")
        if TYPES.search(text):
            return Guess("type-problem", f"{where} names a data type")
        # Shape words run through whole threads about other causes; only a title or message counts.
        if SHAPES.search(text) and text is not full:
            return Guess("shape-problem", f"{where} is about shapes")
    return None


def _errors(full: str) -> list[tuple[dict, str]]:
    found = []
    for block in find_tracebacks(full)[:3]:
        error = parse_traceback(block)
        if error and (error.get("type") or error.get("message") or error.get("frames")):
            found.append((error, block))
    return found


def _symptom(text: IssueText, failure: bool, signals: set[str], full: str) -> Guess | None:
    title = text.title
    if text.verdict == "wrong-model" or "out:different" in signals:
        return Guess("wrong-model", "output-difference words" if text.verdict != "wrong-model" else "re-run")
    if SIGNALS["hang:stuck"].search(title):
        return Guess("hang", "hang words in the title")
    if SIGNALS["build:install"].search(NOT_A_BUILD.sub(" ", title)) and not CONVERSION.search(full):
        return Guess("build-failure", "install or build words in the title and no conversion call")
    if BUILD_TITLE.search(title):
        return Guess("build-failure", "the title names the build, CI, an import or the linker")
    if WRONG_TITLE.search(title) and text.verdict != "crash":
        return Guess("wrong-model", "the title says the converted model is wrong")
    if failure or text.verdict == "crash":
        return Guess("crash", "an error or traceback")
    if FAILURE_TITLE.search(title):
        return Guess("crash", "the title says the conversion failed")
    if SIGNALS["perf:speed"].search(title):
        return Guess("bad-performance", "speed or memory words in the title and no error")
    return None


def _stage(errors: list[tuple[dict, str]], title: str, full: str, symptom: Guess | None) -> Guess | None:
    if symptom and symptom.code == "build-failure":
        return Guess(NOT_DISTINGUISHABLE, "a build or install failure: no conversion step ran")
    rules = knowledge().stages
    for error, block in errors:
        stage, how = infer_stage(error, block, rules)
        if stage != NOT_DISTINGUISHABLE:
            return Guess(stage, f"pasted traceback: {how}")
    if OPTIMIZER_TITLE.search(title) or OPTIMIZER_LOG.search(full):
        return Guess("graph-optimization", "a graph optimizer named in the title or its log lines")
    if INFRASTRUCTURE_TITLE.search(title):
        return Guess(NOT_DISTINGUISHABLE, "the title is about the build, CI, tests, dependencies or a whole opset")
    if symptom:
        return Guess(FALLBACK, "a conversion failure no step names (raters place most in node conversion)")
    return None


def combine(
    ranked: dict[str, list[tuple[str, float]]], guesses: dict[str, Guess], weights: dict[str, float] | None = None
) -> dict[str, list[tuple[str, float]]]:
    """The model's ranking with each prior guess's probability multiplied by its dimension's weight,
    renormalized (a guess the model cannot predict gets the model's smallest probability first)."""
    weights = WEIGHTS if weights is None else weights
    combined = dict(ranked)
    for dimension, guess in guesses.items():
        weight = weights.get(dimension, 0.0)
        ranking = ranked.get(dimension)
        if not ranking or weight <= 0:
            continue
        probabilities = dict(ranking)
        if guess.code not in probabilities:
            probabilities[guess.code] = min(probabilities.values())
        probabilities[guess.code] *= weight
        total = sum(probabilities.values()) or 1.0
        combined[dimension] = sorted(((c, p / total) for c, p in probabilities.items()), key=lambda p: -p[1])
    return combined
