"""Model versions: the weights the server can serve, one of them active.

* ``model_versions``: name (architecture), label (v1, v2, ...), weights sha256, the
  weights file relative to the data dir (NULL: the registry's own weights), the parent
  version's sha256, the project it was trained from, when, whether it is the active one
  (a partial unique index allows one at most), and its training metrics.

The served model is registered as v1 when the server (or ``segany train --from-project``)
first finds the table empty, not here: a migration cannot load a model.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(255), nullable=True),
        sa.Column("parent_sha256", sa.String(64), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("label", name="uq_model_versions_label"),
        sa.UniqueConstraint("weights_sha256", name="uq_model_versions_weights_sha256"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_model_versions_project_id_projects",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_model_versions_project_id", "model_versions", ["project_id"])
    op.create_index(
        "ix_model_versions_one_active",
        "model_versions",
        ["active"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )


def downgrade() -> None:
    op.drop_table("model_versions")
