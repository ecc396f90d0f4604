"""Where suggestion models and their inputs live: labeled examples from the database or a labels
file, models in ``suggest_models``, suggestions in ``suggestions``.

The *current* model of a database is the last one trained in it. A database without one gets the
study model on first use: trained in a few seconds on the bundled ``data/study-labels.csv`` (the
ISSTA 2024 study's 150 labeled titles) and stored, so a new user gets suggestions from the first
issue and every suggestion names the model that made it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select

from issuemine.db import Database
from issuemine.db.labels import final_labels
from issuemine.db.models import Comment, Issue, Repository, ReproRun, Sample, SampleMember, Suggestion
from issuemine.db.models import SuggestModel as ModelRow
from issuemine.db.rows import sample_id, upsert, utcnow
from issuemine.domain.converters import load_catalog
from issuemine.domain.taxonomy import Taxonomy, read_label_file
from issuemine.errors import IssuemineError
from issuemine.installed import versions
from issuemine.resources import data_dir
from issuemine.suggest.features import IssueText, harness_reading
from issuemine.suggest.model import Example, SuggestionModel

STUDY_MODEL = "study"
SHOW, HIDE = "show", "hide"


def study_labels() -> Path:
    return data_dir() / "study-labels.csv"


# -- examples ------------------------------------------------------------------------------------


def texts_for(db: Database, issue_ids: list[int]) -> dict[int, IssueText]:
    """Title, body, comments, converter and latest re-run verdict of stored issues."""
    texts: dict[int, IssueText] = {}
    with db.session() as session:
        for chunk in (issue_ids[i : i + 500] for i in range(0, len(issue_ids), 500)):
            for issue_id, title, body, repo in session.execute(
                select(Issue.id, Issue.title, Issue.body, Repository.full_name)
                .join(Repository)
                .where(Issue.id.in_(chunk))
            ):
                texts[issue_id] = IssueText(title or "", body or "", converter=_converter(repo))
            for issue_id, body in session.execute(
                select(Comment.issue_id, Comment.body).where(Comment.issue_id.in_(chunk)).order_by(Comment.created_at)
            ):
                texts[issue_id].comments.append(body or "")
            for issue_id, verdict in session.execute(
                select(ReproRun.issue_id, ReproRun.verdict)
                .where(ReproRun.issue_id.in_(chunk), ReproRun.variant == "as-written")
                .order_by(ReproRun.finished_at)
            ):
                texts[issue_id].verdict = verdict  # the latest run wins
    return texts


def _converter(repo: str) -> str:
    """The catalog's converter for a tracker (as `labels import` names sample members), else the repo."""
    return _converters_by_repo().get(repo.lower(), repo)


@lru_cache(maxsize=1)
def _converters_by_repo() -> dict[str, str]:
    return {c.repo.lower(): c.name for c in load_catalog().values()}


def db_examples(db: Database, taxonomy: Taxonomy, sample: str | None = None) -> list[Example]:
    """The issues with final labels (adjudicated, agreed or single; finished answers only) and text."""
    final = final_labels(db, taxonomy, sample)
    if final.empty:
        return []
    texts = texts_for(db, [int(i) for i in final["issue_id"]])
    examples = []
    for row in final.itertuples(index=False):
        text = texts.get(int(row.issue_id))
        labels = {d: str(getattr(row, d)) for d in taxonomy.label_dimensions() if isinstance(getattr(row, d), str)}
        if text and (text.title or text.body) and labels:
            examples.append(Example(f"{row.repo}#{row.number}", text, labels))
    return examples


def file_examples(path: Path, taxonomy: Taxonomy, db: Database | None = None) -> list[Example]:
    """Labeled issues of a file in the form `labels import` reads (the columns of study-labels.csv:
    url or repo+number, optional converter, title and body, labels as study names, codes or codebook
    numbers). An issue stored in ``db`` is read from there, with its comments; any other is scored
    on the text the file gives."""
    rows = []
    for found in read_label_file(path, taxonomy):
        text = IssueText(
            str(found.row.get("title") or "").strip(),
            str(found.row.get("body") or ""),
            converter=str(found.row.get("converter") or _converter(found.repo)),
        )
        rows.append((found.repo, found.number, text, found.codes))
    if not rows:
        raise IssuemineError(f"{path} has no labeled rows")
    stored = _stored_texts(db, [(r, n) for r, n, _, _ in rows]) if db is not None else {}
    examples = []
    for repo, number, text, labels in rows:
        in_db = stored.get((repo.lower(), number))
        if in_db is not None and (in_db.title or in_db.body):
            text = in_db
        examples.append(Example(f"{repo}#{number}", text, labels))
    return examples


