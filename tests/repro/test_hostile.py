"""Hostile snippets cannot spoil their neighbours' verdicts, forge events or stop the run server.

Each attack runs in the real warm sandbox, followed in the same server by an honest snippet whose
verdict must be the one it gets alone."""

from __future__ import annotations

import textwrap

from tests.repro.conftest import Harness

HONEST = "import sys\nprint('honest', sys.argv[0])\n"


def script(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def alone(warm: Harness) -> tuple[str, str | None]:
    outcome = warm.run(HONEST)
    return outcome.verdict.verdict, outcome.verdict.reason


def test_a_read_only_mess_is_the_snippets_violation_and_the_next_run_starts_clean(warm: Harness) -> None:
    expected = alone(warm)
    attack = script(
        """
        import os
        os.makedirs("trap/deeper", exist_ok=True)
        with open("trap/deeper/kept", "w") as handle:
            handle.write("x")
        os.makedirs("tf2onnx", exist_ok=True)
        with open("tf2onnx/__init__.py", "w") as handle:
            handle.write("raise SystemExit('planted')\\n")
        for path in ("trap/deeper", "trap", "tf2onnx", "."):
            os.chmod(path, 0o555)
        print("run in", os.getcwd())
        """
    )
    outcome = warm.run(attack)
    first_dir = outcome.result["tail"].split("run in ")[-1].strip()
    after = warm.run(HONEST + "import os\nprint('cwd', os.getcwd(), os.listdir('.'))\n")
    assert (after.verdict.verdict, after.verdict.reason) == expected
    assert first_dir not in after.result["tail"] and "trap" not in after.result["tail"]
    # Its events are its own: one start and one exit, none of the previous snippet's.
    assert [e["event"] for e in after.result["events"]] == ["start", "exit"]
    planted = warm.run("import tf2onnx, sys\nprint(tf2onnx.__file__)\n")
    assert "site-packages" in planted.result["tail"]


def test_forged_flooded_and_malformed_events_are_a_violation_not_a_server_failure(warm: Harness) -> None:
    expected = alone(warm)
    deep = script(
        """
        import os
        with open(os.environ["ISSUEMINE_EVENTS"], "a") as events:
            events.write("[" * 100000 + "]" * 100000 + "\\n")
            events.write('{"event": "convert", "status": "ok", "seconds": ' + "9" * 400 + "}\\n")
        """
    )
    outcome = warm.run(deep)
    assert outcome.verdict.verdict == "sandbox-violation", outcome.verdict.reason
    assert outcome.verdict.evidence["violation"] == "events"
    flood = script(
        """
        import json, os
        with open(os.environ["ISSUEMINE_EVENTS"], "a") as events:
            for i in range(20000):
                events.write(json.dumps({"event": "violation", "kind": "noise", "detail": str(i)}) + "\\n")
        """
    )
    flooded = warm.run(flood)
    assert flooded.verdict.verdict == "sandbox-violation"
    assert any(v.get("kind") == "events" for v in flooded.verdict.evidence["violations"])
    fifo = script(
        """
        import os
        path = os.environ["ISSUEMINE_EVENTS"]
        if os.path.exists(path):
            os.remove(path)
        os.mkfifo(path)
        print("made a fifo")
        """
    )
    blocked = warm.run(fifo)
    assert not blocked.result.get("timed_out") and blocked.verdict.evidence["violation"] == "events"
    assert alone(warm) == expected  # the server is still serving, honestly


def test_escape_sequences_in_snippet_output_never_reach_the_terminal(tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    from issuemine.cli.app import app

    snippet = tmp_path / "loud.py"
    snippet.write_text(
        "import sys\n"
        "sys.stdout.write('\\x1b[2J\\x1b]0;pwned\\x07\\x1b]52;c;ZWNobyBoaQ==\\x07\\rhidden\\n')\n"
        "raise SystemExit('\\x1b[31mred\\x1b[0m')\n"
    )
    result = cli.invoke(app, ["repro", "file", str(snippet), "--cold"])
    assert "\x1b" not in result.output and "\x07" not in result.output and "\r" not in result.output
    assert "\\x1b[2J" in result.output and "\\x1b]52;c;" in result.output


def test_errors_print_user_data_as_text_not_markup(tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    from issuemine.cli.app import app

    for name in ("ratings[v2].csv", "ratings[/x].csv", "ratings[bold]red.csv"):
        result = cli.invoke(
            app, ["labels", "import", str(tmp_path / name), "--rater", "r", "--db", str(tmp_path / "x.db")]
        )
        assert result.exit_code != 0 and name in result.output, result.output
        assert "Traceback" not in result.output and "MarkupError" not in result.output


def test_label_without_a_terminal_refuses_before_training_anything(cli, label_db, db_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    from issuemine.cli.app import app

    result = cli.invoke(app, ["label", "--sample", "s", "--rater", "ana", "--db", str(db_path)])
    assert result.exit_code == 2 and "needs a terminal" in result.output
    with label_db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM suggest_models")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM raters WHERE name = 'ana'")).scalar() == 0
