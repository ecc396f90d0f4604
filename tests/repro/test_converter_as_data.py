"""Adding a converter to the harness is adding data: one TOML file, read by extraction, the shim,
verdicts and traceback folding alike (no Python edited)."""

from __future__ import annotations

from pathlib import Path

import pytest

from issuemine.domain.converters import default_catalog_paths, knowledge, load_catalog
from issuemine.domain.stages import infer_stage
from issuemine.domain.tracebacks import fold_traceback, parse_traceback
from issuemine.repro.extract import extract
from issuemine.repro.sandbox import Limits
from tests.repro.conftest import make_harness

TOY = """
[converters.toyconv]
repo = "example/toyconv"
description = "A converter described only by this file"

[converters.toyconv.reproduce]
source_paths = ["toyconv/"]
imports = { toy = "import toyconv as toy" }

[[converters.toyconv.reproduce.entry]]
call = "toyconv.convert"
check = "load-only"
model = { keyword = "source" }
workdir_array = [{ name = "toy-sample.npy", shape = [2, 3] }]

[[converters.toyconv.stage.frame]]
path = "toyconv/passes/"
stage = "graph-optimization"
"""

TRACE = r"""Traceback (most recent call last):
  File "run.py", line 3, in <module>
    toy.convert(model)
  File "C:\Python311\Lib\site-packages\toyconv\__init__.py", line 4, in convert
    return run(model)
  File "C:\Python311\Lib\site-packages\toyconv\passes\fuse.py", line 2, in run
    raise ValueError("cannot fuse")
ValueError: cannot fuse
"""

SNIPPET = r"""import os
import sys

os.makedirs("toyconv/passes", exist_ok=True)
with open("toyconv/__init__.py", "w") as fh:
    fh.write("from toyconv.passes.fuse import run\n\ndef convert(model):\n    return run(model)\n")
open("toyconv/passes/__init__.py", "w").close()
with open("toyconv/passes/fuse.py", "w") as fh:
    fh.write(
        "import numpy\n\ndef run(model):\n"
        "    raise ValueError('cannot fuse ' + model + ' with ' + str(numpy.load('toy-sample.npy').shape))\n"
    )
sys.path.insert(0, os.getcwd())
import toyconv

toyconv.convert("m")
"""


@pytest.fixture
def toy_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "toyconv.toml"
    path.write_text(TOY)
    monkeypatch.setenv("ISSUEMINE_CATALOG", str(path))
    return path


@pytest.mark.parametrize(
    "entry",
    [
        'workdir_array = [{ name = "../x.npy", shape = [2] }]',
        'workdir_array = [{ name = "x.npy", shape = [0] }]',
        'workdir_array = [{ name = "x.npy", shape = [2], dtype = "int8" }]',
        "workdir_array = [{ shape = [2] }]",
    ],
)
def test_a_bad_working_folder_array_is_refused(tmp_path: Path, entry: str) -> None:
    from issuemine.errors import IssuemineError

    path = tmp_path / "bad.toml"
    path.write_text(TOY.replace('workdir_array = [{ name = "toy-sample.npy", shape = [2, 3] }]', entry))
    with pytest.raises(IssuemineError, match="workdir_array"):
        load_catalog([path])


def test_the_bundled_files_describe_the_study_converters():
    known = knowledge()
    calls = {e.call for e in known.entries}
    assert {"torch.onnx.export", "torch.onnx.dynamo_export", "tf2onnx.convert.from_keras"} <= calls
    assert known.touches_converter("/x/site-packages/tf2onnx/onnx_opset/nn.py")
    assert not known.touches_converter("/x/site-packages/torch/jit/_trace.py")
    assert known.shown(r"C:\Python\Lib\site-packages\onnx\checker.py")  # the format's code is shown, not "reached"
    assert not known.touches_converter("/x/site-packages/onnx/checker.py")
    assert load_catalog()["coremltools"].reproduce is None  # a catalog entry only


def test_extraction_stages_and_folding_read_the_new_file(toy_catalog: Path):
    assert toy_catalog in default_catalog_paths()
    candidate = extract([("body", "```python\nmodel = build()\ntoy.convert(model)\n```")])
    assert candidate.conversions == [] and not candidate.runnable  # `toy.` is not the dotted call
    candidate = extract([("body", "```python\nimport toyconv\ntoyconv.convert(m)\n```")])
    assert candidate.conversions == ["toyconv.convert"] and candidate.runnable
    assert "import toyconv as toy" not in candidate.script  # `toy` is not used there
    # The model file it reads, given by the keyword the entry names, is one the thread never creates.
    candidate = extract([("body", '```python\nimport toyconv\ntoyconv.convert(source="m.onnx")\n```')])
    assert not candidate.runnable and candidate.reason == "needs external files: m.onnx"
    candidate = extract([("body", '```python\nimport toyconv\ntoyconv.convert(target="m.onnx")\n```')])
    assert candidate.runnable  # another keyword: the file it writes
    error = parse_traceback(TRACE)
    assert infer_stage(error, "", knowledge().stages) == (
        "graph-optimization",
        "frame toyconv/passes/fuse.py:run",
    )
    folded = fold_traceback(TRACE)
    assert folded is not None and folded.frames[-1].endswith("fuse.py:2 in run")


def test_the_shim_wraps_the_new_entry_point_and_the_verdict_reads_its_stage(toy_catalog: Path):
    for harness in make_harness(True, Limits(timeout=60), slot=5):
        verdict = harness.run(SNIPPET).verdict
    assert (verdict.verdict, verdict.stage) == ("crash", "graph-optimization"), verdict
    # The array the entry says its converter reads from the working folder was written before the call.
    assert verdict.reached_converter and "cannot fuse m with (2, 3)" in (verdict.reason or "")
    (call,) = verdict.evidence["calls"]
    assert call["api"] == "toyconv.convert" and call["status"] == "error"
