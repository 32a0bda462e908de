"""Why a Volcano job waits, and what it became: from objects as Volcano writes them, to words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.jobs.backends.volcano.diagnose import Facts, diagnose, quantity
from services.jobs.backends.volcano.states import observe
from services.jobs.explain import explain
from services.jobs.models import Job, JobState
from spawner.resources import Resources

GANG_MESSAGE = (
    "4/4 tasks in gang unschedulable: pod group is not ready, 4 Pending, 4 minAvailable; Pending: "
    "4 Unschedulable. Origin reason is cell-0123-worker-0: 0/2 nodes are unavailable: 2 Insufficient "
    "nvidia.com/gpu."
)


def vcjob(phase: str = "Pending", *, queue: str = "vision", min_available: int = 4) -> dict[str, Any]:
    return {
        "metadata": {"name": "cell-0123", "uid": "u1", "labels": {}},
        "spec": {
            "queue": queue,
            "minAvailable": min_available,
            "tasks": [{"name": "worker", "replicas": 4, "template": {"spec": {"containers": [
                {"name": "job", "resources": {"limits": {"cpu": "2", "nvidia.com/gpu": "2"}}}]}}}],
        },
        "status": {"state": {"phase": phase}},
    }  # fmt: skip


def queue(capability: dict[str, str], allocated: dict[str, str], state: str = "Open") -> dict[str, Any]:
    return {"spec": {"capability": capability}, "status": {"state": state, "allocated": allocated}}


def podgroup(
    name: str, phase: str, created: str, conditions: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"queue": "vision"},
        "status": {"phase": phase, "conditions": conditions or []},
    }


def pod(index: int, *, node: str | None = None, waiting: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if waiting:
        status["containerStatuses"] = [
            {
                "name": "job",
                "image": "bad/image:1",
                "state": {"waiting": {"reason": waiting, "message": "not found"}},
            }
        ]
    return {
        "metadata": {"name": f"cell-0123-worker-{index}", "labels": {"volcano.sh/task-spec": "worker",
                     "volcano.sh/task-index": str(index)}},
        "spec": {"nodeName": node, "containers": [{"name": "job", "resources": {"requests": {"nvidia.com/gpu": "2"}}}]},
        "status": status,
    }  # fmt: skip


def node(name: str, gpus: int, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {}},
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": str(gpus)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def job(workers: int = 4, gpus: int = 2) -> Job:
    return Job(
        id="0123", name="cell", user="alice", project="vision", template="pytorch", framework="python",
        workers=workers, resources=Resources(cpus=2, memory=0, gpus=gpus), state=JobState.PENDING,
        created=datetime.now(UTC), timeout=60, job_dir="/home/jovyan/.lavahub/jobs/0123",
    )  # fmt: skip


def told(facts: Facts, j: Job | None = None) -> dict[str, Any]:
    j = j or job()
    return explain(j, diagnosis=diagnose(facts, j.resources, j.workers), ahead=[], failing_lines=[])


def test_a_job_over_its_queues_free_capability_waits_for_quota_with_the_numbers_and_its_place() -> None:
    groups = [
        podgroup("a-1", "Running", "2026-01-01T00:00:00Z"),
        podgroup("b-2", "Running", "2026-01-01T00:00:01Z"),
        podgroup("c-3", "Pending", "2026-01-01T00:00:02Z"),
        podgroup("cell-0123-u1", "Pending", "2026-01-01T00:00:03Z"),
    ]
    facts = Facts(
        vcjob=vcjob(), pods=[], podgroup=groups[-1], queue_groups=groups,
        queue=queue({"nvidia.com/gpu": "8"}, {"nvidia.com/gpu": "6"}),
    )  # fmt: skip
    answer = told(facts)
    assert answer["reason"] == "WaitingForQuota"
    assert answer["summary"] == (
        "The job is waiting for quota: it needs 8 GPUs in queue vision, whose capability is 8, 6 in use "
        "by 2 jobs; 2nd in the queue."
    )
    assert "ask for fewer workers: 1 would fit in the queue now" in answer["suggestions"]


def test_no_node_with_enough_gpus_for_one_worker() -> None:
    facts = Facts(
        vcjob=vcjob("Pending"), pods=[pod(i) for i in range(4)],
        podgroup=podgroup("cell-0123-u1", "Inqueue", "2026-01-01T00:00:00Z",
                          [{"type": "Unschedulable", "status": "True", "message": GANG_MESSAGE}]),
        queue=queue({}, {}), nodes=[node("n1", 1), node("n2", 1), node("n3", 8, ready=False)],
    )  # fmt: skip
    answer = told(facts)
    assert answer["reason"] == "NoNodeFits"
    assert answer["summary"] == (
        "The job is waiting: no node has 2 free GPUs for one worker (the most free on any node it may use is 1)."
    )
    assert f"Volcano says: {GANG_MESSAGE}" in answer["details"]
    assert "ask for at most 1 GPUs per worker" in answer["suggestions"]
    assert "GPUs: needs 2, 1 of 8 free." not in answer["details"]  # the best ready node has 1 of 1


def test_single_workers_fit_but_not_the_whole_gang() -> None:
    facts = Facts(
        vcjob=vcjob("Pending"), pods=[pod(i) for i in range(4)],
        podgroup=podgroup("cell-0123-u1", "Inqueue", "2026-01-01T00:00:00Z"),
        queue=queue({}, {}), nodes=[node("n1", 2), node("n2", 4)],
    )  # fmt: skip
    answer = told(facts)
    assert answer["reason"] == "GangIncomplete"
    assert answer["summary"] == (
        "The job is waiting for all 4 of its workers to be placed at once: only 3 fit on the cluster's nodes now."
    )
    assert "ask for at most 3 workers" in answer["suggestions"]


def test_a_closed_queue_and_an_image_that_cannot_be_pulled() -> None:
    closed = Facts(vcjob=vcjob(), pods=[], queue=queue({}, {}, state="Closed"))
    assert told(closed)["reason"] == "QueueClosed"
    assert "an admin opens it" in told(closed)["summary"]
    pulling = Facts(
        vcjob=vcjob("Pending"), pods=[pod(0, node="n1", waiting="ImagePullBackOff")], queue=queue({}, {})
    )
    answer = told(pulling)
    assert (
        answer["reason"] == "ImagePull"
        and "Image bad/image:1 cannot be pulled: not found." in answer["details"]
    )


def test_quantities() -> None:
    assert (quantity("500m"), quantity("8Gi"), quantity("2")) == (0.5, 8 * 2**30, 2.0)


def failed_pod(index: int, code: int, finished: str, reason: str | None = None) -> dict[str, Any]:
    p = pod(index, node="n1")
    p["status"] = {
        "phase": "Failed",
        **({"reason": reason} if reason else {}),
        "containerStatuses": [
            {"name": "job", "state": {"terminated": {"exitCode": code, "finishedAt": finished}}}
        ],
    }
    return p


def test_states_from_volcano_phases_and_the_first_failing_worker() -> None:
    assert observe("python", vcjob("Inqueue"), []).state == JobState.PENDING
    assert observe("python", vcjob("Running"), []).state == JobState.RUNNING
    assert observe("python", vcjob("Completed"), []).state == JobState.SUCCEEDED
    gone = observe("python", None, [])
    assert gone.state == JobState.FAILED and "no longer has this job" in (gone.reason or "")
    pods = [failed_pod(0, 143, "2026-01-01T00:00:05Z"), failed_pod(1, 3, "2026-01-01T00:00:01Z")]
    seen = observe("python", vcjob("Aborted"), pods)
    assert (seen.state, seen.reason, seen.exit_code, seen.failed_worker) == (
        JobState.FAILED, "worker 1 exited with code 3", 3, 1,
    )  # fmt: skip
    late = observe(
        "python", vcjob("Failed"), [failed_pod(0, 137, "2026-01-01T00:00:01Z", "DeadlineExceeded")]
    )
    assert late.reason == "timeout"
    torch = observe("pytorch", vcjob("Aborted"), [failed_pod(0, 2, "x")])
    assert torch.failed_worker == 1  # the pytorch plugin's worker-0 is rank 1 (the master is rank 0)
