"""Bundled data and codebooks: one copy, found in the checkout and in an installed package alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from issuemine.domain.taxonomy import taxonomy
from issuemine.resources import data_dir, taxonomy_dir

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_reads_the_repository_folders():
    assert (data_dir() / "study-labels.csv").samefile(ROOT / "data" / "study-labels.csv")
    assert (taxonomy_dir() / "cause.toml").samefile(ROOT / "taxonomy" / "cause.toml")


def test_moving_the_data_does_not_move_the_taxonomy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ISSUEMINE_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert (taxonomy_dir() / "cause.toml").samefile(ROOT / "taxonomy" / "cause.toml")
    assert taxonomy().name  # still loads, from the bundled codebooks
    monkeypatch.setenv("ISSUEMINE_TAXONOMY", str(tmp_path / "mine"))
    assert taxonomy_dir() == tmp_path / "mine"
