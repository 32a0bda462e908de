"""Jobs: explicit columns instead of the `extra` JSON bag, the spec a backend runs, and a
backend's own state; template versions: one row per (slug, version).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# the keys `extra` held, each now a column: (column, its type, its value for a job without the key)
MOVED = (
    ("template_version", sa.Integer(), None),
    ("queue", sa.String(63), "default"),
    ("result", sa.String(255), None),
    ("submitted", sa.Boolean(), False),
    ("log_complete", sa.Boolean(), False),
    ("failed_worker", sa.Integer(), None),
)

jobs = sa.table(
    "jobs",
    sa.column("id", sa.String()),
    sa.column("extra", sa.JSON()),
    *(sa.column(name, type_) for name, type_, _ in MOVED),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("template_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("queue", sa.String(63), nullable=False, server_default="default"))
        batch.add_column(sa.Column("result", sa.String(255), nullable=True))
        batch.add_column(sa.Column("submitted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("log_complete", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("failed_worker", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("spec", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("backend_state", sa.JSON(), nullable=True))
    bind = op.get_bind()
    for job_id, extra in bind.execute(sa.select(jobs.c.id, jobs.c.extra)).all():
        extra = extra or {}
        values = {name: extra.get(name, default) for name, _, default in MOVED}
        values["queue"] = values["queue"] or "default"
        values["submitted"], values["log_complete"] = bool(values["submitted"]), bool(values["log_complete"])
        bind.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("extra")
    with op.batch_alter_table("template_versions") as batch:
        batch.create_unique_constraint("uq_template_versions_slug_version", ["slug", "version"])


def downgrade() -> None:
    with op.batch_alter_table("template_versions") as batch:
        batch.drop_constraint("uq_template_versions_slug_version", type_="unique")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("extra", sa.JSON(), nullable=True))
    bind = op.get_bind()
    for row in bind.execute(sa.select(jobs.c.id, *(jobs.c[name] for name, _, _ in MOVED))).all():
        extra = {name: getattr(row, name) for name, _, _ in MOVED}
        bind.execute(jobs.update().where(jobs.c.id == row.id).values(extra=extra))
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("extra", existing_type=sa.JSON(), nullable=False)
        for name in ("backend_state", "spec", *(name for name, _, _ in MOVED)):
            batch.drop_column(name)
