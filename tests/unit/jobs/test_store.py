from services.jobs.models import JobSpec, JobState
from services.jobs.store import JobStore
from spawner.resources import Resources


def spec(job_id, user="alice", project="default"):
    return JobSpec(
        id=job_id, name="cell", user=user, project=project, template="python", template_version=1,
        image="python:3.11", framework="python", workers=2, resources=Resources(1, 2**30, 0), timeout=60,
        env={}, code="print(1)", cwd="/tmp", job_dir=f"/tmp/{job_id}",
    )  # fmt: skip


def test_lifecycle_timestamps_and_transitions(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    job = store.add(spec("1" * 16))
    assert job.state == JobState.PENDING and job.started is None
    running = store.transition(job.id, JobState.RUNNING)
    assert running.started is not None and running.finished is None
    failed = store.transition(job.id, JobState.FAILED, reason="worker 1 exited with code 3", exit_code=3)
    assert (failed.reason, failed.exit_code) == ("worker 1 exited with code 3", 3) and failed.finished
    # a finished job never changes again
    assert store.transition(job.id, JobState.CANCELLED).state == JobState.FAILED
    assert [t[0] for t in store.transitions(job.id)] == ["pending", "running", "failed"]
    assert failed.total == Resources(2, 2 * 2**30, 0)


def test_listing_filters_and_order(tmp_path):
    store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
    for i, (user, project) in enumerate([("alice", "default"), ("bob", "default"), ("alice", "vision")]):
        store.add(spec(f"{i:016d}", user, project))
    assert [j.id for j in store.list(user="alice")] == ["0000000000000002", "0000000000000000"]
    assert [j.user for j in store.list(project="default")] == ["bob", "alice"]
    store.transition("0000000000000001", JobState.CANCELLED)
    assert {j.id for j in store.unfinished()} == {"0000000000000000", "0000000000000002"}
    assert [j.id for j in store.list(state="cancelled")] == ["0000000000000001"]
    store.update("0000000000000000", submitted=True)
    stored = store.get("0000000000000000")
    assert stored is not None and stored.submitted is True