def _stored_texts(db: Database, addresses: list[tuple[str, int]]) -> dict[tuple[str, int], IssueText]:
    wanted = {(r.lower(), n) for r, n in addresses}
    with db.session() as session:
        ids = {
            (repo.lower(), number): issue_id
            for issue_id, repo, number in session.execute(
                select(Issue.id, Repository.full_name, Issue.number).join(Repository)
            )
            if (repo.lower(), number) in wanted
        }
    texts = texts_for(db, list(ids.values()))
    return {address: texts[issue_id] for address, issue_id in ids.items() if issue_id in texts}


# -- models --------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    return versions(("scikit-learn", "spacy", "spacy-lookups-data", "numpy", "scipy"))


def save_model(db: Database, model: SuggestionModel, name: str, source: str) -> int:
    row = ModelRow(
        name=name,
        source=source,
        trained_at=utcnow(),
        taxonomy_version=model.taxonomy_version,
        features_version=model.features_version,
        seed=model.seed,
        trained_on=model.trained_on,
        versions=_versions(),
        model=model.to_bytes(),
    )
    with db.session() as session:
        session.add(row)
        session.flush()
        return int(row.id)


@dataclass
class StoredModel:
    id: int
    name: str
    source: str
    trained_at: datetime
    taxonomy_version: str
    trained_on: dict[str, Any]
    versions: dict[str, Any]
    model: SuggestionModel

    @property
    def label(self) -> str:
        """How suggestions name their model: ``study#1``."""
        return f"{self.name}#{self.id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "trained_at": self.trained_at.isoformat(),
            "taxonomy_version": self.taxonomy_version,
            "trained_on": self.trained_on,
            "versions": self.versions,
        }


