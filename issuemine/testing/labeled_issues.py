"""Labeled issues with classes a model must be able to separate, written in the shapes of real
converter reports (template headings, pasted tracebacks, version lines), seeded.

Stage follows the innermost frame and exception of the traceback; symptom follows what the
reporter says happened (a crash, or outputs that differ); cause follows the words of the report.
Filler sentences are shared by every class, so only the signal words separate them.
"""

from __future__ import annotations

import random

from issuemine.suggest.features import IssueText
from issuemine.suggest.model import Example

FILLER = [
    "I followed the tutorial and the conversion script below.",
    "Any idea what is going on here?",
    "This happens on both my laptop and our CI machine.",
    "Thanks for the great project.",
    "The model is a small CNN trained on our own data.",
    "Let me know if you need more information.",
]
TRACEBACKS = {
    "node-conversion": (
        'Traceback (most recent call last):\n  File "convert.py", line {n}, in <module>\n'
        '    torch.onnx.export(model, x, "m.onnx", opset_version={opset})\n'
        '  File "/usr/lib/python3.10/site-packages/torch/onnx/symbolic_opset{opset}.py", line {m}, in {op}\n'
        "    return symbolic_helper._unimplemented('{op}', 'not supported')\n"
        "torch.onnx.errors.UnsupportedOperatorError: Exporting the operator 'aten::{op}' to ONNX opset "
        "version {opset} is not supported."
    ),
    "graph-optimization": (
        'Traceback (most recent call last):\n  File "run.py", line {n}, in <module>\n'
        "    model_proto, _ = tf2onnx.convert.from_keras(model, opset={opset})\n"
        '  File "/opt/conda/lib/python3.9/site-packages/tf2onnx/optimizer/transpose_optimizer.py", '
        "line {m}, in _handle_node\n    self._switch_transpose_and_node(node, trans)\n"
        "AssertionError: transpose optimizer failed on {op}"
    ),
}
SYMPTOMS = {
    "crash": ["The conversion crashes with the error below.", "It fails and stops with an exception."],
    "wrong-model": [
        "The ONNX model runs but the outputs differ: max abs diff is {m}.",
        "np.testing.assert_allclose fails, the results are wrong compared to PyTorch.",
    ],
}
CAUSES = {
    "incompatibility": ["The op {op} is missing in this opset.", "Support for {op} was never added."],
    "shape-problem": ["The dynamic axes give a wrong shape for {op}.", "The rank of the reshape is unknown."],
}


def examples(n: int = 48, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    found = []
    for i in range(n):
        stage = rng.choice(sorted(TRACEBACKS))
        symptom = rng.choice(sorted(SYMPTOMS))
        cause = rng.choice(sorted(CAUSES))
        op = rng.choice(["roll", "grid_sampler", "unfold", "einsum", "Resize", "Conv2DBackprop"])
        values = {"n": rng.randint(3, 90), "m": rng.randint(10, 999), "op": op, "opset": rng.randint(9, 17)}
        body = "\n\n".join(
            [
                "**Describe the bug**",
                rng.choice(SYMPTOMS[symptom]).format(**values),
                rng.choice(CAUSES[cause]).format(**values),
                rng.choice(FILLER),
                "```\n" + TRACEBACKS[stage].format(**values) + "\n```",
                f"**System information**\nOS: Ubuntu 20.04\nPython version: 3.{rng.randint(7, 11)}",
            ]
        )
        converter = "torch.onnx" if stage == "node-conversion" else "tf2onnx"
        labels = {"stage": stage, "symptom": symptom, "cause": cause}
        if cause == "incompatibility":
            labels["subcause"] = "incompatibility.external" if i % 2 else "incompatibility.internal"
        found.append(Example(f"o/r#{i + 1}", IssueText(f"Problem converting {op}", body, converter=converter), labels))
    return found
