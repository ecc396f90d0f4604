"""The converter catalog is data: loaded, validated, overridable."""

from __future__ import annotations

import pytest

from issuemine.domain.converters import default_catalog_paths, load_catalog, resolve
from issuemine.errors import IssuemineError


def test_study_converters_follow_the_study_selection():
    catalog = load_catalog()
    torch, tf = catalog["torch.onnx"], catalog["tf2onnx"]
    assert (torch.repo, torch.include_labels, torch.exclude_labels, torch.state) == (
        "pytorch/pytorch",
        ("module: onnx",),
        (),
        "closed",
    )
    assert (tf.repo, tf.include_labels, set(tf.exclude_labels), tf.state) == (
        "onnx/tensorflow-onnx",
        (),
        {"pending on user response", "question"},
        "closed",
    )
    assert {"paddle2onnx", "sklearn-onnx", "onnx-tensorflow", "onnx2torch"} <= set(catalog)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[converters."x"]\nrepo = "noslash"\n', "'repo' must be 'owner/name'"),
        ('[converters."x"]\nrepo = "a/b"\nstate = "merged"\n', "'state' must be one of"),
        ('[converters."x"]\nrepo = "a/b"\ncolour = "red"\n', "unknown key(s) colour"),
        ('[converters."x"]\nrepo = "a/b"\ninclude_labels = "bug"\n', "'include_labels' must be a list"),
        ('[converters."x"\nrepo = ', "is not valid TOML"),
        ('[converters."x"]\nrepo = "a/b"\ntarget = "onnnx"\n', "'target' must be one of onnx, pytorch"),
        ('[converters."x"]\nrepo = "a/b"\nsource = "torch"\n', "'source' must be one of onnx, pytorch"),
    ],
)
def test_invalid_catalogs_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(IssuemineError) as info:
        load_catalog([path])
    assert message in str(info.value) and "bad.toml" in str(info.value)


def test_a_later_file_overrides_an_entry_and_says_so_once(tmp_path, capsys):
    mine = tmp_path / "mine.toml"
    mine.write_text('[converters."tf2onnx"]\nrepo = "fork/tensorflow-onnx"\nexclude_labels = ["wontfix"]\n')
    catalog = load_catalog([*default_catalog_paths(), mine])
    load_catalog([*default_catalog_paths(), mine])
    told = capsys.readouterr().err
    assert told.count(f"note: {mine} replaces the converter 'tf2onnx' of ") == 1
    assert catalog["tf2onnx"].repo == "fork/tensorflow-onnx"
    assert catalog["tf2onnx"].fixing_repos() == {"fork/tensorflow-onnx"}
    assert catalog["torch.onnx"].repo == "pytorch/pytorch"


def test_resolve_names_the_unknown_and_the_known():
    with pytest.raises(IssuemineError, match=r"unknown converter 'nope' .*tf2onnx.*torch.onnx"):
        resolve(load_catalog(), ["torch.onnx", "nope"])


def test_missing_catalog_file(tmp_path):
    with pytest.raises(IssuemineError, match="catalog not found"):
        load_catalog([tmp_path / "none.toml"])


def test_every_converter_says_what_it_converts_and_what_issuemine_can_do_with_it():
    catalog = load_catalog()
    assert (catalog["torch.onnx"].source, catalog["torch.onnx"].target) == ("pytorch", "onnx")
    assert (catalog["onnx2torch"].source, catalog["onnx2torch"].target) == ("onnx", "pytorch")
    assert (catalog["coremltools"].target, catalog["tflite-converter"].target) == ("coreml", "tflite")
    assert "difftest" in catalog["tf2onnx"].capabilities and "repro" in catalog["torch.onnx"].capabilities
    # onnx2torch: its snippets re-run ([reproduce]) and differential-tested (its file names an adapter);
    # paddle2onnx: neither, its issues are fetched and labeled only
    assert catalog["onnx2torch"].capabilities == ("fetch", "label", "analyze", "repro", "difftest")
    assert catalog["paddle2onnx"].capabilities == ("fetch", "label", "analyze")
    assert catalog["paddle2onnx"].capabilities == ("fetch", "label", "analyze")  # a tracker entry only


def test_converters_check_validates_a_file_and_says_what_it_defines(tmp_path):
    from typer.testing import CliRunner

    from issuemine.cli.app import app
    from tests.cli.test_cli import assert_clean_error

    mine = tmp_path / "o2t.toml"
    mine.write_text(
        '[converters."onnx2torch"]\nrepo = "ENOT-AutoDL/onnx2torch"\nsource = "onnx"\ntarget = "pytorch"\n'
        '[converters."onnx2torch".reproduce]\nsource_paths = ["onnx2torch/"]\n'
        '[[converters."onnx2torch".reproduce.entry]]\ncall = "onnx2torch.convert"\n'
    )
    runner = CliRunner()
    done = runner.invoke(app, ["converters", "--check", str(mine)])
    assert done.exit_code == 0, done.output
    assert f"{mine}: onnx2torch (onnx -> pytorch) ok: fetch, label, analyze, repro" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[converters."x"]\nrepo = "a/b"\ntarget = "onnnx"\n')
    assert_clean_error(runner.invoke(app, ["converters", "--check", str(bad)]), "'target' must be one of")
    bad.write_text('[converters."x"]\nrepo = "a/b"\ndifftest_adapter = "gone.py"\n')
    assert_clean_error(
        runner.invoke(app, ["converters", "--check", str(bad)]), "difftest_adapter 'gone.py': no such file"
    )
    assert_clean_error(runner.invoke(app, ["converters", "--check", str(tmp_path / "no.toml")]), "no such file")
