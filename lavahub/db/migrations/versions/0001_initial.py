"""The schema as `create_all` made it before there were migrations.

Such a database records no revision and may hold only one store's tables (a hub that never ran
the jobs service has no `jobs`): each table is created only where it is missing, so running this
revision over it records it as 0001 and leaves what it holds alone.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "templates" not in existing:
        op.create_table(
            "templates",
            sa.Column("slug", sa.String(63), primary_key=True),
            sa.Column("spec", sa.JSON(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("enabled", sa.Boolean(), nullable=False),
            sa.Column("updated_by", sa.String(255), nullable=False),
            sa.Column("updated_at", TIMESTAMP, nullable=False),
        )
    if "template_versions" not in existing:
        op.create_table(
            "template_versions",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column(
                "slug", sa.String(63), sa.ForeignKey("templates.slug", ondelete="CASCADE"), nullable=False
            ),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("spec", sa.JSON(), nullable=False),
            sa.Column("author", sa.String(255), nullable=False),
            sa.Column("created_at", TIMESTAMP, nullable=False),
        )
        op.create_index("ix_template_versions_slug", "template_versions", ["slug"])
    if "jobs" not in existing:
        op.create_table(
            "jobs",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("name", sa.String(63), nullable=False),
            sa.Column("user", sa.String(255), nullable=False),
            sa.Column("project", sa.String(63), nullable=False),
            sa.Column("template", sa.String(63), nullable=False),
            sa.Column("framework", sa.String(16), nullable=False),
            sa.Column("workers", sa.Integer(), nullable=False),
            sa.Column("cpus", sa.Float(), nullable=False),
            sa.Column("memory", sa.Integer(), nullable=False),
            sa.Column("gpus", sa.Integer(), nullable=False),
            sa.Column("timeout", sa.Integer(), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("exit_code", sa.Integer(), nullable=True),
            sa.Column("created", TIMESTAMP, nullable=False),
            sa.Column("started", TIMESTAMP, nullable=True),
            sa.Column("finished", TIMESTAMP, nullable=True),
            sa.Column("job_dir", sa.Text(), nullable=False),
            sa.Column("extra", sa.JSON(), nullable=False),
        )
        op.create_index("ix_jobs_user_created", "jobs", ["user", "created"])
        for column in ("user", "project", "state", "created"):
            op.create_index(f"ix_jobs_{column}", "jobs", [column])
    if "job_transitions" not in existing:
        op.create_table(
            "job_transitions",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("at", TIMESTAMP, nullable=False),
        )
        op.create_index("ix_job_transitions_job_id", "job_transitions", ["job_id"])


def downgrade() -> None:
    for table in ("job_transitions", "jobs", "template_versions", "templates"):
        op.drop_table(table)
