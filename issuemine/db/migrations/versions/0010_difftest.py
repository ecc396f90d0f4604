"""Differential testing: campaigns and the models they generated, converted and compared.

A campaign is everything that determines its models (converter, exporter, opset, seed, sizes,
models per size, inputs per model, the data types generated, the deciding tolerance policy) plus the versions of every
package; a model row is keyed on (campaign, node count, seed), so an interrupted campaign resumes
without redoing finished models. The ONNX file of a mismatching or failing model is kept; any
model can be regenerated exactly from its seed and node count.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "difftest_campaigns",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("converter", sa.String(length=40), nullable=False),
        sa.Column("exporter", sa.String(length=20), nullable=False),
        sa.Column("opset", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("sizes", sa.JSON(), nullable=False),
        sa.Column("per_size", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.Integer(), nullable=False),
        sa.Column("dtypes", sa.JSON(), nullable=False),
        sa.Column("policy", sa.String(length=40), nullable=False),
        sa.Column("generator", sa.String(length=80), nullable=False),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "difftest_models",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "campaign_id", sa.Integer(), sa.ForeignKey("difftest_campaigns.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("node_count", sa.Integer(), nullable=True),
        sa.Column("operators", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("max_abs_diff", sa.Float(), nullable=True),
        sa.Column("differing", sa.JSON(), nullable=False),
        sa.Column("policies", sa.JSON(), nullable=False),
        sa.Column("onnx_path", sa.Text(), nullable=True),
        sa.Column("durations", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("campaign_id", "nodes", "seed", name="uq_difftest_models_campaign_nodes_seed"),
    )


def downgrade() -> None:
    op.drop_table("difftest_models")
    op.drop_table("difftest_campaigns")
