"""An LLM as another rater, against a loopback server that speaks the OpenAI chat-completions protocol."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text

from issuemine.cli.app import app


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.requests: list[tuple[str, dict]] = []  # type: ignore[type-arg]
        self.calls = 0


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.headers.get("Authorization", ""), body))
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": "not found"})
            return
        self.server.calls += 1
        # Every third issue gets an answer outside the codebook, the others a valid one.
        if self.server.calls % 3 == 0:
            content = '{"stage": "somewhere", "symptom": "crash", "cause": "typo"}'
        else:
            content = (
                'Here you go: {"stage": "node-conversion", "symptom": "crash", "cause": "incompatibility", '
                '"subcause": "external", "why": "an unsupported operator"}'
            )
        self._send(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})

    def _send(self, status: int, data: dict) -> None:  # type: ignore[type-arg]
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_an_llm_labels_a_sample_as_a_rater_with_its_raw_reply(chat, label_db, db_path, cli, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MY_LLM_KEY", "sk-secret-123")
    url = f"http://127.0.0.1:{chat.server_address[1]}/v1"
    args = ["label", "--sample", "s", "--llm", url, "--model", "tiny", "--key-env", "MY_LLM_KEY", "--db", str(db_path)]
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    with label_db.engine.connect() as conn:
        issues = conn.execute(text("SELECT count(*) FROM sample_members")).scalar()
        rows = conn.execute(
            text(
                "SELECT r.dimension, r.code FROM ratings r JOIN raters p ON p.id = r.rater_id WHERE p.name = 'llm:tiny'"
            )
        ).all()
        notes = conn.execute(
            text(
                "SELECT w.status, w.note FROM rater_issues w JOIN raters p ON p.id = w.rater_id "
                "WHERE p.name = 'llm:tiny'"
            )
        ).all()
    refused = issues // 3
    assert f"llm:tiny labeled {issues - refused} issue(s)" in result.output
    assert {code for dim, code in rows if dim == "stage"} == {"node-conversion"}
    assert ("subcause", "incompatibility.external") in {(d, c) for d, c in rows}
    assert sorted(s for s, _ in notes).count("skipped") == refused and all(
        n.startswith("LLM reply: ") for _, n in notes
    )
    assert "'somewhere' is not a code of the codebook" in result.output
    # The codebook's own definitions and the thread went out; the key only as the bearer token.
    auth, body = chat.requests[0]
    assert auth == "Bearer sk-secret-123" and body["model"] == "tiny" and body["temperature"] == 0
    assert "Mapping each framework operator (node)" in body["messages"][0]["content"]
    assert body["messages"][1]["content"].startswith("Title: ")
    with label_db.engine.connect() as conn:
        dumped = "\n".join(str(r) for r in conn.execute(text("SELECT * FROM rater_issues")).all())
    assert "sk-secret-123" not in dumped
    # A rerun asks only about what is not finished yet.
    before = chat.calls
    assert cli.invoke(app, args).exit_code == 0
    assert chat.calls - before == refused


def test_llm_options_are_checked(cli, label_db, db_path):  # type: ignore[no-untyped-def]
    result = cli.invoke(app, ["label", "--sample", "s", "--llm", "http://127.0.0.1:9/v1", "--db", str(db_path)])
    assert result.exit_code == 2 and "--llm needs --model" in result.output
    result = cli.invoke(app, ["label", "--sample", "s", "--llm", "localhost", "--model", "m", "--db", str(db_path)])
    assert result.exit_code == 2 and "give the endpoint's URL" in result.output
    result = cli.invoke(
        app, ["label", "--sample", "s", "--llm", "http://127.0.0.1:9/v1", "--model", "m", "--db", str(db_path)]
    )
    assert result.exit_code == 2 and "cannot reach the LLM endpoint" in result.output
