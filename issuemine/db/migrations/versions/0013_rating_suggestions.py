"""Labeling: what the suggestion model said when a rater answered, and whether the rater saw it.

``suggested`` is the model's top code for that dimension at the time (None: no suggestion), and
``suggestion_shown`` whether it was visible before the rater answered (pre-selected) or only after
(the default, so that suggestions do not anchor raters). `agree` compares rater–suggestion agreement
with and without it: an anchoring check.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("suggested", sa.String(100), nullable=True))
        batch.add_column(sa.Column("suggestion_shown", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ratings") as batch:
        batch.drop_column("suggestion_shown")
        batch.drop_column("suggested")
