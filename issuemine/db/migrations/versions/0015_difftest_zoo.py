"""Difftest: campaigns of real architectures (``difftest run --models zoo``).

``difftest_campaigns.architectures`` lists a zoo campaign's architectures in order (NULL: NNSmith
generates its models); ``difftest_models.architecture`` names the architecture a zoo model is (its
``nodes`` is the architecture's place in that list, so a zoo campaign resumes like any other).

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("difftest_campaigns") as batch:
        batch.add_column(sa.Column("architectures", sa.JSON(), nullable=True))
    with op.batch_alter_table("difftest_models") as batch:
        batch.add_column(sa.Column("architecture", sa.String(60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("difftest_models") as batch:
        batch.drop_column("architecture")
    with op.batch_alter_table("difftest_campaigns") as batch:
        batch.drop_column("architectures")
