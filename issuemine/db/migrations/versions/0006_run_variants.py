"""Reproduction: a run per (issue, environment, variant), and the exporter each run used.

A snippet written for the TorchScript exporter runs twice on torch >= 2.9 (where dynamo is the
default): as written, and with the exporter of its time (``legacy-exporter``).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite cannot change a table's constraints in place, so the table is copied.
    with op.batch_alter_table("repro_runs") as batch:
        batch.add_column(sa.Column("variant", sa.String(length=20), nullable=False, server_default="as-written"))
        batch.add_column(sa.Column("exporter", sa.String(length=20), nullable=True))
        batch.drop_constraint("uq_repro_runs_issue_env", type_="unique")
        batch.create_unique_constraint("uq_repro_runs_issue_env_variant", ["issue_id", "env", "variant"])


def downgrade() -> None:
    op.execute("DELETE FROM repro_runs WHERE variant <> 'as-written'")
    with op.batch_alter_table("repro_runs") as batch:
        batch.drop_constraint("uq_repro_runs_issue_env_variant", type_="unique")
        batch.create_unique_constraint("uq_repro_runs_issue_env", ["issue_id", "env"])
        batch.drop_column("exporter")
        batch.drop_column("variant")
