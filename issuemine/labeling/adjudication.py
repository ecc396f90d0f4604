"""Adjudication: walk the disagreements of a sample and record a final code and who decided."""

from __future__ import annotations

from dataclasses import dataclass, field

from issuemine.db import Database
from issuemine.db.labels import ratings_frame
from issuemine.db.models import Adjudication, Issue, Rater, RaterIssue
from issuemine.db.rows import upsert, utcnow
from issuemine.domain.taxonomy import SUBCAUSE, Code, Taxonomy
from issuemine.labeling.issue_text import TextPane


@dataclass
class Disagreement:
    issue_id: int
    repo: str
    number: int
    title: str
    dimension: str
    codes: dict[str, str]  # rater -> code
    body: str = ""
    notes: dict[str, str] = field(default_factory=dict)  # rater -> the note they left on the issue


def disagreements(db: Database, taxonomy: Taxonomy, sample: str) -> list[Disagreement]:
    """Issue dimensions whose raters disagree and that nobody has adjudicated yet, with the issue's
    text and the raters' notes, which is what a judge reads before deciding."""
    frame = ratings_frame(db, sample)
    ids = frame["issue_id"].unique().tolist()
    with db.session() as session:
        done = {(a.issue_id, a.dimension) for a in session.query(Adjudication)}
        texts = {i: (t, b) for i, t, b in session.query(Issue.id, Issue.title, Issue.body).filter(Issue.id.in_(ids))}
        notes: dict[int, dict[str, str]] = {}
        for issue_id, rater, note in (
            session.query(RaterIssue.issue_id, Rater.name, RaterIssue.note)
            .join(Rater, Rater.id == RaterIssue.rater_id)
            .filter(RaterIssue.issue_id.in_(ids), RaterIssue.note.is_not(None))
        ):
            notes.setdefault(issue_id, {})[rater] = note or ""
    order = {d: i for i, d in enumerate(taxonomy.label_dimensions())}
    found = []
    for (issue_id, dimension), group in frame.groupby(["issue_id", "dimension"]):
        if group["code"].nunique() > 1 and (issue_id, dimension) not in done:
            found.append(
                Disagreement(
                    int(issue_id),
                    str(group["repo"].iat[0]),
                    int(group["number"].iat[0]),
                    texts.get(int(issue_id), (None, None))[0] or "",
                    str(dimension),
                    dict(zip(group["rater"], group["code"], strict=True)),
                    texts.get(int(issue_id), (None, None))[1] or "",
                    {r: n for r, n in notes.get(int(issue_id), {}).items() if r in set(group["rater"])},
                )
            )
    return sorted(found, key=lambda d: (d.repo, d.number, order.get(d.dimension, 99)))


def record(db: Database, taxonomy: Taxonomy, issue_id: int, dimension: str, code: str, decided_by: str) -> None:
    with db.session() as session:
        upsert(
            session,
            Adjudication,
            [
                {
                    "issue_id": issue_id,
                    "dimension": dimension,
                    "code": code,
                    "decided_by": decided_by,
                    "decided_at": utcnow(),
                    "taxonomy_version": taxonomy.version,
                }
            ],
            ["issue_id", "dimension"],
        )


@dataclass
class AdjudicationSession:
    """Keys: a number picks the final code, s skips, q quits; the issue text scrolls as in the label session."""

    db: Database
    taxonomy: Taxonomy
    sample: str
    judge: str
    items: list[Disagreement] = field(default_factory=list)
    index: int = 0
    typed: str = ""
    message: str = ""
    quit: bool = False
    decided: int = 0
    text: TextPane = field(default_factory=TextPane)

    def start(self) -> AdjudicationSession:
        self.items = disagreements(self.db, self.taxonomy, self.sample)
        return self

    @property
    def current(self) -> Disagreement | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def choices(self) -> list[Code]:
        item = self.current
        if item is None:
            return []
        if item.dimension == SUBCAUSE:
            causes = {code.split(".")[0] for code in item.codes.values()}
            return [s for cause in sorted(causes) for s in self.taxonomy.subtypes(cause)]
        return self.taxonomy.dimension(item.dimension).codes

    def press(self, key: str) -> None:
        self.message = ""
        item = self.current
        if key == "q" or item is None:
            self.quit = key == "q" or self.quit
            return
        if self.text.press(key):
            return
        if key == "s":
            self._advance()
        elif key.isdigit() or key in ("\r", "\n"):
            choices = self.choices()
            typed = self.typed + key if key.isdigit() else self.typed
            if not typed:
                return
            number = int(typed)
            if not 1 <= number <= len(choices):
                self.typed, self.message = "", f"choose 1-{len(choices)}"
            elif key.isdigit() and len(choices) > 9:  # as in the label session: Enter confirms
                self.typed = typed
                self.message = f"{number}: {choices[number - 1].name}? Enter confirms"
            else:
                self.typed = ""
                record(self.db, self.taxonomy, item.issue_id, item.dimension, choices[number - 1].code, self.judge)
                self.decided += 1
                self._advance()
        else:
            self.message = f"unknown key {key!r}"

    def _advance(self) -> None:
        before = self.current
        self.index += 1
        after = self.current
        if after is None or before is None or after.issue_id != before.issue_id:
            self.text.reset()  # a new issue starts at the top; the next dimension of the same one stays put
