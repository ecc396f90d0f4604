"""Converted-model quality, for real: models trained here, converted by torch.onnx, tf2onnx and
coremltools, run in onnxruntime, attacked with ART. Assertions are about properties (accuracy far
above chance, a correct conversion predicts the same, a perturbed one does not), never timings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from issuemine.cli.app import app
from issuemine.db import open_db
from issuemine.quality import store
from issuemine.quality.data import digits
from issuemine.quality.measure import Settings, agreement
from issuemine.quality.models import train
from issuemine.quality.suite import run_suite
from issuemine.quality.targets import NOT_ON_THIS_PLATFORM, convert, onnx_predict, onnx_session
from tests.cli.test_cli import assert_clean_error
from tests.helpers import markdown_tables

EPOCHS = {"torch": 15, "keras": 8}


@pytest.fixture(scope="module")
def suite_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One quick suite (a torch MLP and a Keras CNN with batch norm and dropout), shared read-only."""
    folder = tmp_path_factory.mktemp("quality")
    path = folder / "quality.db"
    db = open_db(str(path))
    torch_run = run_suite(db, ["torch"], folder / "work", 0, Settings.quick(), EPOCHS, ("mlp",))
    keras_run = run_suite(db, ["keras"], folder / "work", 0, Settings.quick(), EPOCHS, ("cnn-bn-dropout",))
    db.close()
    assert torch_run.models == ["torch-mlp"] and keras_run.models == ["keras-cnn-bn-dropout"]
    assert set(torch_run.timings) == {"training", "conversion", "measurement", "attacks"}
    return path, folder / "work", keras_run.suite


def rows_of(path: Path) -> list[dict]:  # type: ignore[type-arg]
    db = open_db(str(path))
    try:
        found = []
        for suite in {r[0] for r in db.engine.connect().exec_driver_sql("SELECT DISTINCT suite FROM quality_runs")}:
            found += store.measurements(db, suite)
        return found
    finally:
        db.close()


def value(rows, model, target, metric, setting=""):  # type: ignore[no-untyped-def]
    found = [
        r for r in rows if (r["model"], r["target"], r["metric"], r["setting"]) == (model, target, metric, setting)
    ]
    assert len(found) == 1, (model, target, metric, setting)
    return found[0]


def test_trained_models_are_far_above_chance_and_correct_conversions_agree(suite_db):
    rows = rows_of(suite_db[0])
    for model, targets in (
        ("torch-mlp", ("onnx-torchscript", "onnx-dynamo")),
        ("keras-cnn-bn-dropout", ("onnx-tf2onnx",)),
    ):
        assert value(rows, model, "original", "accuracy")["value"] > 0.6  # chance is 0.1
        for target in targets:
            assert value(rows, model, target, "converted")["value"] == 1.0
            assert value(rows, model, target, "changed_predictions")["value"] == 0
            assert value(rows, model, target, "max_abs_diff")["value"] < 1e-4
            assert (
                value(rows, model, target, "accuracy")["value"] == value(rows, model, "original", "accuracy")["value"]
            )
            assert value(rows, model, target, "size")["value"] > 0


def test_core_ml_is_sized_not_invented(suite_db):
    rows = rows_of(suite_db[0])
    converted = value(rows, "torch-mlp", "coreml", "converted")
    assert converted["value"] == 1.0 and converted["route"].startswith("coremltools.convert")
    assert value(rows, "torch-mlp", "coreml", "size")["value"] > 0
    accuracy = value(rows, "torch-mlp", "coreml", "accuracy")
    assert accuracy["value"] is None and accuracy["note"] == NOT_ON_THIS_PLATFORM
    keras = value(rows, "keras-cnn-bn-dropout", "coreml", "converted")
    assert keras["value"] == 1.0 or keras["note"]  # a failed route is a finding with its error


def test_timings_memory_and_attacks_are_recorded_with_their_spread(suite_db):
    rows = rows_of(suite_db[0])
    for target in ("original", "onnx-torchscript"):
        for batch in (1, 32):
            latency = value(rows, "torch-mlp", target, "latency_p50_ms", f"batch={batch},threads=1")
            assert latency["low"] <= latency["value"] <= latency["high"] and latency["value"] > 0
        assert value(rows, "torch-mlp", target, "peak_memory_mb", "batch=32")["value"] > 10
    for target in ("original", "onnx-dynamo"):
        success = value(rows, "torch-mlp", target, "attack_success", "attack=pgd,eps=0.1")["value"]
        assert 0 <= success <= 1
    fools = value(rows, "torch-mlp", "onnx-dynamo", "fools_converted_only", "attack=fgsm,eps=0.1")["value"]
    assert fools == 0  # identical logits: an example fools both or neither
    versions = rows[0]["versions"]
    assert versions["torch"] != "missing" and versions["onnxruntime"] != "missing" and "python" in versions


def test_a_perturbed_converted_model_is_detected(tmp_path):
    import onnx
    from onnx import numpy_helper

    data = digits(0)
    trained = train("torch", "mlp", data, 0, 10, tmp_path)
    result = convert("torch", trained.model, data.x_test, "onnx-torchscript", tmp_path, "m")
    assert result.path is not None
    before = onnx_predict(onnx_session(result.path), data.x_test)
    model = onnx.load(str(result.path))
    last = model.graph.initializer[-1]  # the output layer's bias: shift one class up
    bias = numpy_helper.to_array(last).copy()
    bias[3] += 5.0
    last.CopyFrom(numpy_helper.from_array(bias, last.name))
    perturbed = tmp_path / "perturbed.onnx"
    onnx.save(model, str(perturbed))
    after = onnx_predict(onnx_session(perturbed), data.x_test)
    found = agreement(before, after)
    assert found["changed_predictions"][0] > 10 and found["max_abs_diff"][0] == pytest.approx(5.0, abs=1e-4)
    assert agreement(before, before)["changed_predictions"][0] == 0


