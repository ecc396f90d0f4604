"""Filter results, samples and the issue_overview view.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# One row per issue and converter: what a user opening the file with sqlite3 or Datasette wants
# first. Label names are aggregated with each dialect's own function.
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
    f.converter,
    f.relevant,
    f.relevance_rule,
    f.available,
    f.availability_rule
FROM issues i
JOIN repositories r ON r.id = i.repository_id
LEFT JOIN filter_results f ON f.issue_id = i.id
"""
_LABELS_SQLITE = (
    "SELECT group_concat(name, ', ') FROM (SELECT l.name FROM issue_labels il "
    "JOIN labels l ON l.id = il.label_id WHERE il.issue_id = i.id ORDER BY l.name)"
)
_LABELS_POSTGRES = (
    "SELECT string_agg(l.name, ', ' ORDER BY l.name) FROM issue_labels il "
    "JOIN labels l ON l.id = il.label_id WHERE il.issue_id = i.id"
)
OVERVIEW_SQLITE = _OVERVIEW.format(labels=_LABELS_SQLITE)
OVERVIEW_POSTGRES = _OVERVIEW.format(labels=_LABELS_POSTGRES)


def upgrade() -> None:
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("per_converter", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "filter_results",
        sa.Column("converter", sa.String(length=100), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("relevant", sa.Boolean(), nullable=True),
        sa.Column("relevance_rule", sa.String(length=200), nullable=False),
        sa.Column("available", sa.Boolean(), nullable=True),
        sa.Column("availability_rule", sa.String(length=200), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("converter", "issue_id"),
    )
    op.create_table(
        "sample_members",
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("converter", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sample_id"], ["samples.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sample_id", "issue_id"),
    )
    op.execute(OVERVIEW_SQLITE if op.get_bind().dialect.name == "sqlite" else OVERVIEW_POSTGRES)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS issue_overview")
    op.drop_table("sample_members")
    op.drop_table("filter_results")
    op.drop_table("samples")
