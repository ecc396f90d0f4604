"""A fixture corpus shaped like GitHub's REST payloads, with texts written for issuemine's tests.

Deterministic for a seed. Each generated issue records, outside its payload, what the availability
filter should decide (``Corpus.truth``), so tests compare issuemine's decisions with the intent the
corpus was built with rather than with a second copy of the filter.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2021, 1, 4, 9, 0, 0, tzinfo=UTC)

OPS = [
    "GridSample",
    "ScatterND",
    "Einsum",
    "RoiAlign",
    "Unique",
    "LayerNormalization",
    "Resize",
    "NonZero",
    "TopK",
    "Loop",
    "If",
    "Pad",
    "Upsample",
    "InstanceNorm",
    "Gelu",
    "Attention",
    "Where",
    "CumSum",
]
MODELS = [
    "a small CNN",
    "a Mask R-CNN variant",
    "an LSTM tagger",
    "a vision transformer",
    "a U-Net",
    "a Keras ResNet50",
    "a TF Hub text encoder",
    "a quantized MobileNet",
    "a YOLO head",
]
SYMPTOMS = [
    "the export raises an exception",
    "onnxruntime refuses to load the exported file",
    "the ONNX model gives outputs that differ from the framework",
    "the converter never returns",
    "the exported graph is far slower than the original",
]
REPLIES = [
    "Thanks for the report, I can reproduce this with the latest nightly.",
    "Could you share the opset version and the exact versions you use?",
    "This looks related to how dynamic axes are handled in the shape inference pass.",
    "A fix is in progress; the symbolic function did not handle a None dimension.",
    "Confirmed fixed on main, please try the next release.",
    "Workaround: export with a fixed input size until the fix lands.",
]


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(*parts: Any) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()


@dataclass
class RepoData:
    full_name: str
    repo_id: int
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    timelines: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Corpus:
    """Repositories with issues and timelines; ``clock`` only moves forward."""

    repos: dict[str, RepoData] = field(default_factory=dict)
    truth: dict[tuple[str, int], str | None] = field(default_factory=dict)
    clock: datetime = BASE_TIME
    _next_id: int = 10_000_000
    base_url: str = "http://127.0.0.1"

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def tick(self, seconds: int = 60) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def repo(self, full_name: str) -> RepoData:
        if full_name not in self.repos:
            self.repos[full_name] = RepoData(full_name, self.new_id())
        return self.repos[full_name]

    # -- payload shapes ---------------------------------------------------------------------

    def user(self, login: str) -> dict[str, Any]:
        uid = int(_sha(login)[:7], 16)
        return {
            "login": login,
            "id": uid,
            "node_id": f"MDQ6VXNlcj{uid}",
            "avatar_url": f"https://avatars.example.invalid/u/{uid}",
            "url": f"{self.base_url}/users/{login}",
            "html_url": f"https://github.com/{login}",
            "type": "User",
            "site_admin": False,
        }

    def label(self, repo: RepoData, name: str) -> dict[str, Any]:
        if name not in repo.labels:
            lid = self.new_id()
            repo.labels[name] = {
                "id": lid,
                "node_id": f"LA_{lid}",
                "url": f"{self.base_url}/repos/{repo.full_name}/labels/{name.replace(' ', '%20')}",
                "name": name,
                "color": _sha(name)[:6],
                "default": False,
                "description": f"Issues about {name}",
            }
        return dict(repo.labels[name])

    def make_issue(
        self,
        repo_name: str,
        number: int,
        *,
        title: str,
        body: str,
        author: str,
        labels: list[str],
        state: str,
        created: datetime,
        closed: datetime | None,
        pull_request: bool = False,
    ) -> dict[str, Any]:
        repo = self.repo(repo_name)
        api = f"{self.base_url}/repos/{repo_name}"
        kind = "pull" if pull_request else "issues"
        issue: dict[str, Any] = {
            "url": f"{api}/issues/{number}",
            "repository_url": api,
            "labels_url": f"{api}/issues/{number}/labels{{/name}}",
            "comments_url": f"{api}/issues/{number}/comments",
            "events_url": f"{api}/issues/{number}/events",
            "html_url": f"https://github.com/{repo_name}/{kind}/{number}",
            "id": self.new_id(),
            "node_id": f"I_kwDO{number:08d}",
            "number": number,
            "title": title,
            "user": self.user(author),
            "labels": [self.label(repo, name) for name in labels],
            "state": state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": 0,
            "created_at": ts(created),
            "updated_at": ts(closed or created),
            "closed_at": ts(closed) if closed else None,
            "author_association": "NONE",
            "active_lock_reason": None,
            "body": body,
            "reactions": {"url": f"{api}/issues/{number}/reactions", "total_count": 0, "+1": 0, "-1": 0},
            "timeline_url": f"{api}/issues/{number}/timeline",
            "performed_via_github_app": None,
            "state_reason": ("completed" if state == "closed" else None) if not pull_request else None,
        }
        if pull_request:
            issue["draft"] = False
            issue["pull_request"] = {
                "url": f"{api}/pulls/{number}",
                "html_url": f"https://github.com/{repo_name}/pull/{number}",
                "diff_url": f"https://github.com/{repo_name}/pull/{number}.diff",
                "patch_url": f"https://github.com/{repo_name}/pull/{number}.patch",
                "merged_at": ts(closed) if closed else None,
            }
        repo.issues[number] = issue
        repo.timelines[number] = []
        return issue

    def _event(self, kind: str, actor: str, when: datetime, **extra: Any) -> dict[str, Any]:
        eid = self.new_id()
        event = {
            "id": eid,
            "node_id": f"E_{eid}",
            "url": f"{self.base_url}/repos/events/{eid}",
            "actor": self.user(actor),
            "event": kind,
            "commit_id": None,
            "commit_url": None,
            "created_at": ts(when),
            "performed_via_github_app": None,
        }
        event.update(extra)
        return event

    def add_event(self, repo_name: str, number: int, kind: str, actor: str, when: datetime, **extra: Any) -> None:
        self.repos[repo_name].timelines[number].append(self._event(kind, actor, when, **extra))

    def add_comment(self, repo_name: str, number: int, author: str, body: str, when: datetime) -> dict[str, Any]:
        repo = self.repos[repo_name]
        cid = self.new_id()
        event = {
            "url": f"{self.base_url}/repos/{repo_name}/issues/comments/{cid}",
            "html_url": f"https://github.com/{repo_name}/issues/{number}#issuecomment-{cid}",
            "issue_url": f"{self.base_url}/repos/{repo_name}/issues/{number}",
            "id": cid,
            "node_id": f"IC_{cid}",
            "user": self.user(author),
            "created_at": ts(when),
            "updated_at": ts(when),
            "author_association": "CONTRIBUTOR",
            "body": body,
            "reactions": {"total_count": 0},
            "performed_via_github_app": None,
            "event": "commented",
            "actor": self.user(author),
        }
        repo.timelines[number].append(event)
        repo.issues[number]["comments"] += 1
        return event

    def add_cross_reference(
        self,
        repo_name: str,
        number: int,
        source_repo: str,
        source_number: int,
        *,
        source_state: str,
        source_is_pr: bool,
        when: datetime | None = None,
    ) -> None:
        """A reference from another issue/PR: appended to the timeline, ``updated_at`` untouched."""
        when = when or self.tick()
        api = f"{self.base_url}/repos/{source_repo}"
        source_issue: dict[str, Any] = {
            "url": f"{api}/issues/{source_number}",
            "repository_url": api,
            "html_url": f"https://github.com/{source_repo}/{'pull' if source_is_pr else 'issues'}/{source_number}",
            "id": int(_sha(source_repo, source_number)[:9], 16),
            "number": source_number,
            "title": f"Follow-up for {repo_name}#{number}",
            "user": self.user("maintainer-b"),
            "state": source_state,
            "created_at": ts(when),
            "updated_at": ts(when),
            "closed_at": ts(when) if source_state == "closed" else None,
            "body": f"Relates to {repo_name}#{number}.",
            "repository": {"id": 1, "name": source_repo.split("/")[1], "full_name": source_repo},
        }
        if source_is_pr:
            source_issue["pull_request"] = {"url": f"{api}/pulls/{source_number}"}
        self.repos[repo_name].timelines[number].append(
            {
                "actor": self.user("maintainer-b"),
                "created_at": ts(when),
                "updated_at": ts(when),
                "source": {"type": "issue", "issue": source_issue},
                "event": "cross-referenced",
            }
        )

    def touch(self, repo_name: str, number: int, **changes: Any) -> dict[str, Any]:
        """Change an issue the way an edit does: fields change and ``updated_at`` moves on."""
        issue = self.repos[repo_name].issues[number]
        issue.update(changes)
        issue["updated_at"] = ts(self.tick())
        return issue


def _body(rng: random.Random, op: str, model: str, symptom: str, converter: str) -> str:
    call = (
        "torch.onnx.export(model, (x,), 'model.onnx', opset_version=17)"
        if converter == "torch"
        else ("model_proto, _ = tf2onnx.convert.from_keras(model, opset=15)")
    )
    return (
        f"When I convert {model} that uses {op}, {symptom}.\n\n"
        "### To reproduce\n\n"
        "```python\n"
        f"x = make_input(batch={rng.randint(1, 8)})\n{call}\n"
        "```\n\n"
        "### Error\n\n"
        "```\nTraceback (most recent call last):\n"
        f'  File "repro.py", line {rng.randint(5, 40)}, in <module>\n'
        f"RuntimeError: unsupported operator {op} in this opset\n```\n\n"
        f"Environment: opset {rng.randint(9, 18)}, python 3.{rng.randint(7, 11)}"
    )


def build_corpus(
    sizes: dict[str, int] | None = None,
    seed: int = 7,
    long_timelines: int = 3,
    base_url: str = "http://127.0.0.1",
) -> Corpus:
    """Issues for ``pytorch/pytorch`` and ``onnx/tensorflow-onnx`` (or the repos in ``sizes``).

    Mix per repository: about 8% pull requests, 8% open issues, 6% without the converter's label
    (torch) or with an excluded label (tf2onnx); closed issues spread over the availability rules.
    ``long_timelines`` issues per repository get more than 100 timeline events (several pages).
    """
    sizes = sizes or {"pytorch/pytorch": 240, "onnx/tensorflow-onnx": 180}
    rng = random.Random(seed)
    corpus = Corpus(base_url=base_url)
    when = BASE_TIME
    for repo_name, count in sizes.items():
        torch_like = repo_name == "pytorch/pytorch"
        other_repo = "onnx/onnx" if torch_like else "pytorch/pytorch"
        number = 1000 if torch_like else 500
        long_left = long_timelines
        for i in range(count):
            number += rng.choice((1, 1, 2, 3))
            when += timedelta(minutes=rng.randint(5, 600))
            roll = rng.random()
            is_pr = roll < 0.08
            is_open = 0.08 <= roll < 0.16
            off_label = 0.16 <= roll < 0.22
            labels = ["module: onnx"] if torch_like else []
            if torch_like and rng.random() < 0.4:
                labels.append(rng.choice(["triaged", "onnx-needs-info", "high priority"]))
            if not torch_like:
                if off_label:
                    labels.append(rng.choice(["question", "pending on user response"]))
                elif rng.random() < 0.3:
                    labels.append(rng.choice(["bug", "enhancement", "keras"]))
            elif off_label:
                labels = ["module: jit"]
            op, model, symptom = rng.choice(OPS), rng.choice(MODELS), rng.choice(SYMPTOMS)
            created = when
            closed = None if is_open else created + timedelta(hours=rng.randint(2, 2000))
            author = f"user{rng.randint(1, 400)}"
            title = (
                f"[ONNX] Fix {op} symbolic for dynamic shapes" if is_pr else f"Converting {model} with {op}: {symptom}"
            )
            issue = corpus.make_issue(
                repo_name,
                number,
                title=title,
                body=_body(rng, op, model, symptom, "torch" if torch_like else "tf"),
                author=author,
                labels=labels,
                state="open" if is_open else "closed",
                created=created,
                closed=closed,
                pull_request=is_pr,
            )
            t = created
            for name in labels:
                t += timedelta(minutes=3)
                corpus.add_event(repo_name, number, "labeled", "triage-bot", t, label={"name": name, "color": "ededed"})
            n_comments = rng.randint(0, 5)
            if long_left and not is_pr and not is_open and not off_label and i % 7 == 3:
                n_comments = rng.randint(110, 230)
                long_left -= 1
            for _ in range(n_comments):
                t += timedelta(minutes=rng.randint(1, 90))
                corpus.add_comment(
                    repo_name, number, rng.choice(["maintainer-a", author, "user77"]), rng.choice(REPLIES), t
                )
            if rng.random() < 0.3:
                t += timedelta(minutes=7)
                corpus.add_event(repo_name, number, "mentioned", "maintainer-a", t)
                corpus.add_event(repo_name, number, "subscribed", "maintainer-a", t)
            if rng.random() < 0.15:
                t += timedelta(minutes=9)
                corpus.add_event(
                    repo_name, number, "renamed", author, t, rename={"from": title + " (draft)", "to": title}
                )
            rule: str | None = None
            if not is_open:
                fix = rng.random()
                t = max(t, closed or t)
                if fix < 0.30:
                    corpus.add_event(
                        repo_name,
                        number,
                        "closed",
                        "maintainer-a",
                        t,
                        commit_id=_sha(repo_name, number, "fix"),
                        commit_url=f"{base_url}/repos/{repo_name}/commits/{_sha(repo_name, number, 'fix')}",
                        state_reason="completed",
                    )
                    rule = "closed-by-commit"
                else:
                    if fix < 0.45:
                        corpus.add_event(
                            repo_name,
                            number,
                            "referenced",
                            "maintainer-a",
                            t - timedelta(minutes=5),
                            commit_id=_sha(repo_name, number, "ref"),
                        )
                        rule = "referenced-by-commit"
                    elif fix < 0.58:
                        corpus.add_cross_reference(
                            repo_name,
                            number,
                            repo_name,
                            number + 50_000,
                            source_state="closed",
                            source_is_pr=True,
                            when=t - timedelta(minutes=5),
                        )
                        rule = "cross-referenced-closed"
                    elif fix < 0.64:
                        corpus.add_event(repo_name, number, "connected", "maintainer-a", t - timedelta(minutes=5))
                        rule = "connected"
                    elif fix < 0.74:
                        # A closed reference from another project, and an open one from our own: no fix.
                        corpus.add_cross_reference(
                            repo_name,
                            number,
                            other_repo,
                            7000 + number,
                            source_state="closed",
                            source_is_pr=True,
                            when=t - timedelta(minutes=6),
                        )
                        corpus.add_cross_reference(
                            repo_name,
                            number,
                            repo_name,
                            number + 60_000,
                            source_state="open",
                            source_is_pr=False,
                            when=t - timedelta(minutes=5),
                        )
                    corpus.add_event(repo_name, number, "closed", "maintainer-a", t, state_reason="completed")
            issue["updated_at"] = ts(max(t, closed or t))
            if not is_pr:
                corpus.truth[(repo_name, number)] = rule
    corpus.clock = max(corpus.clock, when + timedelta(days=200))
    return corpus
