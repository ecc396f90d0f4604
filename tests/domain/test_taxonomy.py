"""The taxonomy is data: valid as shipped, study spellings resolve, broken codebooks are caught."""

from __future__ import annotations

import shutil

import pytest

from issuemine.domain.taxonomy import default_taxonomy_dir, load_taxonomy, taxonomy
from issuemine.errors import IssuemineError


def test_bundled_taxonomy_is_valid_and_versioned():
    tax, problems = load_taxonomy(strict=False)
    assert problems == []
    assert tax.version and tax.order == ["stage", "symptom", "cause"]
    assert tax.label_dimensions() == ["stage", "symptom", "cause", "subcause"]
    assert len(tax.all_codes("cause")) == 14 and len(tax.all_codes("stage")) == 6


@pytest.mark.parametrize(
    ("dimension", "spelling", "code"),
    [
        ("stage", "Node Transformation", "node-conversion"),
        ("stage", "Tracer", "load-model"),
        ("stage", "Protobuf", "export"),
        ("stage", "Not Dis.", "not-distinguishable"),
        ("symptom", "Wrong Code", "wrong-model"),
        ("cause", "Incompatability", "incompatibility"),
        ("cause", "Incorrect Code Logic", "algorithmic-error"),
        ("cause", "10", "algorithmic-error"),
        ("cause", "3.0", "type-problem"),
        ("symptom", 5, "build-failure"),
    ],
)
def test_study_spellings_and_numbers_resolve(dimension, spelling, code):
    resolved = taxonomy().dimension(dimension).resolve(spelling)
    assert resolved is not None and resolved.code == code


def test_subtypes_belong_to_their_cause():
    tax = taxonomy()
    assert [s.code for s in tax.subtypes("incompatibility")] == ["incompatibility.internal", "incompatibility.external"]
    assert tax.resolve_subtype("type-problem", "3").code == "type-problem.conventional"
    assert tax.resolve_subtype("incompatibility", "Node") is None
    assert tax.subtypes("typo") == []


@pytest.fixture
def copy(tmp_path):  # type: ignore[no-untyped-def]
    target = tmp_path / "tax"
    shutil.copytree(default_taxonomy_dir(), target)
    return target


def test_check_finds_duplicate_codes_and_colliding_aliases(copy):
    stage = copy / "stage.toml"
    text = (
        stage.read_text()
        .replace('code = "export"', 'code = "validation"')
        .replace('aliases = ["Protobuf"', 'aliases = ["Tracer", "Protobuf"')
    )
    stage.write_text(text)
    _, problems = load_taxonomy(copy, strict=False)
    assert any("duplicate code 'validation'" in p for p in problems)
    assert any("alias 'Tracer'" in p for p in problems)
    with pytest.raises(IssuemineError, match="is invalid"):
        load_taxonomy(copy)


def test_a_users_own_taxonomy(copy):
    (copy / "taxonomy.toml").write_text('name = "mine"\nversion = "0.1"\ndimensions = ["symptom"]\n')
    tax = taxonomy(copy)
    assert tax.label_dimensions() == ["symptom"] and tax.version == "0.1"


def test_cli_taxonomy_show_and_check(cli):
    from issuemine.cli.app import app

    shown = cli.invoke(app, ["taxonomy", "show", "cause"])
    assert shown.exit_code == 0 and "Incompatibility" in shown.output and "Incompatability" in shown.output
    checked = cli.invoke(app, ["taxonomy", "check"])
    assert checked.exit_code == 0 and "is valid" in checked.output
