"""The labeling session's state machine, driven key by key (the terminal is tested in cli/)."""

from __future__ import annotations

from sqlalchemy import text

from issuemine.db.models import Suggestion
from issuemine.db.rows import utcnow
from issuemine.domain.taxonomy import taxonomy
from issuemine.labeling.session import LabelSession


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session(db, rater="ana", clock=None):  # type: ignore[no-untyped-def]
    return LabelSession(db, taxonomy(), "s", rater, clock=clock or Clock()).start()


def ratings(db, rater="ana"):  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return dict(
            conn.execute(
                text(
                    "SELECT i.number || ':' || g.dimension, g.code FROM ratings g JOIN raters r ON r.id = g.rater_id "
                    "JOIN issues i ON i.id = g.issue_id WHERE r.name = :r"
                ),
                {"r": rater},
            ).all()
        )


def status(db, rater="ana"):  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return dict(
            conn.execute(
                text(
                    "SELECT i.number, w.status FROM rater_issues w JOIN raters r ON r.id = w.rater_id "
                    "JOIN issues i ON i.id = w.issue_id WHERE r.name = :r"
                ),
                {"r": rater},
            ).all()
        )


def press(s, keys):  # type: ignore[no-untyped-def]
    for key in keys:
        s.press(key)


def test_answers_are_committed_at_once_and_subcause_follows_cause(label_db):
    s = session(label_db)
    first = s.screen().issue.number
    assert s.screen().dimension == "stage" and len(s.screen().choices) == 6
    assert s.screen().keys.startswith("1-6 choose")  # the key line says what a number does here
    s.press("2")
    assert ratings(label_db) == {f"{first}:stage": "node-conversion"}
    press(s, "2")  # wrong model
    assert s.screen().keys.startswith("1-14 type, ⏎ confirm")
    s.press("1")  # 14 causes: a number is confirmed with Enter
    assert s.screen().typed == "1" and s.screen().dimension == "cause"
    s.press("4")  # 14: testing
    assert f"{first}:cause" not in ratings(label_db) and s.screen().typed == "14"
    assert s.screen().message.startswith("14: Testing?")
    s.press("\r")
    assert ratings(label_db)[f"{first}:cause"] == "testing"
    assert s.screen().issue.number != first  # testing has no sub-causes: the issue is done
    assert status(label_db)[first] == "done"


def test_incompatibility_asks_its_subtype(label_db):
    s = session(label_db)
    first = s.screen().issue.number
    press(s, "222\r")  # stage, symptom, cause (14 causes: number, then Enter)
    assert s.screen().dimension == "subcause"
    assert [c.name for c in s.screen().choices] == ["Internal", "External"]
    s.press("2")
    assert ratings(label_db)[f"{first}:subcause"] == "incompatibility.external"


def test_back_keeps_and_enter_accepts_earlier_answers(label_db):
    s = session(label_db)
    first = s.screen().issue.number
    press(s, "21")
    s.press("b")
    assert s.screen().dimension == "symptom" and s.screen().answers["symptom"] == "crash"
    s.press("\r")  # keep crash
    assert s.screen().dimension == "cause"
    s.press("b")
    s.press("b")
    assert s.screen().dimension == "stage"
    s.press("3")  # change stage
    assert ratings(label_db)[f"{first}:stage"] == "graph-optimization"
    press(s, "\r2\r")  # keep crash, then incompatibility
    assert s.screen().dimension == "subcause"
    s.press("1")
    assert s.screen().issue.number != first
    s.press("b")  # back to the previous issue, at its last question
    assert s.screen().issue.number == first and s.screen().dimension == "subcause"


def test_undo_reverts_the_last_answer_in_the_database(label_db):
    s = session(label_db)
    first = s.screen().issue.number
    press(s, "21")
    s.press("u")
    assert ratings(label_db) == {f"{first}:stage": "node-conversion"}
    assert s.screen().dimension == "symptom"
    s.press("u")
    assert ratings(label_db) == {}
    s.press("u")
    assert s.screen().message == "nothing to undo"
    press(s, "213\r")  # finishes the issue (type problem has sub-types: not yet)
    assert s.screen().dimension == "subcause"
    s.press("2")
    assert s.screen().issue.number != first
    s.press("u")  # undo across the issue boundary
    assert s.screen().issue.number == first and status(label_db)[first] == "in-progress"
    assert f"{first}:subcause" not in ratings(label_db)


