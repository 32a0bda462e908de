"""The Ray backend writes a job's directory on its user's volume without following anything planted there."""

import json
import os
from dataclasses import replace

import pytest

from services.jobs.backends.ray.jobdir import SPEC_FILE, write_job_dir
from services.jobs.backends.untrusted import Untrusted
from tests.unit.jobs.test_store import spec


def job_spec(volume, job_id="a" * 16):
    return replace(spec(job_id), job_dir=str(volume / ".lavahub" / "jobs" / job_id), cwd=str(volume))


def test_a_job_directory_is_made_with_its_files(tmp_path):
    volume = tmp_path / "users" / "alice"
    job = job_spec(volume)
    written = write_job_dir(job)
    assert (written / "code.py").read_text() == "print(1)"
    assert json.loads((written / SPEC_FILE).read_text())["id"] == job.id
    assert (written / "logs").is_dir()
    write_job_dir(job)  # again (a submission retried): the files are simply replaced
    assert (written / "code.py").read_text() == "print(1)"


def test_a_planted_link_on_the_way_is_not_followed(tmp_path):
    volume, elsewhere = tmp_path / "users" / "alice", tmp_path / "etc"
    volume.mkdir(parents=True)
    elsewhere.mkdir()
    (volume / ".lavahub").symlink_to(elsewhere)
    with pytest.raises(Untrusted, match="link"):
        write_job_dir(job_spec(volume))
    assert list(elsewhere.iterdir()) == [], "nothing was written where the link points"


def test_a_file_planted_as_a_link_is_replaced_not_written_through(tmp_path):
    volume = tmp_path / "users" / "alice"
    job = job_spec(volume)
    job_dir = volume / ".lavahub" / "jobs" / job.id
    job_dir.mkdir(parents=True)
    victim = tmp_path / "bobs-notebook.py"
    victim.write_text("bob's work")
    os.symlink(victim, job_dir / "code.py")
    write_job_dir(job)
    assert victim.read_text() == "bob's work"
    assert not (job_dir / "code.py").is_symlink() and (job_dir / "code.py").read_text() == "print(1)"
