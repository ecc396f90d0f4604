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
