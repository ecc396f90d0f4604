"""The final-label rule in SQL (view ``final_labels``) and ``issue_overview`` one row per issue.

``final_labels``: one row per (sample, issue) with the final code and its source per dimension
(labels imported without a sample: one row per issue, with an empty sample):
adjudicated, else the code all raters agree on (agreed), else the single rater's (single); raters
who disagree without an adjudication leave the code empty (disputed). Only finished answers count
(``rater_issues.status = 'done'``), and in a planned sample only the raters assigned to the issue.
It is the same rule as ``issuemine.db.labels.final_labels`` (a test holds them equal), so numbers
from plain SQL or Datasette match the tool's.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = ("stage", "symptom", "cause", "subcause")

_COUNTED = """
WITH counted AS (
    SELECT sm.sample_id, ra.issue_id, ra.dimension, ra.code, ra.rater_id
    FROM ratings ra
    JOIN rater_issues w ON w.issue_id = ra.issue_id AND w.rater_id = ra.rater_id AND w.status = 'done'
    LEFT JOIN sample_members sm ON sm.issue_id = ra.issue_id
    WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.sample_id = sm.sample_id)
       OR EXISTS (
            SELECT 1 FROM assignments a
            WHERE a.sample_id = sm.sample_id AND a.issue_id = ra.issue_id AND a.rater_id = ra.rater_id
       )
),
per_dimension AS (
    SELECT sample_id, issue_id, dimension, min(code) AS code,
           count(DISTINCT code) AS codes, count(DISTINCT rater_id) AS raters
    FROM counted
    GROUP BY sample_id, issue_id, dimension
),
decided AS (
    SELECT p.sample_id, p.issue_id, p.dimension,
           CASE WHEN adj.code IS NOT NULL THEN adj.code WHEN p.codes = 1 THEN p.code END AS code,
           CASE WHEN adj.code IS NOT NULL THEN 'adjudicated' WHEN p.codes > 1 THEN 'disputed'
                WHEN p.raters > 1 THEN 'agreed' ELSE 'single' END AS source
    FROM per_dimension p
    LEFT JOIN adjudications adj ON adj.issue_id = p.issue_id AND adj.dimension = p.dimension
)
"""
_COLUMNS = (
    ",\n    ".join(f"max(CASE WHEN d.dimension = '{dim}' THEN d.code END) AS {dim}" for dim in DIMENSIONS)
    + ",\n    "
    + ",\n    ".join(f"max(CASE WHEN d.dimension = '{dim}' THEN d.source END) AS {dim}_source" for dim in DIMENSIONS)
)
FINAL_LABELS = f"""
CREATE VIEW final_labels AS
{_COUNTED}
SELECT
    s.name AS sample,
    d.issue_id,
    r.full_name AS repo,
    i.number,
    sm.converter,
    i.html_url,
    {_COLUMNS}
FROM decided d
LEFT JOIN samples s ON s.id = d.sample_id
LEFT JOIN sample_members sm ON sm.sample_id = d.sample_id AND sm.issue_id = d.issue_id
JOIN issues i ON i.id = d.issue_id
JOIN repositories r ON r.id = i.repository_id
GROUP BY s.name, d.issue_id, r.full_name, i.number, sm.converter, i.html_url
"""

# One row per issue: what a user opening the file with sqlite3 or Datasette wants first, with the
# final labels of the newest sample that has them and the latest re-run.
_OVERVIEW = """
CREATE VIEW issue_overview AS
SELECT
    i.id AS issue_id,
    r.full_name AS repo,
    i.number,
    i.title,
    i.state,
    i.state_reason,
    i.author,
    i.created_at,
    i.closed_at,
    i.html_url,
    i.is_pull_request,
    i.source,
    ({labels}) AS labels,
    (SELECT count(*) FROM comments c WHERE c.issue_id = i.id) AS comments,
    (SELECT count(*) FROM timeline_events t WHERE t.issue_id = i.id) AS timeline_events,
    (SELECT min(f.converter) FROM filter_results f WHERE f.issue_id = i.id) AS converter,
    (SELECT f.relevant FROM filter_results f WHERE f.issue_id = i.id ORDER BY f.converter LIMIT 1) AS relevant,
    (SELECT f.available FROM filter_results f WHERE f.issue_id = i.id ORDER BY f.converter LIMIT 1) AS available,
    fl.sample AS labels_sample,
    fl.stage,
    fl.symptom,
    fl.cause,
    fl.subcause,
    (SELECT rr.verdict FROM repro_runs rr WHERE rr.issue_id = i.id ORDER BY rr.finished_at DESC, rr.id DESC LIMIT 1)
        AS latest_verdict,
    (SELECT rr.stage FROM repro_runs rr WHERE rr.issue_id = i.id ORDER BY rr.finished_at DESC, rr.id DESC LIMIT 1)
        AS latest_verdict_stage,
    (SELECT rr.env || ' / ' || rr.variant FROM repro_runs rr WHERE rr.issue_id = i.id
        ORDER BY rr.finished_at DESC, rr.id DESC LIMIT 1) AS latest_run
FROM issues i
JOIN repositories r ON r.id = i.repository_id
LEFT JOIN final_labels fl ON fl.issue_id = i.id AND fl.sample = (
    SELECT s.name FROM final_labels f2 JOIN samples s ON s.name = f2.sample
    WHERE f2.issue_id = i.id ORDER BY s.id DESC LIMIT 1
)
"""
_LABELS_SQLITE = (
    "SELECT group_concat(name, ', ') FROM (SELECT l.name FROM issue_labels il "
    "JOIN labels l ON l.id = il.label_id WHERE il.issue_id = i.id ORDER BY l.name)"
)
_LABELS_POSTGRES = (
    "SELECT string_agg(l.name, ', ' ORDER BY l.name) FROM issue_labels il "
    "JOIN labels l ON l.id = il.label_id WHERE il.issue_id = i.id"
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DROP VIEW IF EXISTS issue_overview")
    op.execute(FINAL_LABELS)
    op.execute(_OVERVIEW.format(labels=_LABELS_SQLITE if sqlite else _LABELS_POSTGRES))


def downgrade() -> None:
    from importlib import import_module

    previous = import_module("issuemine.db.migrations.versions.0002_filters_samples")
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DROP VIEW IF EXISTS issue_overview")
    op.execute("DROP VIEW IF EXISTS final_labels")
    op.execute(previous.OVERVIEW_SQLITE if sqlite else previous.OVERVIEW_POSTGRES)
