"""The prior's rules on hand-written threads: each rule fires where it should and says why.

(How often the prior agrees with human raters is measured on the development set, by
`benchmarks/bench_suggest.py --devset`, not here.)"""

from __future__ import annotations

import pytest

from issuemine.suggest.features import IssueText
from issuemine.suggest.prior import combine, prior

TRACE = (
    "Traceback (most recent call last):\n"
    '  File "export.py", line 3, in <module>\n'
    "    torch.onnx.export(m, x, 'm.onnx')\n"
)
UNSUPPORTED = "RuntimeError: Exporting the operator 'aten::foo' to ONNX opset version 11 is not supported"
SIZES = "RuntimeError: The size of tensor a (3) must match at non-singleton dimension 1"


@pytest.mark.parametrize(
    ("title", "body", "cause"),
    [
        (
            "Export fails",
            TRACE + "RuntimeError: Exporting the operator 'aten::foo' to ONNX opset version 11 is not supported",
            "incompatibility",
        ),
        ("Export fails", TRACE + "RuntimeError: expected scalar type Float but found Long", "type-problem"),
        (
            "Export fails",
            TRACE + "RuntimeError: The size of tensor a (3) must match at non-singleton dimension 1",
            "shape-problem",
        ),
        ("pip install fails building the wheel", "error: legacy-install-failure while building", "misconfiguration"),
        # The converter's own tests; a graph optimizer or compiler pass whose rewrite is wrong.
        ("Flaky: TestExporter.test_lstm times out", "It passes on rerun.", "testing"),
        ("Constant folding leaves a Cast of an int64 tensor", "The graph has an extra node.", "algorithmic-error"),
        (
            "Converting my model fails",
            "WARNING - tf2onnx.optimizer: Failed to apply optimize_transpose",
            "algorithmic-error",
        ),
        ("A question about the docs", "How do I read the tutorial?", None),
    ],
)
def test_the_cause_prior_reads_what_the_error_says(title: str, body: str, cause: str | None) -> None:
    guess = prior(IssueText(title, body, [], "torch.onnx")).get("cause")
    assert (guess.code if guess else None) == cause
    if guess:
        assert guess.why


def test_a_guess_moves_up_the_models_ranking_by_its_weight() -> None:
    ranked = {"cause": [("type-problem", 0.5), ("algorithmic-error", 0.3), ("incompatibility", 0.2)]}
    from issuemine.suggest.prior import Guess

    combined = combine(ranked, {"cause": Guess("incompatibility", "test")}, {"cause": 4.0})
    assert combined["cause"][0][0] == "incompatibility"  # 0.2 × 4 = 0.8 of 1.6
    assert abs(sum(p for _, p in combined["cause"]) - 1.0) < 1e-9
    assert combine(ranked, {"cause": Guess("incompatibility", "test")}, {"cause": 0.0}) == ranked


@pytest.mark.parametrize(
    ("title", "body", "stage", "symptom"),
    [
        # A graph optimizer in the title or its log lines: graph optimization, whatever else is pasted.
        (
            "Transpose optimizer leaves a Reshape behind",
            "The converted graph has an extra Reshape.",
            "graph-optimization",
            None,
        ),
        (
            "Conversion of my model fails",
            "WARNING - tf2onnx.optimizer: Failed to apply optimize_transpose",
            "graph-optimization",
            "crash",
        ),
        # The project's own build, CI, tests, a whole opset: no conversion step to name.
        (
            "CI job for the nightly runtime fails",
            "The job is red since Monday.",
            "not-distinguishable",
            "build-failure",
        ),
        ("Support opset 17", "", "not-distinguishable", None),
        # A request to optimize a pattern is about the graph optimizer too.
        ("Optimize the Resize -> Transpose pattern", "", "graph-optimization", None),
        # An operator the converter lacks is a node conversion, even asked as a request.
        ("Export of operator 'triu' is not supported", "", "node-conversion", "crash"),
        # A converted model that is wrong, told by its title (and placed where raters place most).
        ("Exported model is wrong for InstanceNorm2d", "Here is the graph.", "node-conversion", "wrong-model"),
        ("Resize should use half_pixel", "", "node-conversion", "wrong-model"),
        # Build words that name no build: a TorchScript-compiled model, a nightly build.
        ("Exporting a TorchScript-compiled model fails", "", "node-conversion", "crash"),
        ("Building the wheel fails on Windows", "", "not-distinguishable", "build-failure"),
    ],
)
def test_the_title_tells_the_stage_and_symptom(title: str, body: str, stage: str | None, symptom: str | None) -> None:
    guesses = prior(IssueText(title, body, [], "tf2onnx"))
    assert (guesses["stage"].code if "stage" in guesses else None) == stage
    assert (guesses["symptom"].code if "symptom" in guesses else None) == symptom


def test_the_suggested_symptom_and_stage_rerank_the_cause() -> None:
    from issuemine.suggest.model import in_context

    context = {
        "wrong-model/graph-optimization": {"algorithmic-error": 6},
        "wrong-model": {"algorithmic-error": 6, "type-problem": 1},
        "crash/node-conversion": {"incompatibility": 8, "type-problem": 2},
        "crash": {"incompatibility": 8, "type-problem": 2},
    }
    per = {
        "stage": [("graph-optimization", 0.6), ("node-conversion", 0.4)],
        "symptom": [("wrong-model", 0.7), ("crash", 0.3)],
        "cause": [("incompatibility", 0.5), ("type-problem", 0.3), ("algorithmic-error", 0.2)],
    }
    moved = in_context(per, context, 1.0)
    assert moved["cause"][0][0] == "algorithmic-error"
    assert abs(sum(p for _, p in moved["cause"]) - 1.0) < 1e-9
    # A pair seen too rarely falls back to the symptom's causes; an unseen symptom leaves the ranking.
    rare = {**per, "stage": [("load-model", 1.0)]}
    assert in_context(rare, context, 1.0)["cause"][0][0] == "algorithmic-error"
    unseen = {**per, "symptom": [("hang", 1.0)]}
    assert in_context(unseen, context, 1.0)["cause"] == per["cause"]
