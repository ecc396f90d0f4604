"""An LLM as one more rater: any OpenAI-compatible chat-completions endpoint the user points at.

Researchers now code software-engineering artifacts with LLMs beside humans (Ahmed et al., MSR
2025: LLM–human agreement near human–human on ten annotation tasks, and model–model agreement as
the signal for which items a model may take). ``issuemine label --llm URL --model NAME`` asks such
an endpoint (a local llama.cpp, Ollama or vLLM server, or a hosted one) to label a sample with the
codebook's own definitions, and stores its answers as rater ``llm:NAME`` with its raw reply (the
rater's note), so ``agree``, ``adjudicate`` and ``suggest evaluate`` treat it as any rater.

The key comes from an environment variable (``--key-env``, default ``OPENAI_API_KEY``) and is
sent only as the request's bearer token: never stored, never logged. An answer that is not one of
the codebook's codes is refused for that issue (recorded as a skipped issue with the reply), never
guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.rows import utcnow
from issuemine.domain.taxonomy import SUBCAUSE, Taxonomy
from issuemine.errors import IssuemineError

MAX_THREAD_CHARS = 12_000
TIMEOUT = (10, 300)  # connect, read: a local model on a CPU answers slowly
DIMENSIONS = ("stage", "symptom", "cause")


@dataclass
class LlmReport:
    rater: str
    labeled: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # issue -> why its answer was refused

    def as_dict(self) -> dict[str, Any]:
        return {"rater": self.rater, "labeled": self.labeled, "refused": self.refused}


def codebook_prompt(taxonomy: Taxonomy) -> str:
    """The codebook as the human raters read it: every code with its definition."""
    parts = [
        "You label GitHub issues of deep-learning model converters (torch.onnx, tf2onnx) with a taxonomy. "
        "Answer with one JSON object and nothing else: "
        '{"stage": CODE, "symptom": CODE, "cause": CODE, "subcause": CODE or null, "why": "one sentence"}, '
        "using only the codes listed below."
    ]
    for name in DIMENSIONS:
        dimension = taxonomy.dimension(name)
        parts.append(f"\n{name}: {dimension.question}")
        for code in dimension.codes:
            parts.append(f"- {code.code}: {code.name}. {code.definition}".rstrip())
            for sub in code.subtypes:
                parts.append(f"  - subcause {sub.code}: {sub.name}. {sub.definition}".rstrip())
    return "\n".join(parts)


def thread_prompt(title: str, body: str, comments: list[str]) -> str:
    text = "\n\n".join([f"Title: {title}", body, *(f"Comment:\n{c}" for c in comments)])
    return text[:MAX_THREAD_CHARS]


def parse_reply(reply: str, taxonomy: Taxonomy) -> dict[str, str]:
    """The codes of a reply, resolved through the codebook; raises on anything that is not a code."""
    found = re.search(r"\{.*\}", reply, re.S)
    if not found:
        raise ValueError("no JSON object in the reply")
    data = json.loads(found.group(0))
    if not isinstance(data, dict):
        raise ValueError("the reply is not a JSON object")
    codes: dict[str, str] = {}
    for name in DIMENSIONS:
        value = data.get(name)
        code = taxonomy.dimension(name).resolve(value) if isinstance(value, str | int) else None
        if code is None:
            raise ValueError(f"{name} {value!r} is not a code of the codebook")
        codes[name] = code.code
    sub = data.get(SUBCAUSE)
    if sub and taxonomy.subtypes(codes["cause"]):
        resolved = taxonomy.resolve_subtype(codes["cause"], str(sub).split(".")[-1])
        if resolved is None:
            raise ValueError(f"subcause {sub!r} is not one of {codes['cause']}'s")
        codes[SUBCAUSE] = resolved.code
    return codes


class ChatClient:
    """POST /chat/completions of an OpenAI-compatible server (temperature 0, one answer)."""

    def __init__(self, url: str, model: str, key: str | None) -> None:
        self.url = url.rstrip("/")
        if not self.url.endswith("/chat/completions"):
            self.url += "/chat/completions"
        self.model = model
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def ask(self, system: str, user: str) -> str:
        payload: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }
        try:
            response = self.session.post(self.url, json=payload, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise IssuemineError(f"cannot reach the LLM endpoint {self.url}: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise IssuemineError(f"the LLM endpoint refused the key ({response.status_code}): check --key-env")
        if response.status_code >= 400:
            raise IssuemineError(f"the LLM endpoint answered {response.status_code}: {response.text[:200]}")
        try:
            return str(response.json()["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise IssuemineError(f"the LLM endpoint's answer is not a chat completion: {response.text[:200]}") from None


def label_with_llm(
    db: Database,
    taxonomy: Taxonomy,
    sample: str,
    client: ChatClient,
    on_issue: Callable[[str], None] | None = None,
) -> LlmReport:
    """Label every issue of ``sample`` the LLM rater has not finished; each answer is stored at once."""
    from issuemine.labeling.assignments import rater_queue
    from issuemine.labeling.ratings import save_rating
    from issuemine.suggest.store import issue_keys, texts_for

    rater = f"llm:{client.model}"
    report = LlmReport(rater)
    system = codebook_prompt(taxonomy)
    rater_id, queue = db.write(lambda session: rater_queue(session, sample, rater))
    finished = _finished(db, rater_id)
    todo = [i for i in queue if i not in finished]
    texts = texts_for(db, todo)
    names = issue_keys(db, todo)
    for issue_id in todo:
        text = texts.get(issue_id)
        if text is None or not (text.title or text.body):
            report.refused[names[issue_id]] = "no text (a stub: fetch it)"
            continue
        if on_issue:
            on_issue(names[issue_id])
        reply = client.ask(system, thread_prompt(text.title, text.body, text.comments))
        try:
            codes = parse_reply(reply, taxonomy)
        except (ValueError, RecursionError) as exc:
            report.refused[names[issue_id]] = str(exc)[:200]

            def skip(session: Any, issue_id: int = issue_id, reply: str = reply) -> None:
                _state(session, issue_id, rater_id, "skipped", reply, taxonomy)

            db.write(skip)
            continue

        def store(session: Any, issue_id: int = issue_id, codes: dict[str, str] = codes, reply: str = reply) -> None:
            for dimension, code in codes.items():
                save_rating(session, issue_id, rater_id, dimension, code, taxonomy.version)
            _state(session, issue_id, rater_id, "done", reply, taxonomy)

        db.write(store)
        report.labeled += 1
    return report


def _state(session: Any, issue_id: int, rater_id: int, status: str, reply: str, taxonomy: Taxonomy) -> None:
    from issuemine.db.models import RaterIssue
    from issuemine.db.rows import upsert

    row = {
        "issue_id": issue_id,
        "rater_id": rater_id,
        "status": status,
        "note": f"LLM reply: {reply[:4000]}",
        "seconds": 0.0,
        "taxonomy_version": taxonomy.version,
        "source": "llm",
        "started_at": utcnow(),
        "updated_at": utcnow(),
    }
    upsert(session, RaterIssue, [row], ["issue_id", "rater_id"])


def _finished(db: Database, rater_id: int) -> set[int]:
    from issuemine.db.models import RaterIssue

    with db.session() as session:
        return set(
            session.scalars(
                select(RaterIssue.issue_id).where(RaterIssue.rater_id == rater_id, RaterIssue.status == "done")
            )
        )
