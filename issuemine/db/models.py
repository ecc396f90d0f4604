"""The database schema, as SQLAlchemy ORM classes.

Plain table names so that ``sqlite3`` or Datasette users find their way: ``issues``,
``comments``, ``timeline_events``... Every GitHub object is keyed on its GitHub id where it has one
(comments, labels, timeline events that carry an ``id``); issues are keyed on (repository, number),
which is GitHub's own stable address and also lets the study's labels create issue *stubs* before the
GitHub id is known. Times are naive UTC. The raw JSON payloads are kept so that new fields can be
derived later without refetching.

The schema changes only through the Alembic migrations in ``issuemine/db/migrations``; a test
checks that these classes and the migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class ConverterRow(Base):
    """A catalog entry as it was when last used (the catalog file is the source of truth)."""

    __tablename__ = "converters"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    repo: Mapped[str] = mapped_column(String(200))
    include_labels: Mapped[list[Any]] = mapped_column(default=list)
    exclude_labels: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(10))
    own_repos: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(Text, default="")


class Repository(Base):
    """An issue tracker, with the incremental-fetch state of each listing we make of it."""

    __tablename__ = "repositories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    full_name: Mapped[str] = mapped_column(String(200), unique=True)


class Listing(Base):
    """Incremental state of one issue listing (repository + state + include labels).

    ``cursor`` is the ``updated_at`` of the newest issue stored completely; the next run asks for
    ``since=cursor``. ``etag`` answers the conditional request for that exact first page.
    """

    __tablename__ = "listings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    query: Mapped[str] = mapped_column(String(500))
    cursor: Mapped[datetime | None] = mapped_column(DateTime)
    etag_url: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(200))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (UniqueConstraint("repository_id", "query"),)


class Issue(Base):
    __tablename__ = "issues"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    github_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(10))
    state_reason: Mapped[str | None] = mapped_column(String(30))
    author: Mapped[str | None] = mapped_column(String(100))
    author_association: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    html_url: Mapped[str | None] = mapped_column(Text)
    comments_count: Mapped[int | None] = mapped_column(Integer)
    is_pull_request: Mapped[bool] = mapped_column(Boolean, default=False)
    # 'github' (fetched), 'load' (imported from an export file) or 'stub' (known only by address).
    source: Mapped[str] = mapped_column(String(10), default="github")
    raw_json: Mapped[dict[str, Any] | None] = mapped_column()
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Timeline bookkeeping: complete only once every page is stored, in the same transaction.
    timeline_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    timeline_fetched_at: Mapped[datetime | None] = mapped_column(DateTime)
    timeline_issue_updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    timeline_pages: Mapped[int | None] = mapped_column(Integer)
    timeline_last_page_count: Mapped[int | None] = mapped_column(Integer)
    timeline_etag: Mapped[str | None] = mapped_column(String(200))
    __table_args__ = (UniqueConstraint("repository_id", "number"),)


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    color: Mapped[str | None] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(Text)


class IssueLabel(Base):
    __tablename__ = "issue_labels"
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    author: Mapped[str | None] = mapped_column(String(100))
    author_association: Mapped[str | None] = mapped_column(String(30))
    body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    html_url: Mapped[str | None] = mapped_column(Text)
    raw_json: Mapped[dict[str, Any] | None] = mapped_column()


class TimelineEvent(Base):
    """One entry of ``/issues/{n}/timeline``.

    ``event_key`` is the event's GitHub id where it has one; ``cross-referenced`` events have none
    (keyed on the source issue's id and time) and ``committed`` events are keyed on their sha.
    """

    __tablename__ = "timeline_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(200))
    github_id: Mapped[int | None] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(50), index=True)
    actor: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime | None] = mapped_column(DateTime)
    commit_id: Mapped[str | None] = mapped_column(String(64))
    source_type: Mapped[str | None] = mapped_column(String(30))
    source_repo: Mapped[str | None] = mapped_column(String(200))
    source_number: Mapped[int | None] = mapped_column(Integer)
    source_state: Mapped[str | None] = mapped_column(String(10))
    source_is_pull_request: Mapped[bool | None] = mapped_column(Boolean)
    raw_json: Mapped[dict[str, Any]] = mapped_column()
    __table_args__ = (UniqueConstraint("issue_id", "event_key"),)


class FetchRun(Base):
    """One fetch of one converter's listing: what it cost and how it ended."""

    __tablename__ = "fetch_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    converter: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # running | completed | rate-limited | failed | interrupted
    status: Mapped[str] = mapped_column(String(20), default="running")
    cursor_before: Mapped[datetime | None] = mapped_column(DateTime)
    cursor_after: Mapped[datetime | None] = mapped_column(DateTime)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    requests_counted: Mapped[int] = mapped_column(Integer, default=0)
    not_modified: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    issues_listed: Mapped[int] = mapped_column(Integer, default=0)
    issues_saved: Mapped[int] = mapped_column(Integer, default=0)
    timelines_fetched: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)


