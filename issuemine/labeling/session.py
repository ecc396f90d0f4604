"""The labeling session as a state machine, independent of any terminal.

``LabelSession.press(key)`` is the whole interface: the terminal front end (``cli/label_ui.py``)
feeds it keys and renders ``screen()``; tests and the benchmark drive the same code path.

Every answer is committed the moment it is given, with the time spent since the last commit, so a
quit, Ctrl-C, closed terminal or kill -9 loses at most the answer being typed. The next session of
the same rater resumes at the first unfinished issue. A rater only ever sees their own labels.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.models import (
    Comment,
    Issue,
    IssueLabel,
    Label,
    RaterIssue,
    Rating,
    Repository,
    SampleMember,
    Suggestion,
)
from issuemine.db.rows import sample_id, utcnow
from issuemine.domain.taxonomy import SUBCAUSE, Code, Taxonomy
from issuemine.errors import IssuemineError
from issuemine.labeling.assignments import rater_queue
from issuemine.labeling.issue_text import TextPane
from issuemine.labeling.ratings import save_rating

FINISHED = ("done", "flagged")
KEYS = (
    "{choose}  ⏎ accept  b back  u undo  s skip  f not a failure  n note  g go to  "
    "PgUp/PgDn  t full traceback  c comments  e evidence  ? codebook  o open  q quit"
)


def key_hint(choices: int) -> str:
    """The key line for a question of ``choices`` answers: up to nine, one key answers; more (the
    14 causes), the number is typed and Enter confirms it."""
    if choices > 9:
        return KEYS.format(choose=f"1-{choices} type, ⏎ confirm").replace("  ⏎ accept", " (or accept)", 1)
    return KEYS.format(choose=f"1-{max(choices, 1)} choose")


ISSUE_REF = re.compile(
    r"github\.com/(?P<url_repo>[\w.-]+/[\w.-]+)/(?:issues|pull)/(?P<url_number>\d+)"
    r"|^(?:(?P<repo>[\w.-]+/[\w.-]+))?#?(?P<number>\d+)$"
)


@dataclass
class IssueView:
    issue_id: int
    repo: str
    number: int
    converter: str
    title: str
    body: str
    url: str | None
    labels: list[str]
    created_at: datetime | None
    closed_at: datetime | None
    comments: list[tuple[str, datetime | None, str]]
    suggestions: dict[str, tuple[str, float, str]]
    evidence: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Screen:
    issue: IssueView | None
    position: int
    total: int
    done: int
    rater: str
    dimension: str | None
    question: str
    choices: list[Code]
    answers: dict[str, str]
    suggestion: tuple[str, float, str] | None
    typed: str
    status: str
    note: str | None
    seconds: float
    pane: str
    message: str
    finished: bool
    review: bool = False
    skipped: int = 0
    keys: str = ""


@dataclass
class _Undo:
    issue_id: int
    dimension: str
    previous: str | None
    status: str


@dataclass
class LabelSession:
    db: Database
    taxonomy: Taxonomy
    sample: str
    rater: str
    clock: Callable[[], float] = time.monotonic
    rater_id: int = 0
    queue: list[int] = field(default_factory=list)
    index: int = 0
    dim_index: int = 0
    review: bool = False
    suggestions: bool = True  # False keeps the rater blind (a per-sample setting: `suggest mode`)
    # A suggestion is shown after the rater answered, so it cannot anchor the answer; a sample that
    # opts in pre-selects it before the answer, but only at or above this confidence.
    preselect: float | None = None
    order: str = "queue"  # or "uncertain": the issues the suggestion model is least sure of first
    typed: str = ""
    message: str = ""
    text: TextPane = field(default_factory=TextPane)
    quit: bool = False
    _view: IssueView | None = None
    _answers: dict[str, str] = field(default_factory=dict)
    _status: str = "in-progress"
    _note: str | None = None
    _seconds: float = 0.0
    _since: float = 0.0
    _undo: list[_Undo] = field(default_factory=list)
    _states: dict[int, str] = field(default_factory=dict)

    # -- start --------------------------------------------------------------------------------

    def start(self, issue: str | None = None) -> LabelSession:
        """Load the rater's queue and open the resume point, the first issue of a review pass, or ``issue``.

        A review pass walks only the issues the rater has finished, in queue order, each from its
        first question with the earlier answers pre-selected (Enter keeps one, a number changes it).
        """
        with self.db.session() as session:
            self.rater_id, self.queue = rater_queue(session, self.sample, self.rater)
            self._states = dict(
                session.execute(
                    select(RaterIssue.issue_id, RaterIssue.status).where(
                        RaterIssue.rater_id == self.rater_id, RaterIssue.issue_id.in_(self.queue)
                    )
                ).all()
            )
        if self.order == "uncertain":
            self.queue = self._by_uncertainty(self.queue)
        elif self.order != "queue":
            raise IssuemineError(f"--order is queue or uncertain, not {self.order!r}")
        if self.review:
            self.queue = [i for i in self.queue if self._states.get(i) in FINISHED]
            if not self.queue:
                raise IssuemineError(
                    f"{self.rater} has finished no issue of sample {self.sample!r} yet: nothing to review"
                )
        if issue is not None:
            self.go_to(issue)
            if self.message:
                raise IssuemineError(self.message)
        else:
            self._goto(0 if self.review else self._resume_index())
        return self

    def _by_uncertainty(self, queue: list[int]) -> list[int]:
        """Least certain first: the mean confidence of the top suggestion for stage, symptom and
        cause, lowest first (active learning); issues without suggestions keep their order, last."""
        with self.db.session() as session:
            rows = session.execute(
                select(Suggestion.issue_id, Suggestion.confidence).where(
                    Suggestion.issue_id.in_(queue), Suggestion.dimension.in_(list(self.taxonomy.dimensions))
                )
            ).all()
        confidences: dict[int, list[float]] = {}
        for issue_id, confidence in rows:
            confidences.setdefault(issue_id, []).append(confidence)
        if not confidences:
            raise IssuemineError(
                "--order uncertain needs suggestions, and no issue of this sample has one: suggestions need "
                "the suggest extra (pip install 'issuemine[suggest]') and issue text (stubs have none: fetch them)"
            )
        certainty = {i: sum(c) / len(c) for i, c in confidences.items()}
        return sorted(queue, key=lambda i: certainty.get(i, 2.0))  # stable: ties keep the sample order

    def _find(self, wanted: str) -> int:
        """The queue position of an issue given as 123, #123, owner/repo#123 or its URL."""
        match = ISSUE_REF.search(wanted.strip())
        if match is None:
            raise IssuemineError(f"{wanted!r} is not an issue: give 123, owner/repo#123 or the issue's URL")
        repo = match.group("repo") or match.group("url_repo")
        number = int(match.group("number") or match.group("url_number"))
        with self.db.session() as session:
            rows = session.execute(
                select(Issue.id, Repository.full_name)
                .join(Repository)
                .where(Issue.number == number, Issue.id.in_(self.queue))
            ).all()
        hits = [issue_id for issue_id, full_name in rows if repo is None or full_name.lower() == repo.lower()]
        if len(hits) != 1:
            where = "your review pass" if self.review else f"{self.rater}'s queue of sample {self.sample!r}"
            why = "is not in" if not hits else "is ambiguous in (give owner/repo#number)"
            raise IssuemineError(f"issue {wanted.strip()} {why} {where}")
        return self.queue.index(hits[0])

    def go_to(self, wanted: str) -> None:
        """Open another issue of the queue (the ``g`` key); a bad reference only sets the message."""
        try:
            index = self._find(wanted)
        except IssuemineError as exc:
            self.message = str(exc)
            return
        self._checkpoint()
        self._goto(index)
        if self._status == "done":
            self.dim_index = 0  # one goes to a finished issue to revise it: from its first question

    def _resume_index(self) -> int:
        for wanted in (("in-progress", None), ("skipped",)):
            for i, issue_id in enumerate(self.queue):
                if self._states.get(issue_id) in wanted:
                    return i
        return len(self.queue)

    # -- dimensions ---------------------------------------------------------------------------

    def dimensions(self) -> list[str]:
        """The dimensions to ask for the current issue: sub-cause only when the cause has subtypes."""
        dims = list(self.taxonomy.dimensions)
        if self.taxonomy.subtypes(self._answers.get("cause")):
            dims.append(SUBCAUSE)
        return dims

    def choices(self, dimension: str | None) -> list[Code]:
        if dimension is None:
            return []
        if dimension == SUBCAUSE:
            return self.taxonomy.subtypes(self._answers.get("cause"))
        return self.taxonomy.dimension(dimension).codes

    @property
    def dimension(self) -> str | None:
        if self._view is None or self._status == "flagged":
            return None
        dims = self.dimensions()
        return dims[self.dim_index] if self.dim_index < len(dims) else None

    # -- keys ---------------------------------------------------------------------------------

    def press(self, key: str) -> None:
        self.message = ""
        if key == "q":
            self._checkpoint()
            self.quit = True
        elif self._view is None and key == "b" and self.queue:
            self._goto(len(self.queue) - 1, at_end=True)
        elif self._view is None:
            self.message = "nothing left here: b goes back, g goes to an issue, q quits"
        elif self.text.press(key):
            if key == "t":
                self.message = "tracebacks in full (t folds them)" if self.text.unfold else "tracebacks folded"
        elif key.isdigit():
            self._digit(key)
        elif key in ("\r", "\n"):
            self._enter()
        elif key == "\x7f" or key == "\b":
            self.typed = self.typed[:-1]
        elif key == "b":
            self._back()
        elif key == "u":
            self._undo_last()
        elif key == "s":
            self._leave("skipped")
        elif key == "f":
            self._leave("flagged")
        elif key == "c":
            if not self._view.comments:
                self.message = "this issue has no comments"
            else:
                self.text.toggle("comments")
        elif key == "e":
            if not self._view.evidence:
                self.message = (
                    "suggestions are hidden for this sample" if not self.suggestions else "no suggestion for this issue"
                )
            else:
                self.text.toggle("evidence")
        elif key == "?":
            self.text.toggle("codebook")
        else:
            self.message = f"unknown key {key!r}"

    def set_note(self, text: str) -> None:
        if self._view is None:
            return
        self._note = text.strip() or None
        self._write_state()
        self.message = "note saved"

    def _digit(self, key: str) -> None:
        """Up to 9 choices, a number answers at once. With more (14 causes), the number is typed and
        Enter confirms it: "1" then "2" is then always 12, never two answers."""
        choices = self.choices(self.dimension)
        typed = self.typed + key if len(choices) > 9 else key
        number = int(typed)
        if number < 1 or number > len(choices):
            self.typed = ""
            self.message = f"choose 1-{len(choices)}" + (", then Enter" if len(choices) > 9 else "")
            return
        if len(choices) <= 9:
            self.typed = ""
            self._answer(choices[number - 1].code)
        else:
            self.typed = typed
            self.message = f"{number}: {choices[number - 1].name}? Enter confirms, Backspace clears"

    def _enter(self) -> None:
        dimension = self.dimension
        if dimension is None:
            self._next()
            return
        if self.typed:
            choices = self.choices(dimension)
            number, self.typed = int(self.typed), ""
            self._answer(choices[number - 1].code)
            return
        current = self._answers.get(dimension)
        suggestion = self._visible_suggestion(dimension)
        if current is not None:
            self._answer(current)
        elif suggestion and suggestion[0] in {c.code for c in self.choices(dimension)}:
            self._answer(suggestion[0])
        else:
            self.message = "choose a number"

    def _suggestion(self, dimension: str | None) -> tuple[str, float, str] | None:
        if not (self._view and dimension and self.suggestions):
            return None
        return self._view.suggestions.get(dimension)

    def _preselected(self, dimension: str | None) -> bool:
        """Visible before the answer: only where the sample opted in, and above its threshold."""
        suggestion = self._suggestion(dimension)
        return bool(suggestion and self.preselect is not None and suggestion[1] >= self.preselect)

    def _visible_suggestion(self, dimension: str | None) -> tuple[str, float, str] | None:
        """The suggestion the screen may show now: pre-selected, or once the rater has answered."""
        suggestion = self._suggestion(dimension)
        if suggestion and (self._preselected(dimension) or (dimension and dimension in self._answers)):
            return suggestion
        return None

    # -- answering ----------------------------------------------------------------------------

    def _answer(self, code: str) -> None:
        assert self._view is not None
        dimension = self.dimension
        assert dimension is not None
        previous = self._answers.get(dimension)
        self._undo.append(_Undo(self._view.issue_id, dimension, previous, self._status))
        changes: dict[str, str | None] = {dimension: code}
        if dimension == "cause" and previous != code:
            changes[SUBCAUSE] = None  # a new cause invalidates the old sub-cause
        for dim, value in changes.items():
            if value is None:
                self._answers.pop(dim, None)
            else:
                self._answers[dim] = value
        suggestion = self._suggestion(dimension)
        shown = self._preselected(dimension)
        if suggestion and not shown:
            # Shown now that the rater has answered: whether the model agreed.
            agreed = "agrees" if suggestion[0] == code else f"suggested {suggestion[0]}"
            self.message = f"{dimension}: the model {agreed} ({suggestion[1]:.0%})"
        self.dim_index += 1
        complete = self.dim_index >= len(self.dimensions())
        if complete:
            self._status = "done"
        self._commit(changes, dimension, suggestion[0] if suggestion else None, shown)
        if complete:
            self._next()

    def _commit(
        self,
        changes: dict[str, str | None],
        answered: str | None = None,
        suggested: str | None = None,
        shown: bool | None = None,
    ) -> None:
        """Write the changed ratings (the answered one with the suggestion the rater had) and the
        work state in one transaction, right now."""
        assert self._view is not None
        issue_id = self._view.issue_id

        def work(session: Any) -> None:
            for dim, value in changes.items():
                extra = (suggested, shown if suggested else None) if dim == answered else (None, None)
                save_rating(session, issue_id, self.rater_id, dim, value, self.taxonomy.version, *extra)
            self._write_state(session)

        self.db.write(work)

    def _checkpoint(self) -> None:
        if self._view is not None:
            self._write_state()

    def _write_state(self, session: Any = None) -> None:
        if session is None:
            self.db.write(self._write_state)
            return
        assert self._view is not None
        now_mono = self.clock()
        self._seconds += now_mono - self._since
        self._since = now_mono
        now = utcnow()
        row = session.get(RaterIssue, (self._view.issue_id, self.rater_id))
        if row is None:
            row = RaterIssue(
                issue_id=self._view.issue_id,
                rater_id=self.rater_id,
                started_at=now,
                source="session",
                seconds=0.0,
            )
            session.add(row)
        row.status, row.note, row.seconds = self._status, self._note, self._seconds
        row.taxonomy_version, row.updated_at = self.taxonomy.version, now
        session.flush()
        self._states[self._view.issue_id] = self._status

    def _leave(self, status: str) -> None:
        assert self._view is not None
        if status == "skipped" and self._status in FINISHED:
            self._next()
            return
        self._undo.append(_Undo(self._view.issue_id, "", None, self._status))
        self._status = status
        self._write_state()
        self._next()

    def _next(self) -> None:
        self._checkpoint()
        if self.review:  # every issue in turn, finished or not
            self._goto(self.index + 1)
            return
        start = self.index + 1
        following = [i for i in range(start, len(self.queue)) if self._states.get(self.queue[i]) not in FINISHED]
        earlier = [i for i in range(0, start) if self._states.get(self.queue[i]) not in FINISHED and i != self.index]
        self._goto((following or earlier or [len(self.queue)])[0])

    def _back(self) -> None:
        if self.typed:
            self.typed = ""
        elif self.dim_index > 0 and self._status != "flagged":
            self.dim_index -= 1
        elif self.index > 0:
            self._checkpoint()
            self._goto(self.index - 1, at_end=True)
        else:
            self.message = "already at the first question"

    def _undo_last(self) -> None:
        if not self._undo:
            self.message = "nothing to undo"
            return
        step = self._undo.pop()
        if self._view is None or self._view.issue_id != step.issue_id:
            self._checkpoint()
            self._goto(self.queue.index(step.issue_id))
        if step.dimension:
            changes: dict[str, str | None] = {step.dimension: step.previous}
            if step.previous is None:
                self._answers.pop(step.dimension, None)
            else:
                self._answers[step.dimension] = step.previous
            self._status = step.status if step.status not in FINISHED else "in-progress"
            dims = self.dimensions()
            self.dim_index = dims.index(step.dimension) if step.dimension in dims else 0
            self._commit(changes)
            self.message = f"undid {step.dimension}"
        else:
            self._status = step.status
            self.dim_index = self._first_open()
            self._write_state()
            self.message = "undid skip/flag"

    # -- moving between issues ----------------------------------------------------------------

    def _goto(self, index: int, at_end: bool = False) -> None:
        self.index = index
        self.typed = ""
        self.text.reset()
        if index >= len(self.queue):
            self._view = None
            return
        issue_id = self.queue[index]
        self._view = self._load(issue_id)
        with self.db.session() as session:
            self._answers = dict(
                session.execute(
                    select(Rating.dimension, Rating.code).where(
                        Rating.issue_id == issue_id, Rating.rater_id == self.rater_id
                    )
                ).all()
            )
            work = session.get(RaterIssue, (issue_id, self.rater_id))
        self._status = work.status if work else "in-progress"
        self._note = work.note if work else None
        self._seconds = work.seconds if work else 0.0
        self._since = self.clock()
        self.dim_index = len(self.dimensions()) - 1 if at_end else self._first_open()

    def _first_open(self) -> int:
        dims = self.dimensions()
        if self.review:
            return 0 if self._status != "flagged" else len(dims)
        for i, dim in enumerate(dims):
            if dim not in self._answers:
                return i
        return 0 if self._status not in FINISHED else len(dims)

    def _load(self, issue_id: int) -> IssueView:
        sid_query = select(SampleMember.converter).where(SampleMember.issue_id == issue_id)
        with self.db.session() as session:
            sid = sample_id(session, self.sample)
            issue, repo = session.execute(
                select(Issue, Repository.full_name).join(Repository).where(Issue.id == issue_id)
            ).one()
            converter = session.scalar(sid_query.where(SampleMember.sample_id == sid)) or repo
            labels = session.scalars(
                select(Label.name)
                .join(IssueLabel, IssueLabel.label_id == Label.id)
                .where(IssueLabel.issue_id == issue_id)
            ).all()
            comments = [
                (c.author or "?", c.created_at, c.body or "")
                for c in session.scalars(
                    select(Comment).where(Comment.issue_id == issue_id).order_by(Comment.created_at)
                )
            ]
            shown = list(session.scalars(select(Suggestion).where(Suggestion.issue_id == issue_id)))
            if not self.suggestions:
                shown = []
            suggestions = {s.dimension: (s.code, s.confidence, s.model) for s in shown}
            evidence = {s.dimension: list(s.evidence or []) for s in shown}
        return IssueView(
            issue_id=issue_id,
            repo=repo,
            number=issue.number,
            converter=converter,
            title=issue.title or "(no title: an issue stub; fetch it for its text)",
            body=issue.body or "",
            url=issue.html_url,
            labels=sorted(labels),
            created_at=issue.created_at,
            closed_at=issue.closed_at,
            comments=comments,
            suggestions=suggestions,
            evidence=evidence,
        )

    # -- what to show -------------------------------------------------------------------------

    def screen(self) -> Screen:
        dimension = self.dimension
        question = ""
        if dimension == SUBCAUSE:
            cause = self.taxonomy.dimension("cause").get(self._answers["cause"])
            question = self.taxonomy.dimension("cause").subtype_question.format(name=cause.name)
        elif dimension:
            question = self.taxonomy.dimension(dimension).question
        done = sum(1 for i in self.queue if self._states.get(i) in FINISHED)
        seconds = self._seconds + (self.clock() - self._since if self._view else 0.0)
        return Screen(
            issue=self._view,
            position=min(self.index + 1, len(self.queue)),
            total=len(self.queue),
            done=done,
            rater=self.rater,
            dimension=dimension,
            question=question,
            choices=self.choices(dimension),
            answers=dict(self._answers),
            suggestion=self._visible_suggestion(dimension),
            typed=self.typed,
            status=self._status,
            note=self._note,
            seconds=seconds,
            pane=self.text.view,
            message=self.message,
            finished=self._view is None,
            review=self.review,
            skipped=sum(1 for i in self.queue if self._states.get(i) == "skipped"),
            keys=key_hint(len(self.choices(dimension))),
        )