def test_changing_the_cause_drops_its_old_subcause(label_db):
    s = session(label_db)
    first = s.screen().issue.number
    press(s, "222\r2")
    s.press("b")
    while s.screen().issue.number != first or s.screen().dimension != "cause":
        s.press("b")
    press(s, "4\r")  # shape problem: no sub-causes
    assert f"{first}:subcause" not in ratings(label_db)
    assert ratings(label_db)[f"{first}:cause"] == "shape-problem"


def test_skip_flag_and_resume(label_db):
    s = session(label_db)
    order = list(s.queue)
    s.press("s")
    s.press("f")
    s.press("2")  # third issue: stage only, then quit
    s.press("q")
    st = status(label_db)
    assert sorted(st.values()) == ["flagged", "in-progress", "skipped"]
    again = session(label_db)
    third = again.screen()
    assert third.issue.issue_id == order[2] and third.dimension == "symptom"  # resumes mid-issue
    while not again.screen().finished and again.screen().issue.issue_id != order[0]:
        again.press("f")
    assert again.screen().issue.issue_id == order[0]  # the skipped issue comes back last


def test_time_per_issue_is_recorded(label_db):
    clock = Clock()
    s = session(label_db, clock=clock)
    first = s.screen().issue.number
    clock.now += 30
    s.press("2")
    clock.now += 12.5
    s.press("q")
    with label_db.engine.connect() as conn:
        seconds = conn.execute(
            text("SELECT seconds FROM rater_issues w JOIN issues i ON i.id = w.issue_id WHERE i.number = :n"),
            {"n": first},
        ).scalar()
    assert seconds == 42.5


def _suggest(label_db, issue_id: int, code: str, confidence: float) -> None:  # type: ignore[no-untyped-def]
    with label_db.session() as db:
        db.add(
            Suggestion(
                issue_id=issue_id,
                dimension="stage",
                code=code,
                confidence=confidence,
                model="tfidf-lr",
                created_at=utcnow(),
            )
        )


def stored_suggestion(label_db, number: int) -> tuple:  # type: ignore[no-untyped-def]
    with label_db.engine.connect() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT r.code, r.suggested, r.suggestion_shown FROM ratings r JOIN issues i ON i.id = r.issue_id "
                    "WHERE i.number = :n AND r.dimension = 'stage'"
                ),
                {"n": number},
            ).one()
        )


def test_a_suggestion_is_shown_after_the_answer_so_it_cannot_anchor_it(label_db):
    s = session(label_db)
    issue_id, number = s.screen().issue.issue_id, s.screen().issue.number
    _suggest(label_db, issue_id, "export", 0.81)
    s = session(label_db)
    assert s.screen().suggestion is None  # nothing before the answer
    s.press("\r")  # Enter does not take an unseen suggestion
    assert s.screen().message == "choose a number" and s.screen().dimension == "stage"
    first = s.screen().choices[0].code
    s.press("1")
    assert s.screen().message == "stage: the model suggested export (81%)"
    code, suggested, shown = stored_suggestion(label_db, number)
    assert (code, suggested, bool(shown)) == (first, "export", False)


def test_a_sample_can_preselect_confident_suggestions_only(label_db):
    s = session(label_db)
    issue_id, number = s.screen().issue.issue_id, s.screen().issue.number
    _suggest(label_db, issue_id, "export", 0.81)
    low = LabelSession(label_db, taxonomy(), "s", "ana", clock=Clock(), preselect=0.9).start()
    assert low.screen().suggestion is None  # 0.81 is below the sample's threshold
    s = LabelSession(label_db, taxonomy(), "s", "ana", clock=Clock(), preselect=0.8).start()
    assert s.screen().suggestion == ("export", 0.81, "tfidf-lr")
    s.press("\r")  # Enter accepts a pre-selected suggestion
    code, suggested, shown = stored_suggestion(label_db, number)
    assert (code, suggested, bool(shown)) == ("export", "export", True)