class FilterResult(Base):
    """The relevance and availability decisions for one issue under one converter.

    ``relevant``/``available`` are NULL when the filter could not decide (an issue stub with no
    labels or timeline fetched yet); the ``*_rule`` columns say which rule decided.
    """

    __tablename__ = "filter_results"
    converter: Mapped[str] = mapped_column(String(100), primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    relevant: Mapped[bool | None] = mapped_column(Boolean)
    relevance_rule: Mapped[str] = mapped_column(String(200))
    available: Mapped[bool | None] = mapped_column(Boolean)
    availability_rule: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(DateTime)


class Sample(Base):
    __tablename__ = "samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    seed: Mapped[int] = mapped_column(Integer)
    per_converter: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SampleMember(Base):
    __tablename__ = "sample_members"
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    converter: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)


# -- labeling ------------------------------------------------------------------------------------


class Rater(Base):
    __tablename__ = "raters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Assignment(Base):
    """Which rater labels which issue of a sample, in which order (the assignment plan)."""

    __tablename__ = "assignments"
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class Rating(Base):
    """One rater's code for one issue and one dimension (stage, symptom, cause, subcause)."""

    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"))
    dimension: Mapped[str] = mapped_column(String(30))
    code: Mapped[str] = mapped_column(String(100))
    taxonomy_version: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # The model's suggestion when the rater answered, and whether it was visible before the answer
    # (pre-selected) rather than after: `agree`'s anchoring check. None: no suggestion, or imported.
    suggested: Mapped[str | None] = mapped_column(String(100))
    suggestion_shown: Mapped[bool | None] = mapped_column(Boolean)
    __table_args__ = (UniqueConstraint("issue_id", "rater_id", "dimension"),)


class RaterIssue(Base):
    """A rater's work on one issue: status, note, time spent (summed over visits)."""

    __tablename__ = "rater_issues"
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("raters.id", ondelete="CASCADE"), primary_key=True)
    # in-progress | done | skipped | flagged (not a converter failure)
    status: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float] = mapped_column(default=0.0)
    taxonomy_version: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(20))  # session | import
    started_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Adjudication(Base):
    """The final code for an issue's dimension where raters disagreed, and who decided."""

    __tablename__ = "adjudications"
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(30), primary_key=True)
    code: Mapped[str] = mapped_column(String(100))
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(DateTime)
    taxonomy_version: Mapped[str] = mapped_column(String(50))


class Suggestion(Base):
    """A model's suggested code for an issue's dimension, shown pre-selected while labeling."""

    __tablename__ = "suggestions"
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(30), primary_key=True)
    code: Mapped[str] = mapped_column(String(100))
    confidence: Mapped[float] = mapped_column()
    model: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # What drove it: the features with the largest contribution and the matched traceback frame.
    evidence: Mapped[list[Any] | None] = mapped_column(JSON)


class SuggestModel(Base):
    """A trained suggestion model and what it was trained on, when, and under which versions."""

    __tablename__ = "suggest_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(200))  # "database" or the labels file it was trained on
    trained_at: Mapped[datetime] = mapped_column(DateTime)
    taxonomy_version: Mapped[str] = mapped_column(String(50))
    features_version: Mapped[str] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(Integer)
    trained_on: Mapped[dict[str, Any]] = mapped_column()
    versions: Mapped[dict[str, Any]] = mapped_column()
    model: Mapped[bytes] = mapped_column(LargeBinary)


# -- reproduction ----------------------------------------------------------------------------------


class ReproCandidate(Base):
    """The runnable snippet extracted from an issue thread, or why there is none."""

    __tablename__ = "repro_candidates"
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    runnable: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(Text)
    script: Mapped[str] = mapped_column(Text, default="")
    conversions: Mapped[list[Any]] = mapped_column(default=list)
    provenance: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tracebacks: Mapped[list[Any]] = mapped_column(default=list)
    extractor_version: Mapped[str] = mapped_column(String(20))
    extracted_at: Mapped[datetime] = mapped_column(DateTime)


class ReproRun(Base):
    """The latest run of an issue's candidate in one environment and variant, and its verdict."""

    __tablename__ = "repro_runs"
    __table_args__ = (UniqueConstraint("issue_id", "env", "variant", name="uq_repro_runs_issue_env_variant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    env: Mapped[str] = mapped_column(String(80))
    # as-written, or legacy-exporter: the snippet run with the exporter of its time (dynamo=False)
    variant: Mapped[str] = mapped_column(String(20), default="as-written", server_default="as-written")
    exporter: Mapped[str | None] = mapped_column(String(20))  # the exporter the conversion used
    script_sha: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(30))
    stage: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    policy: Mapped[str] = mapped_column(String(40))
    reached_converter: Mapped[bool] = mapped_column(Boolean)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sandbox: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(10))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    peak_mem_mb: Mapped[float | None] = mapped_column(Float)
    output_tail: Mapped[str] = mapped_column(Text, default="")
    finished_at: Mapped[datetime] = mapped_column(DateTime)


