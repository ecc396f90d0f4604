"""Extraction on realistic issue threads (texts written for these tests)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from issuemine.repro.candidates import extract_issues
from issuemine.repro.extract import blocks_of_post, extract, missing_imports

REPORT = """### 🐛 Describe the bug

Exporting a model that uses `grid_sample` fails with opset 11.

```python
class Warp(nn.Module):
    def forward(self, x, grid):
        return F.grid_sample(x, grid, align_corners=False)
```

and then

```py
model = Warp().eval()
x, grid = torch.randn(1, 3, 8, 8), torch.rand(1, 8, 8, 2) * 2 - 1
torch.onnx.export(model, (x, grid), "warp.onnx", opset_version=11)
```

<details><summary>Error</summary>

```
Traceback (most recent call last):
  File "/opt/conda/lib/python3.10/site-packages/torch/onnx/utils.py", line 1548, in _export
    graph, params_dict, torch_out = _model_to_graph(
torch.onnx.errors.UnsupportedOperatorError: Exporting 'aten::grid_sampler' to opset 11 is not supported.
```
</details>

### Versions
torch 1.13.1
"""


def test_blocks_are_classified_in_order():
    blocks = blocks_of_post("body", REPORT)
    assert [b.kind for b in blocks] == ["python", "python", "traceback"]
    assert blocks[2].code.startswith("Traceback")


def test_candidate_joins_the_posts_blocks_and_adds_imports():
    candidate = extract([("body", REPORT), ("comment:7", "Can reproduce on 2.1 as well.")])
    assert candidate.runnable and candidate.reason is None
    assert candidate.conversions == ["torch.onnx.export"]
    assert candidate.provenance["blocks"] == [0, 1] and candidate.provenance["post"] == "body"
    assert candidate.provenance["added_imports"] == [
        "import torch",
        "import torch.nn as nn",
        "import torch.nn.functional as F",
    ]
    assert candidate.provenance["exporter"] == "torchscript"
    assert candidate.script.startswith("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n")
    assert "UnsupportedOperatorError" in candidate.tracebacks[0]
    compile(candidate.script, "candidate.py", "exec")  # a whole, valid program


def test_code_in_a_comment_when_the_body_has_none():
    body = "The exported model gives different results in onnxruntime. Any idea?"
    comment = (
        "Minimal repro:\n\n```python\nimport torch\n\ndef export(m, x):\n"
        "    torch.onnx.export(m, x, 'm.onnx', dynamo=True)\n\nexport(torch.nn.ReLU(), torch.randn(2))\n```\n"
    )
    candidate = extract([("body", body), ("comment:42", comment)])
    assert candidate.runnable and candidate.provenance["post"] == "comment:42"
    assert candidate.provenance["exporter"] == "dynamo" and candidate.provenance["added_imports"] == []


def test_interactive_sessions_and_indented_blocks():
    body = (
        "Steps:\n\n    import tensorflow as tf\n    import tf2onnx\n"
        "    m = tf.keras.Sequential([tf.keras.layers.Dense(2)])\n"
        "    proto, _ = tf2onnx.convert.from_keras(m, opset=13)\n\nand in a REPL:\n\n```pycon\n>>> 1 + 1\n2\n```\n"
    )
    candidate = extract([("body", body)])
    assert candidate.runnable and candidate.conversions == ["tf2onnx.convert.from_keras"]
    pycon = blocks_of_post("body", "```pycon\n>>> x = np.ones(2)\n>>> x.sum()\n2.0\n```\n")[0]
    assert pycon.kind == "python" and pycon.code == "x = np.ones(2)\nx.sum()\n"


def test_reasons_when_nothing_can_run():
    assert extract([("body", "Export fails, see title.")]).reason == "no code in the issue"
    only_trace = '```\nTraceback (most recent call last):\n  File "a.py", line 1\nValueError: bad\n```'
    assert extract([("body", only_trace)]).reason == "only a traceback, no code to run"
    assert extract([("body", "```cpp\nint main() { return 0 }\n```")]).reason.startswith("code blocks are not Python")
    no_call = "```python\nimport torch\nprint(torch.__version__)\n```"
    reason = extract([("body", no_call)]).reason
    assert reason.startswith("no converter call in the code (looked for ")
    assert "torch.onnx.export," in reason and "tf2onnx.convert.from_keras," in reason


@pytest.mark.parametrize(
    "code",
    [
        "import torch\nfrom torch.onnx import export\nexport(model, x, 'm.onnx')\n",
        "import torch\nfrom torch.onnx import export as to_onnx\nto_onnx(model, x, 'm.onnx')\n",
        "import torch.onnx as tonnx\ntonnx.export(model, x, 'm.onnx')\n",
        "import torch\nfrom torch import onnx\nonnx.export(model, x, 'm.onnx')\n",
        "import torch\nimport torch.onnx\ntorch.onnx.export(model, x, 'm.onnx')\n",
        "import torch\ndef save(m):\n    from torch.onnx import export\n    export(m, x, 'm.onnx')\nsave(model)\n",
    ],
    ids=["from-import", "from-import-as", "import-as", "from-package", "dotted", "in-a-function"],
)
def test_a_converter_call_is_found_however_it_was_imported(code: str) -> None:
    model = "import torch\nmodel = torch.nn.ReLU()\nx = torch.randn(1, 3)\n"
    candidate = extract([("body", f"```python\n{model}{code}```")])
    assert candidate.runnable, candidate.reason
    assert candidate.conversions == ["torch.onnx.export"]


def test_names_that_only_look_like_a_converter_are_not_one() -> None:
    # export() of another module, and a local function named like the converter.
    code = "import torch\nfrom mylib import export\nexport(model)\ndef from_keras(m):\n    pass\nfrom_keras(1)\n"
    assert not extract([("body", f"```python\n{code}```")]).runnable


def test_files_block_while_gpu_and_removed_arguments_are_repaired():
    code = (
        "```python\nmodel = torch.load('checkpoints/best.pth').cuda()\nimg = cv2.imread('dog.jpg')\n"
        "torch.onnx.export(model, x, 'out.onnx', example_outputs=y, enable_onnx_checker=False)\n```"
    )
    candidate = extract([("body", code)])
    assert not candidate.runnable
    assert candidate.provenance["missing_files"] == ["checkpoints/best.pth", "dog.jpg"]
    assert candidate.reason == "needs external files: checkpoints/best.pth, dog.jpg"
    assert sorted(r["kind"] for r in candidate.provenance["repairs"]) == ["cpu", "removed-argument", "removed-argument"]
    assert "torch.onnx.export(model, x, 'out.onnx')" in candidate.script and ".cuda()" not in candidate.script
    gpu_only = code.replace("img = cv2", "torch.cuda.synchronize()\nimg = cv2")
    assert "needs a GPU" in (extract([("body", gpu_only)]).reason or "")


def test_the_tf2onnx_command_line():
    made = "```python\nimport tensorflow as tf\nm = tf.keras.Sequential([tf.keras.layers.Dense(2)])\n```\n"
    cli = "```bash\n$ python -m tf2onnx.convert --saved-model ./exported --output m.onnx --opset 15\n```\n"
    candidate = extract([("body", cli)])
    assert candidate.conversions == ["python -m tf2onnx.convert"]
    assert candidate.reason == "needs external files: ./exported"
    assert "'--saved-model', './exported', '--output', 'm.onnx'" in candidate.script
    assert extract([("body", made + cli)]).conversions == ["python -m tf2onnx.convert"]


def test_missing_imports_ignore_bound_names():
    code = "import numpy as np\ndef f(torch):\n    return torch + np.ones(1)\nnn = 3\nprint(nn, tf)\n"
    assert missing_imports(code) == ["import tensorflow as tf"]


def test_extract_issues_stores_one_row_per_issue(label_db, cli, db_path):
    from issuemine.cli.app import app

    report = extract_issues(label_db, "s")
    assert report.issues == 6 and report.with_text == 6
    assert report.runnable == 6 and sum(report.conversions.values()) == 6
    again = extract_issues(label_db, "s")
    assert again.as_dict() == report.as_dict()
    with label_db.engine.connect() as conn:
        rows = conn.execute(text("SELECT runnable, conversions, provenance FROM repro_candidates")).all()
    assert len(rows) == 6
    assert all(json.loads(r.conversions) == ["tf2onnx.convert.from_keras"] for r in rows)
    result = cli.invoke(app, ["repro", "extract", "--sample", "s", "--db", str(db_path), "--json"])
    assert json.loads(result.stdout)["runnable"] == 6


def test_nested_repairs_are_made_in_passes_and_only_made_ones_recorded():
    from issuemine.domain.converters import knowledge
    from issuemine.repro.repairs import repair

    code = "import torch\nm = torch.load('w.pth', map_location='cuda').cuda()\ntorch.onnx.export(m, x, 'm.onnx')\n"
    repaired, made = repair(code, knowledge())
    assert "cuda" not in repaired and "torch.load('w.pth', map_location='cpu')" in repaired
    assert sorted(r.kind for r in made) == ["cpu", "cpu"]  # the outer .cuda(), then the keyword inside it
    assert repair("torch.onnx.export(m, x, 'm.onnx')\n", knowledge()) == ("torch.onnx.export(m, x, 'm.onnx')\n", [])


def test_a_converter_that_reads_a_model_file_needs_that_file(tmp_path, monkeypatch) -> None:
    """onnx2torch converts a file: `convert("model.onnx")` reads a model the thread does not contain
    (not runnable), while one the snippet exported first is its own."""
    catalog = tmp_path / "onnx2torch.toml"
    catalog.write_text(
        '[converters."onnx2torch"]\nrepo = "ENOT-AutoDL/onnx2torch"\nsource = "onnx"\ntarget = "pytorch"\n'
        '[converters."onnx2torch".reproduce]\nsource_paths = ["onnx2torch/"]\n'
        '[[converters."onnx2torch".reproduce.entry]]\ncall = "onnx2torch.convert"\ncheck = "none"\n'
    )
    monkeypatch.setenv("ISSUEMINE_CATALOG", str(catalog))  # the catalog is cached per set of files
    reads = extract([("body", "```python\nfrom onnx2torch import convert\nnet = convert('resnet.onnx')\n```")])
    assert not reads.runnable and reads.reason == "needs external files: resnet.onnx"
    aliased = "```python\nimport onnx2torch as o2t\nnet = o2t.convert('resnet.onnx')\n```"
    assert extract([("body", aliased)]).reason == "needs external files: resnet.onnx"
    own = (
        "```python\nimport torch\nfrom onnx2torch import convert\n"
        "torch.onnx.export(torch.nn.ReLU(), torch.rand(1), 'relu.onnx')\nnet = convert('relu.onnx')\n```"
    )
    assert extract([("body", own)]).runnable
    # A path held in a variable assigned once is that file: read by the converter, or written first.
    held = "```python\nfrom onnx2torch import convert\nonnx_path = 'resnet.onnx'\nnet = convert(onnx_path)\n```"
    assert extract([("body", held)]).reason == "needs external files: resnet.onnx"
    saved = "```python\nimport torch\npath = 'm.pt'\ntorch.save(torch.nn.ReLU(), path)\nm = torch.load(path)\n```"
    assert "m.pt" not in (extract([("body", saved)]).reason or "")  # saved, then loaded back
    twice = "```python\nfrom onnx2torch import convert\np = 'a.onnx'\np = make()\nnet = convert(p)\n```"
    assert "a.onnx" not in (extract([("body", twice)]).reason or "")  # reassigned: not followed
