"""Bad input is one line, names the value and what is accepted, and changes nothing in the database.

Each case is one of the red-team pass's findings (issue 24): files a user might hand `load` or
`labels import`, references to issues, a read-only database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from issuemine.cli.app import app
from issuemine.db import open_db

ISSUE = {
    "id": 11,
    "number": 5,
    "title": "export fails",
    "body": "text",
    "state": "closed",
    "created_at": "2022-01-01T00:00:00Z",
    "closed_at": "2022-01-02T00:00:00Z",
    "html_url": "https://github.com/pytorch/pytorch/issues/5",
    "user": {"login": "someone"},
    "labels": [],
    "comments": 0,
}


def record(issue: dict[str, Any] | None = None, **extra: Any) -> str:
    return json.dumps({"repository": "pytorch/pytorch", "issue": issue or ISSUE, **extra}) + "\n"


BAD_LOADS = {
    "bad-date.jsonl": (record({**ISSUE, "created_at": "2022-13-45"}), "'created_at' is not a date: '2022-13-45'"),
    "timeline-strings.jsonl": (record(timeline=["x", 1]), "timeline event 0 must be a JSON object"),
    "timeline-date.jsonl": (
        record(timeline=[{"event": "commented", "id": 3, "created_at": "yesterday"}]),
        "'timeline[0].created_at' is not a date",
    ),
    "deep.jsonl": ("[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    "huge-number.jsonl": (record({**ISSUE, "number": 10**20}), "out of range (1 to 2147483647)"),
    "huge-id.jsonl": (record({**ISSUE, "id": 10**20}), "'id' must be an integer from 1 to 2**63-1"),
    "number-as-text.jsonl": (record({**ISSUE, "number": "5"}), "'number' must be an integer, not '5'"),
    "negative-number.jsonl": (record({**ISSUE, "number": -5}), "issue number -5 out of range"),
    "bad-repository.jsonl": (
        json.dumps({"repository": "not a repo!!", "issue": ISSUE}) + "\n",
        "not a repository name: 'not a repo!!'",
    ),
    "comments-list.jsonl": (record({**ISSUE, "comments": []}), "'comments' must be a count"),
    "other-host.csv": ("url\nhttps://evil.example.com/pytorch/pytorch/issues/5\n", "not a github.com issue URL"),
    "big-field.csv": ('repo,number\n"' + "x" * (10 * 1024 * 1024) + '",5\n', "field larger than field limit"),
    "ragged.csv": ("repo,number\npytorch/pytorch,5,extra\n", "line 2: more fields than the header's 2"),
}


def tables(db_path: Path) -> dict[str, int]:
    """Every table's row count: what "the database is unchanged" is checked against."""
    database = open_db(str(db_path))
    try:
        names = inspect(database.engine).get_table_names()
        with database.engine.connect() as conn:
            return {n: conn.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names}
    finally:
        database.close()


