"""Reproduction: where each issue's failure stopped across the stacks of their time.

One row per issue (`repro bisect`): the last stack where its snippet failed as reported, the first
where it passed, the steps tried, and the issue's close date and closing commit or pull request.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "repro_bisections",
        sa.Column("issue_id", sa.Integer(), sa.ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("converter", sa.String(80), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("last_failing", sa.String(80), nullable=True),
        sa.Column("first_passing", sa.String(80), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("repro_bisections")