def test_a_rater_never_sees_another_raters_labels(label_db):
    bob = session(label_db, "bob")
    press(bob, "21")
    ana = session(label_db, "ana")
    assert ana.screen().issue.issue_id == bob.screen().issue.issue_id
    assert ana.screen().answers == {} and ana.screen().dimension == "stage"
    press(ana, "3")
    assert ratings(label_db, "bob")[f"{bob.screen().issue.number}:stage"] == "node-conversion"


def test_comments_key_says_when_there_are_none(label_db):
    s = session(label_db)
    while s.screen().issue is not None and s.screen().issue.comments:
        s.press("c")
        assert s.screen().pane == "comments"  # an issue with comments: c shows them in the text pane
        s.press("?")
        assert s.screen().pane == "codebook"  # the codebook replaces them
        s.press("?")
        assert s.screen().pane == "report"  # and the same key brings the report back
        s.press("c")
        s.press("s")
        assert s.screen().pane == "report"  # a new issue starts on its report
    assert s.screen().issue is not None, "the fixture needs an issue without comments"
    s.press("c")
    assert s.screen().message == "this issue has no comments" and s.screen().pane == "report"


def test_text_pane_scrolls_by_pages_and_unfolds(label_db):
    s = session(label_db)
    s.text.page = 10
    press(s, ["pgdn", "pgdn", "up"])
    assert s.text.scroll == 17  # a page overlaps the last by one line
    assert s.text.clamp(20) == (10, 20) and s.text.scroll == 10  # never past the last page
    press(s, ["pgup", "pgup", "end"])
    assert s.text.clamp(25) == (15, 25)
    s.press("home")
    assert s.text.scroll == 0
    s.press("t")
    assert s.text.unfold and s.screen().message.startswith("tracebacks in full")
    assert s.screen().dimension == "stage"  # scrolling keys answer nothing


def test_go_to_accepts_numbers_references_and_urls(label_db):
    s = session(label_db)
    numbers = [s._load(i).number for i in s.queue]
    s.go_to(f"#{numbers[3]}")
    assert s.screen().issue.number == numbers[3]
    s.go_to(f"https://github.com/onnx/tensorflow-onnx/issues/{numbers[1]}")
    assert s.screen().issue.number == numbers[1]
    s.go_to(f"onnx/tensorflow-onnx#{numbers[2]}")
    assert s.screen().issue.number == numbers[2]
    s.go_to("pytorch/pytorch#" + str(numbers[0]))
    assert "is not in ana's queue" in s.screen().message and s.screen().issue.number == numbers[2]
    s.go_to("the first one")
    assert "is not an issue" in s.screen().message


def test_review_walks_finished_issues_with_answers_preselected(label_db):
    s = session(label_db)
    press(s, "214\r")  # first issue done: node conversion, crash, shape problem
    first = s.queue[0]
    s.press("f")  # second: not a failure
    s.press("2")  # third: begun, not finished
    s.press("q")
    review = LabelSession(label_db, taxonomy(), "s", "ana", clock=Clock(), review=True).start()
    assert review.queue == [first, s.queue[1]]  # only finished issues
    screen = review.screen()
    assert screen.review and screen.dimension == "stage" and screen.answers["cause"] == "shape-problem"
    press(review, "\r3")  # keep the stage, change the symptom to bad performance
    review.press("\r")  # keep the cause: the issue is done again
    assert review.screen().issue.issue_id == s.queue[1] and review.screen().dimension is None  # flagged
    review.press("\r")
    assert review.screen().finished
    review.press("b")  # after the last issue, b goes back
    assert review.screen().issue.issue_id == s.queue[1]
    assert ratings(label_db)[f"{s._load(first).number}:symptom"] == "bad-performance"
    assert status(label_db)[s._load(first).number] == "done"


def test_review_with_nothing_finished_is_a_clear_error(label_db):
    import pytest

    from issuemine.errors import IssuemineError

    with pytest.raises(IssuemineError, match="finished no issue"):
        LabelSession(label_db, taxonomy(), "s", "ana", clock=Clock(), review=True).start()
