"""The semi-automatic and automatic stages: project settings, annotation status, jobs.

* ``projects.settings``: SegEvery's options for proposals and jobs (None: the defaults);
* ``annotations.status``: ``accepted`` (every existing row), ``proposed`` or ``rejected``;
* ``jobs`` and ``job_images``: the automatic stage's runs and the images each has done.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("settings", sa.JSON(), nullable=True))
    with op.batch_alter_table("annotations") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="accepted")
        )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("masks", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("updated_at", STAMP, nullable=False),
        sa.Column("heartbeat_at", STAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_jobs_project_id_projects", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_jobs_created_by_users"),
    )
    op.create_index("ix_jobs_project_id", "jobs", ["project_id"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "job_images",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("masks", sa.Integer(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "image_id", name="pk_job_images"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_images_job_id_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name="fk_job_images_image_id_images", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_job_images_image_id", "job_images", ["image_id"])


def downgrade() -> None:
    op.drop_table("job_images")
    op.drop_table("jobs")
    with op.batch_alter_table("annotations") as batch:
        batch.drop_column("status")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("settings")
