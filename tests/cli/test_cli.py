"""Every command: --help, a normal run, error runs (one line, non-zero, no traceback)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from issuemine.cli.app import app
from issuemine.testing.ghserver.corpus import build_corpus
from issuemine.testing.ghserver.server import GitHubTestServer


def _command_paths() -> list[str]:
    """Every command of the app, found by walking it (a new command cannot go without a help test)."""
    import typer.main

    from issuemine.cli.app import load_command

    root = typer.main.get_command(app)
    paths: list[str] = []

    def walk(prefix: str, command: Any) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(None):  # typer's groups read no context to list
                walk(f"{prefix} {name}".strip(), command.get_command(None, name))
        else:
            paths.append(prefix)

    for name in root.list_commands(None):
        walk(name, load_command(name))
    return paths


COMMANDS = _command_paths()


def test_the_walk_finds_every_command():
    # Nested groups and single commands alike; a stand-in for the hand-kept list this replaced.
    assert {"fetch", "taxonomy show", "labels import", "repro env build", "repro file", "demo"} <= set(COMMANDS)
    assert len(COMMANDS) == len(set(COMMANDS)) >= 24


def run(cli, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return cli.invoke(app, list(args), env=env or {}, catch_exceptions=False)


def assert_clean_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(cli, command):
    result = run(cli, *command.split(), "--help")
    assert result.exit_code == 0
    assert "Example: issuemine " in result.output, f"{command} --help shows no example"
    assert "Usage:" in result.output
    # The docstring's first line is the help: a command without one is a defect.
    assert len(result.output.split("Usage:")[1].strip().splitlines()) > 3


def test_converters_lists_the_catalog(cli):
    result = run(cli, "converters", "--json")
    names = {c["name"] for c in json.loads(result.stdout)}
    assert {"torch.onnx", "tf2onnx", "paddle2onnx", "sklearn-onnx", "onnx-tensorflow", "onnx2torch"} <= names
    torch = next(c for c in json.loads(result.stdout) if c["name"] == "torch.onnx")
    assert torch["repo"] == "pytorch/pytorch" and torch["include_labels"] == ["module: onnx"]


def test_user_catalog_adds_a_converter(cli, tmp_path):
    extra = tmp_path / "mine.toml"
    extra.write_text('[converters."my-conv"]\nrepo = "me/conv"\nstate = "all"\n')
    result = run(cli, "converters", "--json", "--catalog", str(extra))
    mine = next(c for c in json.loads(result.stdout) if c["name"] == "my-conv")
    assert mine["repo"] == "me/conv" and mine["own_repos"] == ["me/conv"]


def test_fetch_filter_sample_status(cli, gh, db_path, tmp_path):
    db = str(db_path)
    result = run(cli, "fetch", "torch.onnx", "tf2onnx", "--api-url", gh.url, "--db", db, "--json")
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert [r["status"] for r in reports] == ["completed", "completed"]
    result = run(cli, "filter", "--db", db, "--json")
    filters = {f["converter"]: f for f in json.loads(result.stdout)["filters"]}
    assert filters["torch.onnx"]["kept"] > 0 and filters["tf2onnx"]["kept"] > 0
    result = run(cli, "sample", "--per-converter", "20", "--seed", "7", "--name", "study", "--db", db, "--json")
    assert json.loads(result.stdout)["members"] == {"torch.onnx": 20, "tf2onnx": 20}
    status = json.loads(run(cli, "status", "--db", db, "--json").stdout)
    assert [s["name"] for s in status["samples"]] == ["study"]
    assert {r["converter"]: r["status"] for r in status["last_fetch"]} == {
        "torch.onnx": "completed",
        "tf2onnx": "completed",
    }
    human = run(cli, "status", "--db", db)
    assert "pytorch/pytorch" in human.output and "study" in human.output


def test_unknown_converter(cli, db_path):
    result = run(cli, "fetch", "nosuch", "--db", str(db_path))
    assert_clean_error(result, "unknown converter 'nosuch'", "torch.onnx")


def test_unreachable_api(cli, db_path):
    result = run(cli, "fetch", "tf2onnx", "--api-url", "http://127.0.0.1:9", "--max-retries", "0", "--db", str(db_path))
    assert_clean_error(result, "http://127.0.0.1:9", "cannot connect")


def test_bad_token_and_token_secrecy(cli, db_path):
    secret = "ghp_SECRETTOKEN1234567890"
    server = GitHubTestServer(build_corpus({"onnx/tensorflow-onnx": 30}), token=secret).start()
    try:
        result = run(
            cli, "fetch", "tf2onnx", "--api-url", server.url, "--token", "ghp_wrongtoken", "--db", str(db_path)
        )
        assert_clean_error(result, "401 Bad credentials", "GITHUB_TOKEN")
        assert "ghp_wrongtoken" not in result.output
        result = run(
            cli,
            "fetch",
            "tf2onnx",
            "--api-url",
            server.url,
            "--db",
            str(db_path),
            "--json",
            env={"GITHUB_TOKEN": secret},
        )
        assert result.exit_code == 0, result.output
        assert secret not in result.output
        status = run(cli, "status", "--db", str(db_path), "--json")
        assert secret not in status.output
    finally:
        server.stop()
    for path in db_path.parent.glob("issuemine.db*"):
        assert secret.encode() not in path.read_bytes()


def test_corrupt_database_file(cli, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database at all" * 100)
    assert_clean_error(run(cli, "status", "--db", str(bad)), "cannot open database", "not a database")


def test_database_from_a_newer_schema(cli, db_path):
    from issuemine.db import open_db

    open_db(str(db_path)).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    assert_clean_error(run(cli, "status", "--db", str(db_path)), "9999_future", "upgrade issuemine")


def test_missing_database_folder(cli, tmp_path):
    # A command that writes says the folder is missing; one that reads, that there is no database.
    missing = str(tmp_path / "nope" / "x.db")
    assert_clean_error(run(cli, "load", str(tmp_path / "x.jsonl"), "--db", missing), "does not exist")
    assert_clean_error(run(cli, "status", "--db", missing), f"no database at {missing}")


def test_db_from_environment(cli, tmp_path):
    from issuemine.db import open_db

    target = tmp_path / "env.db"
    open_db(str(target)).close()
    result = run(cli, "status", "--json", env={"ISSUEMINE_DB": str(target)})
    assert result.exit_code == 0 and target.exists()
    assert json.loads(result.stdout)["database"].endswith("env.db")


def test_sample_errors(cli, db_path):
    assert_clean_error(run(cli, "sample", "--seed", "1", "--name", "x", "--db", str(db_path)), "no eligible issues")


def test_filter_validate(cli, gh, corpus, db_path, tmp_path):
    db = str(db_path)
    run(cli, "fetch", "torch.onnx", "--api-url", gh.url, "--db", db)
    run(cli, "filter", "--db", db)
    repo = corpus.repos["pytorch/pytorch"]
    eligible = [
        n
        for n, i in sorted(repo.issues.items())
        if "pull_request" not in i and i["state"] == "closed" and "module: onnx" in {x["name"] for x in i["labels"]}
    ][:50]
    # Hand labels: the corpus's intent, with two kept issues marked not-a-failure and two
    # dropped ones marked failure, so P = R = (kept - 2) / kept exactly.
    kept = [n for n in eligible if corpus.truth[("pytorch/pytorch", n)] is not None]
    dropped = [n for n in eligible if corpus.truth[("pytorch/pytorch", n)] is None]
    hand = tmp_path / "hand.csv"
    lines = ["url,is_failure"]
    for n in eligible:
        failure = (n in kept) != (n in kept[:2] or n in dropped[:2])
        lines.append(f"https://github.com/pytorch/pytorch/issues/{n},{'yes' if failure else 'no'}")
    hand.write_text("\n".join(lines) + "\n")
    result = run(cli, "filter", "--db", db, "--validate", str(hand), "--json")
    overall = json.loads(result.stdout)["validation"][-1]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (len(kept) - 2, 2, 2)
    assert overall["precision"] == pytest.approx((len(kept) - 2) / len(kept))
    bad = tmp_path / "bad.csv"
    bad.write_text("url,is_failure\nhttps://github.com/pytorch/pytorch/issues/1,maybe\n")
    assert_clean_error(run(cli, "filter", "--db", db, "--validate", str(bad)), "line 2", "maybe")


def test_export_then_load_round_trip(cli, gh, db_path, tmp_path):
    from issuemine.db import open_db
    from tests.helpers import snapshot

    run(cli, "fetch", "tf2onnx", "--api-url", gh.url, "--db", str(db_path))
    dump = tmp_path / "corpus.jsonl"
    assert run(cli, "export", str(dump), "--db", str(db_path)).exit_code == 0
    other = tmp_path / "other.db"
    result = run(cli, "load", str(dump), "--db", str(other), "--json")
    assert json.loads(result.stdout)["issues"] == len(dump.read_text().splitlines())
    a, b = open_db(str(db_path)), open_db(str(other))
    assert snapshot(a) == snapshot(b)


def test_load_rejects_a_bad_file_whole(cli, db_path, tmp_path):
    good = {"repository": "o/r", "issue": {"id": 1, "number": 1, "title": "t", "state": "closed"}}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n{not json\n")
    assert_clean_error(run(cli, "load", str(bad), "--db", str(db_path)), "line 2")
    status = json.loads(run(cli, "status", "--db", str(db_path), "--json").stdout)
    assert status["repositories"] == []


def test_demo(cli, tmp_path: Path):
    result = run(cli, "demo", "--out", str(tmp_path / "demo"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    import csv

    from issuemine.resources import data_dir

    urls = set()
    for name in ("study-labels.csv", "pilot-ratings.csv", "drift-ratings.csv"):
        with open(data_dir() / name, encoding="utf-8") as fh:
            urls |= {row["url"] for row in csv.DictReader(fh)}
    assert data["loaded"] == len(urls)  # one stub per distinct issue across the three files
    repos = {r["repo"]: r["stubs"] for r in data["status"]["repositories"]}
    assert repos.pop("issuemine/examples") == 0  # the bundled snippets: issues with their text
    assert repos == {repo: sum(1 for u in urls if f"/{repo}/" in u) for repo in repos}
    samples = {s["name"]: s["members"] for s in data["status"]["samples"]}
    assert samples["demo"] == {"torch.onnx": 30, "tf2onnx": 30}
    assert sum(samples["pilot"].values()) == 60 and sum(samples["study"].values()) == 200
    pilot = {(a["dimension"], a["scope"]): a["kappa"] for a in data["agreement"]["pilot"]}
    assert round(pilot[("cause", "all")], 2) == 0.90 and round(pilot[("symptom", "all")], 2) == 0.95
    assert all(a["kappa"] == 1.0 for a in data["agreement"]["drift"])
    assert data["final_labels"] == 200
    assert Path(data["report"]).is_file() and "Table 10" in " ".join(data["tables"])
    verdicts = [(r["example"], r["verdict"], r["stage"]) for r in data["repro"]["runs"]]
    assert verdicts == [
        ("issuemine/examples#1 a_torchscript_passes.py", "passes", None),
        ("issuemine/examples#2 b_unsupported_operator.py", "crash", "node-conversion"),
        ("issuemine/examples#3 c_trace_crash.py", "crash", "load-model"),
        ("issuemine/examples#4 d_ort_refuses.py", "ort-load-fail", None),
        ("issuemine/examples#5 e_wrong_model.py", "wrong-model", None),
        ("issuemine/examples#6 g_not_runnable.py", "not-runnable", None),
        ("issuemine/examples#6 g_not_runnable.py (legacy-exporter)", "not-runnable", None),
    ]
    assert data["repro"]["versions"]["torch"].startswith("2.13") and data["repro"]["sandbox"] == "bwrap"
    # The verdicts are stored: repro show and repro report read them from the demo's database.
    db = ["--db", str(tmp_path / "demo" / "issuemine.db")]
    shown = run(cli, "repro", "show", "issuemine/examples#2", *db)
    assert shown.exit_code == 0 and "crash at stage node-conversion" in shown.output


def test_tables_off_a_terminal_are_never_cut(cli):
    result = run(cli, "converters")
    assert result.exit_code == 0
    assert "…" not in result.output and "fetch, label, analyze, repro, difftest, quality" in result.output
    codebook = run(cli, "taxonomy", "show", "cause")
    assert "…" not in codebook.output and "incompatibility" in codebook.output
