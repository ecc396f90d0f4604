"""Difftest: the environment a campaign's workers ran in (``difftest run --env NAME``).

NULL is the interpreter issuemine runs in (today's stack); a name is a stack of the environments
file, such as one of the study's time. The same seed in two environments is two campaigns.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("difftest_campaigns") as batch:
        batch.add_column(sa.Column("environment", sa.String(60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("difftest_campaigns") as batch:
        batch.drop_column("environment")