def one_line_error(result: Any, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output and "\x1b" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def loaded(cli, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """A database holding one loaded issue (so "unchanged" means something)."""
    good = tmp_path / "good.jsonl"
    good.write_text(record({**ISSUE, "number": 7, "id": 12}))
    db_path = tmp_path / "bad.db"
    assert cli.invoke(app, ["load", str(good), "--db", str(db_path)]).exit_code == 0
    return db_path


@pytest.mark.parametrize("name", sorted(BAD_LOADS))
def test_a_bad_file_to_load_is_one_line_and_changes_nothing(cli, tmp_path: Path, loaded: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    content, needle = BAD_LOADS[name]
    path = tmp_path / name
    # A good record first: refused files are loaded in one transaction, all or nothing.
    path.write_text(content if name.endswith(".csv") else record() + content)
    before = tables(loaded)
    one_line_error(cli.invoke(app, ["load", str(path), "--db", str(loaded)]), needle)
    assert tables(loaded) == before


def test_loading_a_directory_is_one_line(cli, tmp_path: Path, loaded: Path) -> None:  # type: ignore[no-untyped-def]
    one_line_error(cli.invoke(app, ["load", str(tmp_path), "--db", str(loaded)]), "is a directory")


def test_label_files_refuse_repeated_ragged_and_deep_rows(cli, tmp_path: Path, loaded: Path) -> None:  # type: ignore[no-untyped-def]
    url = "https://github.com/pytorch/pytorch/issues/5"
    cases = {
        "repeated.csv": (f"url,stage,symptom,cause\n{url},1,1,1\n{url},2,1,1\n", "line 3: repeats line 2"),
        "ragged.csv": (f"url,stage\n{url}\n", "fewer fields than the header's 2"),
        "deep.json": ("[" * 100_000, "nested too deeply"),
        "negative.csv": (f"url,stage,symptom,cause\n{url},-1,1,1\n", "unknown stage '-1'"),
    }
    before = tables(loaded)
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        result = cli.invoke(app, ["labels", "import", str(path), "--rater", "ana", "--db", str(loaded)])
        one_line_error(result, needle)
    assert tables(loaded) == before


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        (["repro", "show", "owner/repo#99999999999999999999"], "out of range"),
        (["repro", "show", "99999999999999999999"], "no issue 99999999999999999999"),
        (["repro", "show", "https://evil.example.com/o/r/issues/3"], "not a github.com issue URL"),
        (["difftest", "run", "--seed", "99999999999999999999999"], None),
    ],
)
def test_references_out_of_range_are_refused_in_one_line(cli, loaded: Path, command: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    result = cli.invoke(app, [*command, "--db", str(loaded)])
    if needle is None:  # typer's own range check, in its usage box
        assert result.exit_code == 2 and "Traceback" not in result.output and "2147483647" in result.output
    else:
        one_line_error(result, needle)


def test_a_read_only_database_is_one_line(cli, tmp_path: Path, loaded: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "more.jsonl"
    path.write_text(record({**ISSUE, "number": 8, "id": 13}))
    before = tables(loaded)
    read_only = f"sqlite:///file:{loaded}?mode=ro&uri=true"
    result = cli.invoke(app, ["load", str(path), "--db", read_only])
    one_line_error(result, "the database refused the change", "readonly database")
    assert tables(loaded) == before


def test_a_codebook_number_must_be_positive(tmp_path: Path) -> None:
    from issuemine.domain.taxonomy import load_taxonomy

    source = Path(__file__).resolve().parents[2] / "taxonomy"
    copy = tmp_path / "taxonomy"
    copy.mkdir()
    for file in source.glob("*.toml"):
        content = file.read_text()
        if file.name == "stage.toml":
            content = content.replace("number = 1\n", "number = -1\n", 1)
        (copy / file.name).write_text(content)
    _, problems = load_taxonomy(copy, strict=False)
    assert any("'number' must be a positive integer, not -1" in p for p in problems), problems


READERS = [
    ["status"],
    ["analyze", "--sample", "study"],
    ["repro", "report"],
    ["repro", "show", "pytorch/pytorch#5"],
    ["difftest", "report"],
    ["difftest", "replicate"],
    ["quality", "report"],
    ["labels", "export"],
    ["agree", "--sample", "study"],
    ["export"],
]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_a_command_that_reads_creates_no_database(cli, tmp_path: Path, command: list[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ISSUEMINE_DB", raising=False)
    one_line_error(cli.invoke(app, [*command, "--db", "fresh.db"]), "no database at fresh.db (given with --db)")
    # Without --db: the default file, and the error says where the name came from.
    one_line_error(cli.invoke(app, command), "no database at issuemine.db (the default: set ISSUEMINE_DB or give --db)")
    monkeypatch.setenv("ISSUEMINE_DB", str(tmp_path / "env.db"))
    one_line_error(cli.invoke(app, command), f"no database at {tmp_path / 'env.db'} (from ISSUEMINE_DB)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_reruns_and_reports_before_extraction_say_what_to_run_first(cli, loaded: Path) -> None:  # type: ignore[no-untyped-def]
    db = ["--db", str(loaded)]
    one_line_error(
        cli.invoke(app, ["repro", "report", *db]), "no snippets extracted yet: run `issuemine repro extract` first"
    )
    one_line_error(cli.invoke(app, ["repro", "run", *db]), "no snippets extracted yet: run `issuemine repro extract`")


def test_a_missing_option_is_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    one_line_error(cli.invoke(app, ["label"]), "Missing option '--sample'.", "(see `issuemine label --help`)")
    one_line_error(cli.invoke(app, ["difftest", "run", "--jobs", "x"]), "Invalid value for '--jobs'")


@pytest.mark.parametrize("command", [["difftest", "run"], ["repro", "run"], ["repro", "env", "build"]], ids=" ".join)
def test_help_keeps_square_brackets(cli, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    # Help goes through Rich markup: an unescaped [ray] would vanish from the install hint.
    shown = cli.invoke(app, [*command, "--help"], env={"COLUMNS": "250"}).output
    assert "issuemine[ray]" in shown or "[difftest] packages" in shown, shown
