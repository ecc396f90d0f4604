"""Folding long tracebacks to what a labeler needs."""

from __future__ import annotations

from issuemine.domain.tracebacks import fold_traceback
from issuemine.labeling.issue_text import fold_body

TRACE = """Traceback (most recent call last):
  File "repro.py", line 12, in <module>
    torch.onnx.export(model, x, "m.onnx")
  File "/usr/lib/python3/site-packages/torch/onnx/utils.py", line 506, in export
    _export(model, args)
  File "/usr/lib/python3/site-packages/torch/onnx/utils.py", line 1548, in _export
    graph = _model_to_graph(model)
  File "/usr/lib/python3/site-packages/torch/onnx/symbolic_opset11.py", line 88, in grid_sampler
    raise errors.SymbolicValueError("unsupported", input)
  File "/usr/lib/python3/site-packages/torch/jit/_trace.py", line 10, in helper
    return f()
torch.onnx.errors.SymbolicValueError: Unsupported: ONNX export of operator grid_sampler
"""


def test_fold_keeps_the_exception_and_innermost_converter_frames():
    folded = fold_traceback(TRACE, keep=2)
    assert folded is not None
    assert folded.exception.startswith("torch.onnx.errors.SymbolicValueError: Unsupported")
    assert folded.frames == [
        "/usr/lib/python3/site-packages/torch/onnx/utils.py:1548 in _export",
        "/usr/lib/python3/site-packages/torch/onnx/symbolic_opset11.py:88 in grid_sampler",
    ]
    assert fold_traceback("just some code\nprint(1)\n") is None


def test_fold_body_replaces_only_long_traceback_blocks():
    body = f"Export fails.\n\n```python\nimport torch\n```\n\n```\n{TRACE}```\n"
    folded = fold_body(body, max_lines=8)
    assert "```python\nimport torch\n```" in folded
    assert "[traceback folded:" in folded and "symbolic_opset11.py:88 in grid_sampler" in folded
    assert "_trace.py" not in folded  # not a converter frame
    short = "```\nTraceback (most recent call last):\nValueError: x\n```"
    assert fold_body(short, max_lines=8) == short
