"""What a suggestion model reads of an issue: its words, and what a converter engineer reads first.

Two kinds of features:

- **text**: title, body and comments tokenized by spaCy (a blank English pipeline with lookup
  lemmatization, so "exported", "exporting" and "exports" count as one word; no model download),
  weighted by TF-IDF over word uni- and bigrams, plus character n-grams of the title and the first
  part of the body (they catch operator names and error codes that tokenization splits);
- **domain**: named, readable signals: the exception types and messages of the pasted tracebacks,
  where their innermost frames are (symbolic_opset, tracing, ONNX passes, tf2onnx rewriters, the
  ONNX checker, onnxruntime), the stage the reproduction harness infers from the pasted traceback,
  the latest re-run verdict, and words about output differences, installing and building,
  performance, hangs and versions.

The domain features are what ``suggest show`` cites as evidence; they are rules whose weights the
estimator learns, so a rule that misleads on a user's data loses its weight instead of overriding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from issuemine.domain.converters import knowledge
from issuemine.domain.stages import infer_stage
from issuemine.domain.tracebacks import find_tracebacks, parse_traceback

FEATURES_VERSION = "1"
MAX_CHARS = 20_000  # long threads: the report and first comments carry the failure


@dataclass
class IssueText:
    """The text of one issue, as stored or as a labels file gives it."""

    title: str
    body: str = ""
    comments: list[str] = field(default_factory=list)
    converter: str = ""
    verdict: str | None = None  # the latest re-run verdict, where the issue was re-run

    def full(self) -> str:
        return "\n\n".join([self.title, self.body, *self.comments])[:MAX_CHARS]

    def head(self) -> str:
        return f"{self.title}\n{self.body[:1500]}".lower()


# Words and messages a converter engineer reads first, as named regular expressions.
SIGNALS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern, re.I)
    for name, pattern in {
        "msg:unsupported-operator": r"UnsupportedOperatorError|unsupported (?:onnx )?op(?:erator)?|"
        r"couldn'?t export (?:operator|\w+ operator)|could not export|is not supported|not supported|"
        r"no (?:onnx )?(?:function|symbolic) (?:found )?for|no converter for|unsupported ops?",
        "msg:internal-assert": r"INTERNAL ASSERT FAILED",
        "msg:shape": r"\bshape\b|\bshapes\b|\branks?\b|dimension|broadcast|reshape|dynamic_axes|dynamic axes",
        "msg:dtype": r"\bdtype\b|data ?type|type mismatch|int64|int32|float16|fp16|bfloat16|\bdouble\b|"
        r"tensor\(\w+\)|expected .*type|quantiz",
        "msg:opset": r"\bopset\b|opset_version|domain version",
        "msg:checker": r"ValidationError|onnx\.checker|check_model|InferenceError|shape inference",
        "msg:runtime": r"onnxruntime|\bORT\b|InferenceSession|ONNXRuntimeError|\[ONNXRuntimeError\]",
        "out:different": r"allclose|mismatch|max(?:imum)? (?:abs(?:olute)? )?diff|differen(?:t|ce)s? "
        r"(?:result|output|value|prediction)|wrong (?:result|output|value|prediction|answer)|not equal|"
        r"inconsisten|accuracy (?:drop|loss|degrad)|outputs? (?:are|is) (?:different|wrong|incorrect|nan|zero)",
        "out:nan": r"\bnan\b|\binf\b",
        "build:install": r"pip install|\bbuild(?:ing)?\b|compil|cmake|\bwheel\b|ImportError|ModuleNotFoundError|"
        r"undefined symbol|cannot import|no module named|protobuf",
        "perf:speed": r"\bslow(?:er)?\b|latency|\bspeed\b|performance|\bfps\b|\bms\b|faster|takes? .{0,20}"
        r"(?:seconds|minutes|hours)|memory (?:usage|leak)|\boom\b|out of memory|model size|file size",
        "hang:stuck": r"\bhangs?\b|\bhanging\b|\bstuck\b|never (?:returns|finishes|ends)|forever|freez|deadlock|"
        r"infinite loop",
        "api:keras": r"\bkeras\b|from_keras|tf\.keras",
        "api:tflite": r"tflite|tensorflow lite",
        "api:saved-model": r"saved_?model|from_saved_model|--saved-model",
        "api:graphdef": r"graphdef|\.pb\b|frozen graph|--graphdef|--input",
        "api:dynamo": r"dynamo|torch\.export|onnx\.dynamo_export|ExportedProgram",
        "api:script": r"torch\.jit\.script|ScriptModule|scripting",
        "api:trace": r"torch\.jit\.trace|\btrac(?:e|ing|er)\b",
        "api:custom-op": r"custom op|custom_op|register_custom_op|symbolic function|@symbolic",
        "misuse:docs": r"\bdocs?\b|documentation|example|tutorial|how (?:do|can|to)",
        "misc:typo": r"\btypo\b|misspell|spelling",
        "misc:exception-handling": r"\bexcept\b|catch|error message|warning message|raise",
        "misc:test": r"\btests?\b|unittest|pytest|\bci\b",
        "misc:config": r"\bconfig|option|flag|argument|parameter|environment variable",
    }.items()
}

# Where the innermost frames of a traceback are; the first fragment that matches names the place.
FRAME_PLACES: tuple[tuple[str, str], ...] = (
    ("symbolic_opset", "frame:torch-symbolic"),
    ("torch/onnx/symbolic_helper", "frame:torch-symbolic"),
    ("torch/jit/_trace", "frame:torch-tracing"),
    ("torch/jit/", "frame:torch-jit"),
    ("passes/onnx", "frame:torch-onnx-passes"),
    ("torch/onnx/_internal/exporter", "frame:torch-dynamo-exporter"),
    ("torch/onnx/_internal/fx", "frame:torch-dynamo-exporter"),
    ("torch/_dynamo", "frame:torch-dynamo"),
    ("torch/export", "frame:torch-export"),
    ("torch/onnx/utils", "frame:torch-onnx-utils"),
    ("torch/onnx", "frame:torch-onnx"),
    ("tf2onnx/rewriter", "frame:tf2onnx-rewriter"),
    ("tf2onnx/optimizer", "frame:tf2onnx-optimizer"),
    ("tf2onnx/onnx_opset", "frame:tf2onnx-handler"),
    ("tf2onnx/tfonnx", "frame:tf2onnx-process"),
    ("tf2onnx/tf_loader", "frame:tf2onnx-loader"),
    ("tf2onnx/tf_utils", "frame:tf2onnx-loader"),
    ("tf2onnx/graph", "frame:tf2onnx-graph"),
    ("tf2onnx", "frame:tf2onnx"),
    ("onnx/checker", "frame:onnx-checker"),
    ("onnx/shape_inference", "frame:onnx-shape-inference"),
    ("onnxruntime", "frame:onnxruntime"),
    ("tensorflow/python", "frame:tensorflow"),
    ("keras", "frame:keras"),
)
VERSION = re.compile(r"\bopset(?:_version)?\s*[=:]?\s*(\d{1,2})\b", re.I)


def _place(path: str) -> str | None:
    path = path.replace("\\", "/")
    for fragment, name in FRAME_PLACES:
        if fragment in path:
            return name
    return None


def domain_features(issue: IssueText) -> dict[str, float]:
    """The named signals of one issue (1.0 when present), each readable as evidence."""
    return dict(_domain_features(issue.full(), issue.title, issue.converter, issue.verdict))


@lru_cache(maxsize=50_000)
def _domain_features(text: str, title: str, converter: str, verdict: str | None) -> tuple[tuple[str, float], ...]:
    found: dict[str, float] = {}
    blocks = find_tracebacks(text)
    # Words count in the prose and the exception messages, not in the frames' argument lists
    # (a tf2onnx frame lists `tflite_path` and `custom_ops` whatever the failure).
    prose = text
    for block in blocks:
        prose = prose.replace(block, " ")
    messages = []
    rules = knowledge().stages
    for block in blocks[:3]:
        error = parse_traceback(block)
        if not error:
            continue
        found["traceback"] = 1.0
        kind = str(error.get("type") or "").rsplit(".", 1)[-1]
        if kind:
            found[f"exception:{kind}"] = 1.0
        messages.append(str(error.get("message") or ""))
        stage, _ = infer_stage(error, "", rules)
        found[f"harness-stage:{stage}"] = 1.0
        for frame in reversed(error.get("frames") or []):
            place = _place(str(frame.get("file") or ""))
            if place:
                found[f"innermost {place}"] = 1.0
                break
    for name, pattern in SIGNALS.items():
        if pattern.search(prose) or any(pattern.search(m) for m in messages):
            found[name] = 1.0
        if pattern.search(title):
            found[f"title {name}"] = 1.0
    if verdict:
        found[f"rerun:{verdict}"] = 1.0
    if converter:
        found[f"converter:{converter}"] = 1.0
    for match in VERSION.finditer(prose[:5000]):
        opset = int(match.group(1))
        found[f"opset:{'<=10' if opset <= 10 else '11-13' if opset <= 13 else '>=14'}"] = 1.0
    return tuple(sorted(found.items()))


@lru_cache(maxsize=1)
def _nlp() -> Any:
    """A blank English pipeline with the lookup lemmatizer (tables from spacy-lookups-data)."""
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    return nlp


_TOKENS: dict[str, list[str]] = {}  # cross-validation tokenizes the same texts once per fold otherwise


def tokens(texts: Iterable[str]) -> list[list[str]]:
    """Lower-case lemmas of the words of each text; punctuation, spaces and numbers dropped."""
    wanted = [t[:MAX_CHARS] for t in texts]
    new = list(dict.fromkeys(t for t in wanted if t not in _TOKENS))
    if len(_TOKENS) + len(new) > 50_000:
        _TOKENS.clear()
    # Lower-cased first: the lemma tables are keyed on lower case ("Exporting" has no entry).
    for text, doc in zip(new, _nlp().pipe((t.lower() for t in new), batch_size=64), strict=True):
        _TOKENS[text] = [
            (tok.lemma_ or tok.text).lower()
            for tok in doc
            if not (tok.is_punct or tok.is_space or tok.like_num) and len(tok.text) < 40
        ]
    return [_TOKENS[t] for t in wanted]


def harness_reading(issue: IssueText) -> tuple[str, str] | None:
    """The stage the reproduction harness reads from the first pasted traceback, and why (the
    matched exception, message or frame): the evidence a rater can check at a glance."""
    rules = knowledge().stages
    for block in find_tracebacks(issue.full()):
        error = parse_traceback(block)
        if error:
            return infer_stage(error, "", rules)
    return None