def test_quality_model_on_a_users_file_and_its_errors(suite_db, tmp_path):
    path = tmp_path / "q.db"
    shutil.copy(suite_db[0], path)
    model = suite_db[1] / "models" / "torch-mlp.pt"
    data = digits(0)
    npz = tmp_path / "data.npz"
    np.savez(npz, x=data.x_test[:100], y=data.y_test[:100])
    cli = CliRunner()
    result = cli.invoke(
        app,
        [
            *("quality", "model", str(model), "--input-shape", "1,1,8,8", "--data", str(npz), "--quick"),
            *("--db", str(path), "--workdir", str(tmp_path / "work")),
        ],
    )
    assert result.exit_code == 0, result.output
    # The frameworks' own notices (coremltools' version warnings, the exporters' logs) go to a log
    # file in the work folder, not among the command's output.
    assert (tmp_path / "work" / "frameworks.log").exists()
    assert "has not been tested with coremltools" not in result.output
    report = json.loads(cli.invoke(app, ["quality", "report", "--format", "json", "--db", str(path)]).stdout)
    assert report["suite"].startswith("model-")
    targets = {r["target"]: r for r in report["rows"]}
    assert targets["original"]["accuracy"] > 0.6
    assert targets["onnx-torchscript"]["changed"] == 0
    # torch.export cannot take a TorchScript module: the dynamo route fails, and says so.
    assert targets["onnx-dynamo"]["converted"] is False and targets["onnx-dynamo"]["note"]

    corrupt = tmp_path / "broken.pt"
    corrupt.write_bytes(b"not a model at all" * 10)
    args = ["--input-shape", "1,1,8,8", "--db", str(path)]
    assert_clean_error(cli.invoke(app, ["quality", "model", str(corrupt), *args]), "broken.pt: not a TorchScript")
    assert_clean_error(
        cli.invoke(app, ["quality", "model", str(model), "--input-shape", "1,3,32,32", "--db", str(path)]),
        "does not accept inputs of shape (1, 3, 32, 32)",
    )
    bad = tmp_path / "bad.npz"
    np.savez(bad, inputs=data.x_test[:5])
    assert_clean_error(
        cli.invoke(app, ["quality", "model", str(model), *args, "--data", str(bad)]), "no array named 'x'"
    )
    assert_clean_error(cli.invoke(app, ["quality", "model", str(model), "--input-shape", "one", "--db", str(path)]))


def test_report_renders_in_every_format_and_in_the_analysis_report(suite_db, tmp_path):
    path = tmp_path / "q.db"
    shutil.copy(suite_db[0], path)
    cli = CliRunner()
    md = cli.invoke(app, ["quality", "report", "--suite", suite_db[2], "--db", str(path)])
    assert md.exit_code == 0 and "keras-cnn-bn-dropout" in md.stdout and "onnx-tf2onnx" in md.stdout
    header = markdown_tables(md.stdout)[0][0]
    # Memory as what inference adds (the process peak mostly measures importing the framework), and
    # per attack the examples that fool only one of the two models: the ICSME question.
    assert "inference MB" in header and "peak MB" not in header
    assert any(h.endswith("fools original only") for h in header) and any(
        h.endswith("fools converted only") for h in header
    )
    csv_out = cli.invoke(
        app, ["quality", "report", "--suite", suite_db[2], "--format", "csv", "--db", str(path)]
    ).stdout
    assert csv_out.splitlines()[0].startswith("model,target,route,accuracy")
    assert_clean_error(cli.invoke(app, ["quality", "report", "--format", "xml", "--db", str(path)]), "--format")
    assert_clean_error(cli.invoke(app, ["quality", "report", "--suite", "nosuch", "--db", str(path)]), "nosuch")

    labels = Path(__file__).resolve().parents[2] / "data" / "study-labels.csv"
    assert cli.invoke(app, ["labels", "import", str(labels), "--rater", "study", "--db", str(path)]).exit_code == 0
    result = cli.invoke(app, ["analyze", "--out", str(tmp_path / "report"), "--db", str(path)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Converted-model quality" in html and "keras-cnn-bn-dropout" in html
    assert (tmp_path / "report" / "figures" / "quality-ratios.pdf").exists()
    assert (tmp_path / "report" / "tables" / "quality.tex").exists()


def test_every_torch_architecture_converts_with_a_dynamic_batch(tmp_path):
    # Exported from one example, torch.export fixes a batch of 1 as a constant and rejects the
    # dynamic batch dimension; the harness must not report that as the converter's failure.
    from issuemine.quality.models import ARCHITECTURES, torch_model

    x = digits(0).x_test
    for architecture in ARCHITECTURES:
        model = torch_model(architecture).eval()
        for target in ("onnx-torchscript", "onnx-dynamo"):
            result = convert("torch", model, x, target, tmp_path, architecture)
            assert result.error is None, (architecture, target, result.error)
            assert onnx_predict(onnx_session(result.path), x[:32]).shape == (32, 10)