def cache_dir() -> Path:
    """Where the study model is cached between databases: $ISSUEMINE_CACHE, else the XDG cache."""
    env = os.environ.get("ISSUEMINE_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "issuemine"
    return base


def _study_key(taxonomy: Taxonomy, seed: int) -> str:
    """Everything the study model depends on: the labels, the taxonomy, this package's suggestion
    code and the libraries that pickle it. Any change trains a fresh one."""
    digest = hashlib.sha256(study_labels().read_bytes())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    digest.update(json.dumps([taxonomy.version, seed, _versions()], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def train_study_model(db: Database, taxonomy: Taxonomy, seed: int = 0, exclude_sample: str | None = None) -> int:
    """The study model, stored in ``db``: from the cache when this machine trained it already. With
    ``exclude_sample``, trained without that sample's issues (a replication must not be suggested
    the study's own labels), stored as study-without-SAMPLE."""
    if exclude_sample:
        excluded = {key.lower() for key in issue_keys(db, sample_issue_ids(db, exclude_sample)).values()}
        examples = [e for e in file_examples(study_labels(), taxonomy) if e.key.lower() not in excluded]
        without = SuggestionModel.train(examples, taxonomy, seed)
        without.trained_on["source"] = "data/study-labels.csv"
        without.trained_on["excluded"] = {"sample": exclude_sample, "issues": len(excluded)}
        return save_model(db, without, f"{STUDY_MODEL}-without-{exclude_sample}", "data/study-labels.csv")
    cached = cache_dir() / f"study-model-{_study_key(taxonomy, seed)}.pkl"
    model: SuggestionModel | None = None
    if cached.exists():
        try:
            model = SuggestionModel.from_bytes(cached.read_bytes())
        except Exception:  # a torn or foreign cache file is retrained, not trusted
            model = None
    if model is None:
        model = SuggestionModel.train(file_examples(study_labels(), taxonomy), taxonomy, seed)
        model.trained_on["source"] = "data/study-labels.csv"
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(model.to_bytes())
            partial.replace(cached)  # atomic: a concurrent reader sees the old file or the whole new one
        except OSError:
            pass  # a read-only home only costs retraining next time
    return save_model(db, model, STUDY_MODEL, "data/study-labels.csv")


def current_model(db: Database, taxonomy: Taxonomy, model_id: int | None = None) -> StoredModel:
    """The last model trained in this database (or ``model_id``); the study model on first use."""
    with db.session() as session:
        query = select(ModelRow).order_by(ModelRow.id.desc()).limit(1)
        if model_id is not None:
            query = select(ModelRow).where(ModelRow.id == model_id)
        row = session.scalar(query)
        if row is None and model_id is not None:
            raise IssuemineError(f"no suggestion model {model_id} in this database")
    if row is None:
        train_study_model(db, taxonomy)
        return current_model(db, taxonomy)
    if row.taxonomy_version != taxonomy.version:
        raise IssuemineError(
            f"suggestion model {row.name}#{row.id} was trained under taxonomy {row.taxonomy_version}, "
            f"not {taxonomy.version}: run `issuemine suggest train` (or `--study` for the study model)"
        )
    return StoredModel(
        row.id,
        row.name,
        row.source,
        row.trained_at,
        row.taxonomy_version,
        row.trained_on,
        row.versions,
        SuggestionModel.from_bytes(row.model),
    )


# -- suggestions ---------------------------------------------------------------------------------


def evidence(model: SuggestionModel, text: IssueText, dimension: str, code: str, key: str = "") -> list[str]:
    """Readable reasons for one suggestion: whether the model was trained on this very issue, the
    harness's reading of the traceback, the re-run verdict, and the features that pushed hardest
    toward the code."""
    reasons = []
    if key and model.trained_on_issue(key):
        reasons.append(
            "this issue is in the model's training data: the suggestion repeats its own label "
            "(train without it: `suggest train --study --exclude-sample SAMPLE`)"
        )
    if dimension == "stage":
        reading = harness_reading(text)
        if reading:
            reasons.append(f"traceback: the harness reads {reading[0]} ({reading[1]})")
    if text.verdict and dimension in ("symptom", "stage"):
        reasons.append(f"re-run verdict today: {text.verdict}")
    reasons += [f"{name} (+{weight:g})" for name, weight in model.explain(text, dimension, code)]
    return reasons


def issue_keys(db: Database, issue_ids: list[int]) -> dict[int, str]:
    """owner/repo#number per issue id."""
    from issuemine.db.models import Issue, Repository

    with db.session() as session:
        rows = session.execute(
            select(Issue.id, Repository.full_name, Issue.number)
            .join(Repository, Repository.id == Issue.repository_id)
            .where(Issue.id.in_(issue_ids))
        ).all()
    return {issue_id: f"{repo}#{number}" for issue_id, repo, number in rows}


def fill(db: Database, stored: StoredModel, issue_ids: list[int], *, replace: bool = False) -> int:
    """Store the top suggestion per dimension, its confidence and evidence, for the issues that have
    none from this model yet (all of them with ``replace``); returns how many issues were scored."""
    with db.session() as session:
        done = set(session.scalars(select(Suggestion.issue_id).where(Suggestion.model == stored.label).distinct()))
    todo = [i for i in issue_ids if replace or i not in done]
    texts = texts_for(db, todo)
    todo = [i for i in todo if i in texts and (texts[i].title or texts[i].body)]
    if not todo:
        return 0
    ranked = stored.model.predict([texts[i] for i in todo])
    keys = issue_keys(db, todo)
    now = utcnow()
    rows = []
    for issue_id, per in zip(todo, ranked, strict=True):
        for dimension, ranking in per.items():
            if ranking:
                code, confidence = ranking[0]
                rows.append(
                    {
                        "issue_id": issue_id,
                        "dimension": dimension,
                        "code": code,
                        "confidence": round(confidence, 4),
                        "model": stored.label,
                        "created_at": now,
                        "evidence": evidence(stored.model, texts[issue_id], dimension, code, keys.get(issue_id, "")),
                    }
                )
    with db.session() as session:
        session.execute(Suggestion.__table__.delete().where(Suggestion.issue_id.in_(todo)))  # type: ignore[attr-defined]
        upsert(session, Suggestion, rows, ["issue_id", "dimension"])
    return len(todo)


# -- the per-sample setting ----------------------------------------------------------------------


def sample_issue_ids(db: Database, sample: str) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(SampleMember.issue_id)
                .join(Sample, Sample.id == SampleMember.sample_id)
                .where(Sample.name == sample)
                .order_by(SampleMember.position)
            )
        )


def sample_mode(db: Database, sample: str) -> str:
    """Whether the label session shows suggestions for ``sample`` (``show``, the default) or keeps
    its raters blind (``hide``)."""
    with db.session() as session:
        row = session.get(Sample, sample_id(session, sample))
        assert row is not None
        return str((row.params or {}).get("suggestions", SHOW))


def sample_preselect(db: Database, sample: str) -> float | None:
    """The confidence from which the sample's label session pre-selects suggestions (None: never)."""
    with db.session() as session:
        row = session.get(Sample, sample_id(session, sample))
        assert row is not None
        value = (row.params or {}).get("preselect")
        return float(value) if isinstance(value, int | float) else None


def set_sample_mode(db: Database, sample: str, mode: str, preselect: float | None = None) -> None:
    if mode not in (SHOW, HIDE):
        raise IssuemineError(f"suggestions are {SHOW!r} or {HIDE!r}, not {mode!r}")
    with db.session() as session:
        row = session.get(Sample, sample_id(session, sample))
        assert row is not None
        row.params = {**(row.params or {}), "suggestions": mode, "preselect": preselect}
