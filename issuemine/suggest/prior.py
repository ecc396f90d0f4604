"""What a converter engineer concludes from a whole thread before any model is trained: the prior.

Rules over the full thread (title, body, comments), not learned from titles:

- symptom: a conversion error or traceback → crash; "allclose", max-difference and different-
  output language, or a re-run that gave a wrong model → wrong model; install and build words with
  no conversion error → build failure; hang words → hang; latency and memory words with no error →
  bad performance; a feature or opset request with no failure at all → unreported;
- stage: the stage the calibrated stage rules read from a pasted traceback; a thread about building,
  installing, CI or a feature, with no conversion traceback → not distinguishable; any other
  failure → node conversion, where raters place most of them.

Each rule says why it fired. :func:`combine` folds the prior into the learned model's ranking
with a weight per dimension (``WEIGHTS``) chosen on the development set (tests/devset/,
``benchmarks/bench_suggest.py --devset``), so a user's own labels still retrain the text model
while the prior carries what titles cannot teach.
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
WEIGHTS = {"stage": 2.0, "symptom": 4.0, "cause": 4.0}

ERROR_LINE = re.compile(r"^\s*(?:[\w.]+(?:Error|Exception|Failure)|RuntimeError|\[ONNXRuntimeError\])\b.*", re.M)
REQUEST = re.compile(
    r"\b(?:add|adding|please|would like|request(?:ing)?|plan(?:s|ned)? to)\b.{0,40}\bsupport\b|"
    r"\bsupport (?:for|of)\b|\bfeature request\b|\bupgrade to\b|\bmove (?:the )?\w+ (?:ci|jobs?)\b",
    re.I,
)
CI_WORDS = re.compile(r"\bci\b|\bflaky\b|\bunit ?tests?\b|\bnightly\b|\bpipeline\b|\btest_\w+", re.I)
# A converter being called: an issue that shows one is about a conversion, not about installing.
CONVERSION = re.compile(
    r"torch\.onnx\.export|dynamo_export|tf2onnx\.convert|from_keras|from_saved_model|export\(", re.I
)


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
    stage = _stage(errors, failure, signals, full, symptom)
    if stage:
        guesses["stage"] = stage
    cause = _cause(errors, full, symptom)
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
SHAPES = re.compile(
    r"\bshapes?\b|\bdimensions?\b|\brank\b|\bbroadcast|\breshape\b|dynamic[_ ]axes|size mismatch|\bdim\b", re.I
)


def _cause(errors: list[tuple[dict, str]], full: str, symptom: Guess | None) -> Guess | None:
    if symptom and symptom.code == "build-failure":
        return Guess("misconfiguration", "a build or install failure")
    messages = " ".join(str(error.get("message") or "") for error, _ in errors)
    for text, where in ((messages, "the error message"), (full, "the thread")):
        if not text:
            continue
        if UNSUPPORTED.search(text):
            return Guess("incompatibility", f"{where} says something is not supported")
        if TYPES.search(text):
            return Guess("type-problem", f"{where} names a data type")
        if SHAPES.search(text):
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
    if SIGNALS["build:install"].search(title) and not CONVERSION.search(full):
        return Guess("build-failure", "install or build words in the title and no conversion call")
    if failure or text.verdict == "crash":
        return Guess("crash", "an error or traceback")
    if SIGNALS["perf:speed"].search(title):
        return Guess("bad-performance", "speed or memory words in the title and no error")
    if REQUEST.search(title) or CI_WORDS.search(title):
        return Guess("unreported", "a request for support or a CI/test chore, no failure")
    return None


def _stage(
    errors: list[tuple[dict, str]], failure: bool, signals: set[str], full: str, symptom: Guess | None
) -> Guess | None:
    rules = knowledge().stages
    for error, block in errors:
        stage, how = infer_stage(error, block, rules)
        if stage != NOT_DISTINGUISHABLE:
            return Guess(stage, f"pasted traceback: {how}")
    if symptom and symptom.code in ("build-failure", "unreported"):
        return Guess(NOT_DISTINGUISHABLE, f"{symptom.why}: no conversion step")
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
