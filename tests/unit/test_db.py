"""The database's migrations: old installs upgrade with their data, new ones reach head, and the
row classes describe exactly the migrated schema."""

import json
import sqlite3
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError

import lavahub.auth.store
import services.jobs.store
import spawner.holdings
import spawner.store
from lavahub import db
from services.jobs.store import JobStore
from spawner.store import TemplateStore

# frozen: the schema `create_all` made before migrations (spawner/store.py and
# services/jobs/store.py at de91131), as SQLite printed it; never import the old code for this
OLD_SCHEMA = """
CREATE TABLE templates (
    slug VARCHAR(63) NOT NULL, spec JSON NOT NULL, version INTEGER NOT NULL, enabled BOOLEAN NOT NULL,
    updated_by VARCHAR(255) NOT NULL, updated_at DATETIME NOT NULL, PRIMARY KEY (slug)
);
CREATE TABLE template_versions (
    id INTEGER NOT NULL, slug VARCHAR(63) NOT NULL, version INTEGER NOT NULL, spec JSON NOT NULL,
    author VARCHAR(255) NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(slug) REFERENCES templates (slug) ON DELETE CASCADE
);
CREATE INDEX ix_template_versions_slug ON template_versions (slug);
CREATE TABLE jobs (
    id VARCHAR(32) NOT NULL, name VARCHAR(63) NOT NULL, user VARCHAR(255) NOT NULL,
    project VARCHAR(63) NOT NULL, template VARCHAR(63) NOT NULL, framework VARCHAR(16) NOT NULL,
    workers INTEGER NOT NULL, cpus FLOAT NOT NULL, memory INTEGER NOT NULL, gpus INTEGER NOT NULL,
    timeout INTEGER NOT NULL, state VARCHAR(16) NOT NULL, reason TEXT, exit_code INTEGER,
    created DATETIME NOT NULL, started DATETIME, finished DATETIME, job_dir TEXT NOT NULL,
    extra JSON NOT NULL, PRIMARY KEY (id)
);
CREATE INDEX ix_jobs_user_created ON jobs (user, created);
CREATE INDEX ix_jobs_created ON jobs (created);
CREATE INDEX ix_jobs_user ON jobs (user);
CREATE INDEX ix_jobs_state ON jobs (state);
CREATE INDEX ix_jobs_project ON jobs (project);
CREATE TABLE job_transitions (
    id INTEGER NOT NULL, job_id VARCHAR(32) NOT NULL, state VARCHAR(16) NOT NULL, reason TEXT,
    at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(job_id) REFERENCES jobs (id) ON DELETE CASCADE
);
CREATE INDEX ix_job_transitions_job_id ON job_transitions (job_id);
"""

PYTHON = {"slug": "python", "display_name": "Python", "image": "python:3.11"}
NOW = "2025-01-06 12:00:00.000000"
OLD_JOBS = {
    "1" * 16: {"submitted": True, "log_complete": True, "failed_worker": 1, "template_version": 1,
               "queue": "gpu", "result": "result.pkl"},
    "2" * 16: {"submitted": False, "template_version": 1, "queue": "default", "result": None},
}  # fmt: skip


