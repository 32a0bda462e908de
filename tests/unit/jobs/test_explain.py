from datetime import UTC, datetime

from services.jobs.backends.base import Diagnosis, shortfalls
from services.jobs.explain import explain
from services.jobs.models import Job, JobState
from spawner.resources import Resources

GI = 2**30


def job(state=JobState.PENDING, user="alice", workers=2, **extra):
    return Job(
        id=extra.pop("id", "a" * 16), name="cell", user=user, project="default", template="python",
        framework="python", workers=workers, resources=Resources(1, GI, 0), state=state,
        created=datetime.now(UTC), timeout=60, job_dir="/tmp/x", **extra,
    )  # fmt: skip


def test_pending_names_missing_resources_and_the_queue():
    ahead = [job(JobState.RUNNING, user="bob", id="b" * 16), job(JobState.PENDING, id="c" * 16)]
    short = shortfalls(job().total, used=Resources(1.5, 0, 0), total=Resources(2, 8 * GI, 0))
    told = explain(job(), diagnosis=Diagnosis(shortfalls=short), ahead=ahead, failing_lines=[])
    assert told["summary"].startswith("The job is waiting: the cluster does not have enough free CPUs")
    assert "It asks for 2 workers x (0 GPUs, 1 CPU, 1Gi memory)." in told["details"]
    assert "CPUs: needs 2, 0.5 of 2 free." in told["details"]
    assert (
        "2 jobs submitted earlier are still waiting or running (1 of them yours: cccccccccccccccc)."
        in told["details"]
    )
    assert any(
        s.startswith("cancel one of your own earlier jobs: cccccccccccccccc") for s in told["suggestions"]
    )


def test_pending_while_the_cluster_starts():
    told = explain(
        job(), diagnosis=Diagnosis(waiting_for="the local Ray cluster to start"), ahead=[], failing_lines=[]
    )
    assert told["summary"] == "The job is waiting for the local Ray cluster to start."


def test_failed_shows_the_reason_and_the_workers_last_lines():
    failed = job(JobState.FAILED, reason="worker 1 exited with code 3", exit_code=3)
    told = explain(failed, diagnosis=None, ahead=[], failing_lines=["[worker-1] boom"])
    assert told["summary"] == "The job failed: worker 1 exited with code 3."
    assert told["details"] == ["[worker-1] boom"]
    timed_out = explain(job(JobState.FAILED, reason="timeout"), diagnosis=None, ahead=[], failing_lines=[])
    assert timed_out["suggestions"] == ["raise --timeout (it was 60 s) or make the job shorter"]


def test_other_users_jobs_ahead_are_counted_never_named():
    ahead = [job(JobState.RUNNING, user="bob", id="b" * 16), job(JobState.PENDING, user="carol", id="d" * 16)]
    told = explain(job(), diagnosis=Diagnosis(), ahead=ahead, failing_lines=[])
    text = " ".join(told["details"] + told["suggestions"])
    assert "2 jobs submitted earlier are still waiting or running." in told["details"]
    for other in ("bob", "carol", "b" * 16, "d" * 16):
        assert other not in text
    assert told["suggestions"] == []
    one_of_mine = explain(job(), diagnosis=Diagnosis(), ahead=[job(id="c" * 16)], failing_lines=[])
    assert (
        "1 job submitted earlier is still waiting or running (yours: cccccccccccccccc)."
        in one_of_mine["details"]
    )


def test_waiting_for_the_projects_quota_counts_holders_and_says_the_place_in_the_queue():
    from services.jobs.explain import QuotaWait, ordinal
    from spawner.holdings import Short

    wait = QuotaWait("default", 2, Short("CPUs", 1, 1, 1), workspaces=1, jobs=1)
    ahead = [job(JobState.RUNNING, user="bob", id="b" * 16)]
    told = explain(job(), diagnosis=Diagnosis(), ahead=ahead, failing_lines=[], quota=wait)
    assert told["summary"] == (
        "The job is waiting for project default's quota: 1 of 1 CPUs held by 1 workspace and 1 job; "
        "2nd in the project's queue."
    )
    assert told["details"][0] == "It asks for 2 workers x (0 GPUs, 1 CPU, 1Gi memory)."
    text = " ".join([told["summary"], *told["details"], *told["suggestions"]])
    assert "bob" not in text and "b" * 16 not in text
    memory = QuotaWait("default", 1, Short("memory", 32 * GI, 30 * GI, 4 * GI), jobs=3)
    told = explain(job(), diagnosis=None, ahead=[], failing_lines=[], quota=memory)
    assert "30Gi of 32Gi memory held by 3 jobs; 1st in" in told["summary"]
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th",
    ]  # fmt: skip


def test_a_pending_jobs_place_in_its_queue_is_a_field_too():
    from services.jobs.explain import QuotaWait

    queued = explain(job(), diagnosis=Diagnosis(pool="default", position=3), ahead=[], failing_lines=[])
    assert queued["position"] == 3
    quota = QuotaWait(project="default", position=2)
    assert (
        explain(job(), diagnosis=Diagnosis(position=7), ahead=[], failing_lines=[], quota=quota)["position"]
        == 2
    )  # the project's queue comes first: the cluster's is not reached yet
    assert explain(job(), diagnosis=None, ahead=[], failing_lines=[])["position"] is None
    assert "position" not in explain(job(JobState.RUNNING), diagnosis=None, ahead=[], failing_lines=[])
