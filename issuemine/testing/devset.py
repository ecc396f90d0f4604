"""The development set: fixture threads written in the image of the study's labeled issues, with
the study's human labels as their answers.

Each file of ``tests/devset/threads/`` is a thread in the format of :mod:`issuemine.testing.threads`
whose front matter names only the real issue it imitates (``imitates``), its converter and a
paraphrased title. Its expected stage, symptom and cause are *not* in the file: they are joined
here from the study's labels (``data/study-labels.csv``) by the imitated issue's address, so no
expectation can have been written from the rules it measures.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from issuemine.domain.stages import rule_name
from issuemine.domain.taxonomy import parse_label_row, taxonomy
from issuemine.errors import IssuemineError
from issuemine.resources import data_dir
from issuemine.testing.threads import Thread, load_thread

DEVSET = Path(__file__).resolve().parents[2] / "tests" / "devset" / "threads"
# Threads in the image of the study's 50 labeled issues without a title, kept apart: the stage
# rules were not calibrated on them.
HELDOUT_DIR = DEVSET.parent / "heldout"


@dataclass
class DevThread:
    thread: Thread
    url: str
    title: str
    labels: dict[str, str]  # stage, symptom, cause (and subcause): the study's codes

    @property
    def converter(self) -> str:
        return self.thread.converter

    @property
    def text(self) -> str:
        """Title, body and comments, as a rater reads the thread."""
        return "\n\n".join([self.title, *(markdown for _, markdown in self.thread.posts)])


def study_labels() -> dict[str, dict[str, str]]:
    """The study's codes per issue address."""
    known = taxonomy()
    found: dict[str, dict[str, str]] = {}
    with (data_dir() / "study-labels.csv").open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), 2):
            found[row["url"].rstrip("/")] = parse_label_row(known, row, f"study-labels.csv:{line}")
    return found


def load_devset(folder: Path = DEVSET) -> list[DevThread]:
    labels = study_labels()
    threads = []
    for path in sorted(folder.glob("*.md")):
        if path.name == "README.md":
            continue
        thread = load_thread(path)
        url = str(thread.expected.get("imitates", "")).rstrip("/")
        if url not in labels:
            raise IssuemineError(f"{path}: imitates {url!r}, which the study did not label")
        threads.append(DevThread(thread, url, str(thread.expected.get("title", "")), labels[url]))
    return threads


@dataclass
class StageReading:
    thread: DevThread
    stage: str | None  # None: no readable traceback in the thread
    how: str | None


def read_stages(threads: list[DevThread]) -> list[StageReading]:
    """The stage each thread's first readable pasted traceback implies, with the rule that decided."""
    from issuemine.domain.converters import knowledge
    from issuemine.domain.stages import infer_stage
    from issuemine.domain.tracebacks import parse_traceback
    from issuemine.repro.extract import extract

    rules = knowledge().stages
    readings = []
    for item in threads:
        stage = how = None
        for text in extract(list[tuple[str, str | None]](item.thread.posts)).tracebacks:
            error = parse_traceback(str(text))
            if error:
                stage, how = infer_stage(error, str(text), rules)
                break
        readings.append(StageReading(item, stage, how))
    return readings


def stage_agreement(readings: list[StageReading]) -> dict[str, object]:
    """Agreement of the stages read with the human stage on the threads that have a readable
    traceback: counts, the confusion table (human, read) and, per deciding rule, how often the
    humans agreed when it fired."""
    read = [r for r in readings if r.stage is not None]
    agree = sum(1 for r in read if r.stage == r.thread.labels.get("stage"))
    confusion: dict[tuple[str, str], int] = {}
    rules: dict[str, list[int]] = {}
    for r in read:
        key = (r.thread.labels.get("stage", "?"), str(r.stage))
        confusion[key] = confusion.get(key, 0) + 1
        hits = rules.setdefault(rule_name(r.how or ""), [0, 0])
        hits[0] += r.stage == r.thread.labels.get("stage")
        hits[1] += 1
    return {
        "threads": len(readings),
        "read": len(read),
        "agree": agree,
        "share": agree / len(read) if read else 0.0,
        "confusion": dict(sorted(confusion.items())),
        "rules": {name: tuple(v) for name, v in sorted(rules.items(), key=lambda kv: -kv[1][1])},
    }
