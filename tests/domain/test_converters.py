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
    ],
)
def test_invalid_catalogs_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(IssuemineError) as info:
        load_catalog([path])
    assert message in str(info.value) and "bad.toml" in str(info.value)


def test_a_later_file_overrides_an_entry(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('[converters."tf2onnx"]\nrepo = "fork/tensorflow-onnx"\nexclude_labels = ["wontfix"]\n')
    catalog = load_catalog([*default_catalog_paths(), mine])
    assert catalog["tf2onnx"].repo == "fork/tensorflow-onnx"
    assert catalog["tf2onnx"].fixing_repos() == {"fork/tensorflow-onnx"}
    assert catalog["torch.onnx"].repo == "pytorch/pytorch"


def test_resolve_names_the_unknown_and_the_known():
    with pytest.raises(IssuemineError, match=r"unknown converter 'nope' .*tf2onnx.*torch.onnx"):
        resolve(load_catalog(), ["torch.onnx", "nope"])


def test_missing_catalog_file(tmp_path):
    with pytest.raises(IssuemineError, match="catalog not found"):
        load_catalog([tmp_path / "none.toml"])
