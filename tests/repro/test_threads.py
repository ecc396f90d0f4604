"""Extraction and traceback reading on threads written in the image of real ones (tests/repro/threads/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from issuemine.domain.converters import knowledge
from issuemine.domain.stages import stage_from_pasted
from issuemine.repro.extract import extract
from issuemine.testing.threads import Thread, load_threads

THREADS = load_threads(Path(__file__).parent / "threads")


def pasted_stage(tracebacks: list[str]) -> str:
    """The stage the first readable pasted traceback implies ("" when there is none)."""
    return stage_from_pasted(tracebacks, knowledge().stages) or ""


def test_there_are_enough_threads_of_both_converters():
    converters = [t.converter for t in THREADS]
    assert len(THREADS) >= 50
    assert converters.count("torch.onnx") >= 20 and converters.count("tf2onnx") >= 20


@pytest.mark.parametrize("thread", THREADS, ids=lambda t: t.name)
def test_extraction_gives_the_expected_answer(thread: Thread):
    want = thread.expected
    candidate = extract(thread.posts)
    assert candidate.runnable == want["runnable"], candidate.reason
    if "reason" in want:
        assert (candidate.reason or "").startswith(want["reason"]), candidate.reason
    assert candidate.conversions == want["conversions"]
    assert sorted(r["kind"] for r in candidate.provenance.get("repairs", [])) == want["repairs"]
    if "exporter" in want:
        assert candidate.provenance.get("exporter") == want["exporter"]
    found = candidate.provenance.get("reported_versions", {})
    for package, version in want["versions"].items():
        assert found.get(package, "").startswith(version), (package, found)
    if candidate.runnable:
        compile(candidate.script, thread.name, "exec")  # the repaired script is still Python


@pytest.mark.parametrize("thread", THREADS, ids=lambda t: t.name)
def test_a_pasted_traceback_is_read_where_the_thread_has_one(thread: Thread):
    # Which stage it implies is measured against human labels on the development set
    # (tests/devset/), not against answers written here from the rules.
    assert bool(pasted_stage(extract(thread.posts).tracebacks)) == thread.expected["traceback"]


def test_one_bad_thread_never_stops_extraction():
    weird = "```bash\npython -m tf2onnx.convert --saved-model 'unclosed \\\n```\n"
    candidate = extract([("body", weird)])
    assert candidate.conversions == ["python -m tf2onnx.convert"]  # shlex gave up, the split did not
    assert extract([("body", None), ("comment:1", "\x00\ufffd```")]).reason  # odd bytes: a reason, no raise