# -- converted-model quality -----------------------------------------------------------------------


class QualityRun(Base):
    """One measurement of a model or one of its conversions: a metric under a setting, in a suite run."""

    __tablename__ = "quality_runs"
    __table_args__ = (
        UniqueConstraint("suite", "model", "target", "metric", "setting", name="uq_quality_runs_measurement"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    suite: Mapped[str] = mapped_column(String(80))  # one run of `quality suite` or `quality model`
    model: Mapped[str] = mapped_column(String(120))
    framework: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(40))  # original, onnx-torchscript, onnx-dynamo, onnx-tf2onnx, coreml
    route: Mapped[str] = mapped_column(String(200))  # how it was converted (API and path)
    metric: Mapped[str] = mapped_column(String(40))
    setting: Mapped[str] = mapped_column(String(80))  # e.g. batch=1,threads=1 or attack=fgsm,eps=0.1
    value: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)  # spread of repeated measurements
    high: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column()  # seed, epochs, settings of the run
    versions: Mapped[dict[str, Any]] = mapped_column()
    measured_at: Mapped[datetime] = mapped_column(DateTime)


# -- differential testing --------------------------------------------------------------------------


class DifftestCampaign(Base):
    """What determines a campaign's models, and the versions they ran under."""

    __tablename__ = "difftest_campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    converter: Mapped[str] = mapped_column(String(40))
    exporter: Mapped[str] = mapped_column(String(20))  # torchscript, dynamo, or tf2onnx
    opset: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    sizes: Mapped[list[Any]] = mapped_column()
    per_size: Mapped[int] = mapped_column(Integer)
    inputs: Mapped[int] = mapped_column(Integer)
    dtypes: Mapped[list[Any]] = mapped_column()  # data types NNSmith may generate ([] = all it knows)
    policy: Mapped[str] = mapped_column(String(40))  # the tolerance policy that decides a mismatch
    generator: Mapped[str] = mapped_column(String(80))
    versions: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    # The stack its workers ran in (difftest run --env NAME); None: the interpreter issuemine runs in.
    environment: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # A zoo campaign's architectures (difftest run --models zoo), in order; None: NNSmith's models.
    architectures: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


class DifftestModel(Base):
    """One generated model: its outcome, error or differences, and where the time went."""

    __tablename__ = "difftest_models"
    __table_args__ = (UniqueConstraint("campaign_id", "nodes", "seed", name="uq_difftest_models_campaign_nodes_seed"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("difftest_campaigns.id", ondelete="CASCADE"))
    nodes: Mapped[int] = mapped_column(Integer)  # requested size
    seed: Mapped[int] = mapped_column(Integer)
    node_count: Mapped[int | None] = mapped_column(Integer)  # operators actually generated
    operators: Mapped[list[Any]] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(30))
    stage: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[str | None] = mapped_column(Text)
    max_abs_diff: Mapped[float | None] = mapped_column(Float)
    differing: Mapped[list[Any]] = mapped_column()  # outputs beyond the campaign's policy
    policies: Mapped[dict[str, Any]] = mapped_column()  # policy -> within (every policy, to switch later)
    onnx_path: Mapped[str | None] = mapped_column(Text)
    durations: Mapped[dict[str, Any]] = mapped_column()  # seconds: generate, framework, convert, load, run
    finished_at: Mapped[datetime] = mapped_column(DateTime)
    graph: Mapped[dict[str, Any] | None] = mapped_column()  # the converted model's operators and edges
    localized: Mapped[dict[str, Any] | None] = mapped_column()  # difftest localize: first diverging node
    architecture: Mapped[str | None] = mapped_column(String(60), nullable=True)  # a zoo model's architecture


class ReproBisection(Base):
    """Where an issue's failure stopped: its snippet run across the stacks of the catalog."""

    __tablename__ = "repro_bisections"
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True)
    converter: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(30))  # fixed, still-failing, never-failed, regression, ...
    last_failing: Mapped[str | None] = mapped_column(String(80))  # a stack name
    first_passing: Mapped[str | None] = mapped_column(String(80))
    summary: Mapped[str] = mapped_column(Text)
    steps: Mapped[list[Any]] = mapped_column()  # per stack tried: stack, released, verdict, match
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_by: Mapped[str | None] = mapped_column(Text)  # the commit or pull request the timeline names
    computed_at: Mapped[datetime] = mapped_column(DateTime)
