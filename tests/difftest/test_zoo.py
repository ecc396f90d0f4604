"""Real architectures, offline (difftest run --models zoo): transformers and Keras models built from
their libraries with seeded random weights, converted for real, stored as campaigns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from issuemine.cli.app import app
from issuemine.difftest.generate import random_inputs
from issuemine.difftest.zoo import CATALOG, build, load_catalog
from issuemine.errors import IssuemineError
from tests.cli.test_cli import assert_clean_error

COMPARED = ("success", "mismatch")


def _run(cli: CliRunner, db: list[str], tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    base = ["difftest", "run", "--models", "zoo", "--inputs", "3", "--jobs", "2", "--out", str(tmp_path / "out")]
    result = cli.invoke(app, [*base, *args, "--json", *db])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _report(cli: CliRunner, db: list[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(cli.invoke(app, ["difftest", "report", "--format", "json", *db]).stdout)


def test_the_same_seed_builds_the_same_weights_and_another_seed_others():
    import torch

    first, again, other = build("bert", 3), build("bert", 3), build("bert", 4)
    a, b, c = (g.exportable.state_dict() for g in (first, again, other))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].dtype.is_floating_point)
    # Token ids stay inside the small vocabulary; the mask attends every token.
    inputs = random_inputs(first, 4, 3)
    assert all(x["input_ids"].min() >= 0 and x["input_ids"].max() < 1000 for x in inputs)
    assert all((x["attention_mask"] == 1).all() for x in inputs)
    assert first.architecture == "bert" and "Embedding" in first.operators


def test_torch_architectures_through_both_exporters_are_stored_as_campaigns(tmp_path):
    cli = CliRunner()
    db = ["--db", str(tmp_path / "z.db")]
    first = _run(cli, db, tmp_path, "--architectures", "bert,gpt2")
    assert first["planned"] == 2 and first["ran"] == 2
    # Resumed: the same campaign, nothing run again.
    again = _run(cli, db, tmp_path, "--architectures", "bert,gpt2")
    assert again["campaign"] == first["campaign"] and again["ran"] == 0 and again["skipped"] == 2
    _run(cli, db, tmp_path, "--architectures", "bert", "--exporter", "dynamo")
    report = _report(cli, db)
    rows = report["real_architectures"]
    assert [(r["architecture"], r["setup"]) for r in rows] == [
        ("bert", "torch.onnx torchscript"),
        ("gpt2", "torch.onnx torchscript"),
        ("bert", "torch.onnx dynamo"),
    ]
    for row in rows:
        assert row["family"] == CATALOG[row["architecture"]].family
        if row["outcome"] in COMPARED:
            # Random weights, float32: the converted model agrees to rounding, not to the last bit.
            assert row["max_abs_diff"] is not None and row["max_abs_diff"] < 1e-3
            assert "noise-aware" in row["within"] or row["outcome"] == "mismatch"
        else:
            assert row["error"]
    assert rows[0]["outcome"] in COMPARED  # BERT exports with TorchScript on every torch we support
    # Table 11 has a row per architecture, by name.
    names = [r["nodes"] for r in report["table_11"] if r["campaign"] == first["campaign"]]
    assert names == ["bert", "gpt2", "all"]
    md = cli.invoke(app, ["difftest", "report", *db]).stdout
    assert "Real architectures" in md and "| bert | encoder | torch.onnx torchscript |" in md
    # Localized to the first leaf module whose output diverges (tapped by forward hooks, exported by
    # the same exporter): under 1e-7 float32 rounding shows at once, in a module BERT has.
    mismatched = [r for r in rows if r["outcome"] == "mismatch" and r["setup"] == "torch.onnx torchscript"]
    if mismatched:
        model = str(mismatched[0]["model"])
        args = ["difftest", "localize", model, "--policy", "abs-1e-7", "--out", str(tmp_path / "loc"), "--json", *db]
        found = json.loads(cli.invoke(app, args).stdout)
        assert found["op_type"] in set(build(mismatched[0]["architecture"], 0).operators)  # one of its modules
        assert found["var"].startswith("inner.")  # the module's qualified name
        assert (tmp_path / "loc" / "localized" / f"model-{model}" / "all-intermediates.onnx").exists()


def test_a_keras_application_through_tf2onnx(tmp_path):
    cli = CliRunner()
    db = ["--db", str(tmp_path / "k.db")]
    ran = _run(cli, db, tmp_path, "--converter", "tf2onnx", "--architectures", "keras-mobilenet-v3-small")
    assert ran["ran"] == 1
    (row,) = _report(cli, db)["real_architectures"]
    assert row["outcome"] in COMPARED, row
    assert row["max_abs_diff"] is not None and row["max_abs_diff"] < 1e-3


def test_onnx2torch_reads_an_architecture_exported_to_onnx(tmp_path):
    cli = CliRunner()
    db = ["--db", str(tmp_path / "o.db")]
    _run(cli, db, tmp_path, "--converter", "onnx2torch", "--architectures", "vit,bert")
    rows = {r["architecture"]: r for r in _report(cli, db)["real_architectures"]}
    assert set(rows) == {"vit", "bert"}
    for row in rows.values():
        assert row["outcome"] in (*COMPARED, "conversion-failure", "ort-failure"), row
        if row["outcome"] == "conversion-failure":
            assert row["error"]  # onnx2torch's own message: the operator it lacks, say


def test_bad_zoo_options_are_one_line_errors(tmp_path):
    cli = CliRunner()
    db = ["--db", str(tmp_path / "e.db")]
    assert_clean_error(cli.invoke(app, ["difftest", "run", "--models", "hub", *db]), "--models")
    assert_clean_error(cli.invoke(app, ["difftest", "run", "--architectures", "bert", *db]), "--models zoo")
    bad = ["difftest", "run", "--models", "zoo", "--architectures", "bert-huge", *db]
    assert_clean_error(cli.invoke(app, bad), "unknown bert-huge")
    wrong = ["difftest", "run", "--models", "zoo", "--converter", "tf2onnx", "--architectures", "bert", *db]
    assert_clean_error(cli.invoke(app, wrong), "a torch model")


def test_the_zoo_lists_every_architecture_and_whether_it_builds_here():
    listed = json.loads(CliRunner().invoke(app, ["difftest", "zoo", "--json"]).stdout)
    assert [r["architecture"] for r in listed] == list(CATALOG)
    by_library = {r["library"]: r for r in listed}
    assert by_library["transformers"]["available"] and by_library["keras"]["available"]
    families = {r["family"] for r in listed}
    assert {"encoder", "decoder", "encoder-decoder", "vision", "convolutional"} <= families
    assert len([r for r in listed if r["library"] == "transformers"]) >= 20
    for row in listed:
        assert row["available"] or row["why_not"]  # torchvision beside a torch it was not built for


def test_every_architecture_names_a_class_its_library_has():
    import tensorflow as tf
    import transformers

    for arch in CATALOG.values():
        if arch.library == "transformers":
            assert hasattr(transformers, arch.model) and hasattr(transformers, arch.config), arch.name
        elif arch.library == "keras":
            assert hasattr(tf.keras.applications, arch.model), arch.name


def test_the_zoo_file_is_checked(tmp_path):
    path = tmp_path / "zoo.toml"
    path.write_text('[[architecture]]\nname = "x"\nfamily = "encoder"\nlibrary = "transformers"\nkind = "txt"\n')
    with pytest.raises(IssuemineError, match="no such kind"):
        load_catalog(path)
    entry = 'name = "x"\nfamily = "e"\nlibrary = "keras"\nkind = "keras"\nmodel = "M"\nwidth = 3\n'
    path.write_text(f"[[architecture]]\n{entry}")
    with pytest.raises(IssuemineError, match="unknown fields"):
        load_catalog(path)
    assert np.all([a.framework in ("torch", "tensorflow") for a in CATALOG.values()])
