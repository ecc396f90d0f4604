"""The frameworks' own output goes to a log while a quality command runs, and nothing of it stays set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


def test_framework_output_goes_to_the_log_and_the_environment_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from issuemine.cli.quality import framework_output_to

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("TQDM_DISABLE", "0")  # the caller's own value is kept
    log = tmp_path / "frameworks.log"
    with framework_output_to(log):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2" and os.environ["TQDM_DISABLE"] == "0"
        os.write(1, b"C++ log line\n")
        print("a version notice", file=sys.stderr)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and os.environ["TQDM_DISABLE"] == "0"
    assert "C++ log line" in log.read_text() and "a version notice" in log.read_text()
