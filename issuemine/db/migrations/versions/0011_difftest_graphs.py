"""Differential testing: each converted model's operator graph, and its localization.

``graph`` is the converted ONNX model's operator DAG (operator types by node, and which node
feeds which), kept for every model that converted, so the study's Table 12 (operator sequences
of mismatched vs correct models) needs no ONNX file, not even for the successes whose file is not
kept. ``localized`` is what ``difftest localize`` found: the first diverging node, its error, and
the reduced failing model.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("difftest_models") as batch:
        batch.add_column(sa.Column("graph", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("localized", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("difftest_models") as batch:
        batch.drop_column("localized")
        batch.drop_column("graph")