def write_old_database(path):
    """A database as lavahub made it before migrations: a template, its version, two jobs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.executescript(OLD_SCHEMA)
        connection.execute(
            "INSERT INTO templates VALUES ('python', ?, 1, 1, 'config', ?)", (json.dumps(PYTHON), NOW)
        )
        connection.execute(
            "INSERT INTO template_versions VALUES (1, 'python', 1, ?, 'config', ?)", (json.dumps(PYTHON), NOW)
        )
        for job_id, extra in OLD_JOBS.items():
            connection.execute(
                "INSERT INTO jobs VALUES (?, 'cell', 'alice', 'default', 'python', 'pytorch', 2, 1.0, "
                "1073741824, 0, 60, 'failed', 'worker 1 exited with code 3', 3, ?, ?, ?, '/tmp/job', ?)",
                (job_id, NOW, NOW, NOW, json.dumps(extra)),
            )
            connection.execute(
                "INSERT INTO job_transitions VALUES (NULL, ?, 'pending', NULL, ?)", (job_id, NOW)
            )
    connection.close()


@pytest.fixture
def old_database(tmp_path):
    write_old_database(tmp_path / "lavahub.sqlite")
    return f"sqlite:///{tmp_path / 'lavahub.sqlite'}"


def test_an_old_database_upgrades_with_its_templates_and_jobs(old_database):
    assert db.current(old_database) == "0001"  # recognised, though it records no revision
    assert db.upgrade(old_database) == db.Upgrade("0001", db.head())

    templates = TemplateStore(old_database)
    assert [(t.slug, t.version, t.image) for t in templates.list()] == [("python", 1, "python:3.11")]
    assert [v["author"] for v in templates.history("python")] == ["config"]

    jobs = JobStore(old_database)
    first, second = jobs.get("1" * 16), jobs.get("2" * 16)
    assert first is not None and second is not None
    assert (first.submitted, first.log_complete, first.failed_worker) == (True, True, 1)
    assert (first.template_version, first.queue, first.result) == (1, "gpu", "result.pkl")
    assert (second.submitted, second.log_complete, second.failed_worker) == (False, False, None)
    assert (second.queue, second.result, second.backend_state) == ("default", None, {})
    assert (first.reason, first.exit_code, first.created) == (
        "worker 1 exited with code 3", 3, datetime(2025, 1, 6, 12, tzinfo=UTC),
    )  # fmt: skip
    assert jobs.spec_of(first.id) is None  # not kept before 0002
    assert [t[0] for t in jobs.transitions(first.id)] == ["pending"]
    assert "extra" not in {c["name"] for c in inspect(jobs.engine).get_columns("jobs")}


def test_an_old_database_with_only_the_template_tables_gets_the_job_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'lavahub.sqlite'}"
    with sqlite3.connect(tmp_path / "lavahub.sqlite") as connection:
        connection.executescript(OLD_SCHEMA.split("CREATE TABLE jobs")[0])
    connection.close()
    assert db.upgrade(url) == db.Upgrade("0001", db.head())
    assert JobStore(url).list() == []


def test_upgrade_is_idempotent(old_database):
    db.upgrade(old_database)
    again = db.upgrade(old_database)
    assert again == db.Upgrade(db.head(), db.head()) and not again.changed
    assert len(JobStore(old_database).list()) == 2


def test_a_fresh_database_reaches_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'lavahub.sqlite'}"
    assert db.current(url) is None
    assert db.upgrade(url) == db.Upgrade(None, db.head())
    assert db.current(url) == db.head()


def test_stores_bring_their_database_to_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'lavahub.sqlite'}"
    TemplateStore(url)
    assert db.current(url) == db.head()


def test_a_read_only_template_store_changes_nothing(old_database):
    assert [t.slug for t in TemplateStore(old_database, create=False).list()] == ["python"]
    assert db.current(old_database) == "0001"
    assert "alembic_version" not in inspect(db.make_engine(old_database)).get_table_names()


def test_the_row_classes_match_the_migrated_schema(old_database, tmp_path):
    assert spawner.store.Base is services.jobs.store.Base is lavahub.auth.store.Base is db.Base
    assert spawner.holdings.Base is db.Base
    fresh = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    for url in (old_database, fresh):
        db.upgrade(url)
        with db.make_engine(url).connect() as connection:
            opts = {"compare_type": True, "compare_server_default": True}
            context = MigrationContext.configure(connection, opts=opts)
            assert compare_metadata(context, db.Base.metadata) == [], url


def test_a_duplicate_template_version_is_refused(tmp_path):
    store = TemplateStore(f"sqlite:///{tmp_path / 'lavahub.sqlite'}")
    row = {"slug": "python", "spec": PYTHON, "author": "admin", "created_at": datetime.now(UTC)}
    with store.engine.begin() as connection:
        connection.execute(insert(spawner.store.TemplateRow).values(
            slug="python", spec=PYTHON, version=1, enabled=True, updated_by="admin",
            updated_at=datetime.now(UTC),
        ))  # fmt: skip
        connection.execute(insert(spawner.store.TemplateVersionRow).values(version=1, **row))
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(spawner.store.TemplateVersionRow).values(version=1, **row))


def test_sqlite_waits_for_locks_and_logs_ahead(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'lavahub.sqlite'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_job_store_update_sets_only_explicit_columns(tmp_path):
    from tests.unit.jobs.test_store import spec

    store = JobStore(f"sqlite:///{tmp_path / 'lavahub.sqlite'}")
    job = store.add(spec("3" * 16))
    assert (job.template_version, job.queue, job.submitted) == (1, "default", False)
    assert store.spec_of(job.id) == {
        "image": "python:3.11",
        "env": {},
        "cwd": "/tmp",
        "volumes": [],
        "gpu_type": None,
        "min_workers": None,
    }
    store.update(job.id, submitted=True, backend_state={"ray": "raysubmit_1"})
    stored = store.get(job.id)
    assert stored is not None
    assert stored.submitted and stored.backend_state == {"ray": "raysubmit_1"}
    with pytest.raises(TypeError, match="state"):
        store.update(job.id, state="running")


def test_asking_for_the_revision_makes_no_database(tmp_path):
    assert db.current(f"sqlite:///{tmp_path / 'lavahub.sqlite'}") is None
    assert not (tmp_path / "lavahub.sqlite").exists()
