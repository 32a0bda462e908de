"""A submission's checks that depend on where workers run: volumes as workers see them, capabilities."""

import pytest

from lavahub.config import JobsConfig, KubernetesStorage
from services.jobs.backends.base import Capabilities
from services.jobs.spec import Caller, validate_submission
from spawner.errors import PublicError
from spawner.projects import project_from_dict
from spawner.templates import template_from_dict
from spawner.volumes import kube_volume_plan

PROJECTS = {"vision": project_from_dict("vision", {"members": ["alice"]}, "projects.vision")}
TEMPLATES = [
    template_from_dict({"slug": "python", "image": "python:3.11", "cpus": 1}, "templates[0]"),
    template_from_dict({"slug": "cuda", "image": "python:3.11", "max_gpus": 2}, "templates[1]"),
]
RAY = Capabilities(frameworks=("python", "pytorch", "ray"), driver_frameworks=frozenset({"ray"}))
POD_VOLUMES = kube_volume_plan("alice", "vision", admin=False, storage=KubernetesStorage())


def submit(body, capabilities=RAY):
    return validate_submission(
        body, caller=Caller("alice"), projects=PROJECTS, templates=TEMPLATES, limits=JobsConfig(),
        capabilities=capabilities, capacity=None, volumes=POD_VOLUMES, job_id="a" * 16,
    )  # fmt: skip


def test_a_pods_working_directory_is_where_the_pod_mounts_the_volumes():
    spec = submit({"code": "print(1)", "cwd": "/home/jovyan/notebooks/./exp"})
    assert spec.cwd == "/home/jovyan/notebooks/exp"
    assert spec.job_dir == f"/home/jovyan/.lavahub/jobs/{'a' * 16}"
    assert submit({"code": "print(1)", "cwd": "/mnt/projects/vision"}).cwd == "/mnt/projects/vision"
    assert submit({"code": "print(1)"}).cwd == "/home/jovyan"
    assert {v.kind for v in spec.volumes} == {"personal", "project", "global"}


@pytest.mark.parametrize("cwd", ["/etc", "/home/jovyan/../../etc", "/home/jovyanx", "relative/dir"])
def test_a_working_directory_outside_the_volumes_is_refused(cwd):
    with pytest.raises(PublicError) as refused:
        submit({"code": "print(1)", "cwd": cwd})
    assert refused.value.field == "cwd"


def test_the_backends_capabilities_decide_frameworks_and_driver_jobs():
    with pytest.raises(PublicError) as refused:
        submit({"code": "print(1)", "framework": "mpi"})
    assert refused.value.field == "framework"
    assert str(refused.value).startswith("framework must be one of python, pytorch, ray, got 'mpi'.")
    assert "does not run mpi jobs" in (refused.value.hint or "")
    with pytest.raises(PublicError) as refused:
        submit({"code": "print(1)", "framework": "ray", "workers": 2})
    assert refused.value.field == "workers"
    everything = Capabilities(frameworks=("python", "pytorch", "mpi", "ray"))
    with pytest.raises(PublicError) as refused:
        no_gpus = Capabilities(frameworks=("python",), gpus=False)
        submit({"code": "print(1)", "gpus": 1, "template": "cuda"}, no_gpus)
    assert (str(refused.value).split(" (")[0], refused.value.field) == (
        "This platform's job backend runs no GPU jobs.",
        "gpus",
    )
    assert submit({"code": "print(1)", "framework": "mpi", "workers": 2}, everything).workers == 2


@pytest.mark.parametrize("field,value", [("name", "cell\n"), ("result", "y\n"), ("env", {"X\n": "1"})])
def test_a_trailing_newline_makes_no_name_valid(field, value):
    with pytest.raises(PublicError) as refused:
        submit({"code": "print(1)", field: value})
    assert refused.value.field == field


def test_a_user_with_as_many_unfinished_jobs_as_allowed_is_refused_another():
    def submit_with(unfinished):
        return validate_submission(
            {"code": "print(1)"}, caller=Caller("alice"), projects=PROJECTS, templates=TEMPLATES,
            limits=JobsConfig(max_unfinished_per_user=3), capabilities=RAY, capacity=None,
            volumes=POD_VOLUMES, job_id="a" * 16, unfinished=unfinished,
        )  # fmt: skip

    assert submit_with(2).id == "a" * 16
    with pytest.raises(PublicError) as refused:
        submit_with(3)
    assert str(refused.value).startswith(
        "You have 3 unfinished jobs; at most 3 may be pending or running at once (jobs.max_unfinished_per_user)."
    )
    assert refused.value.hint and "cancel" in refused.value.hint and refused.value.field is None
    assert JobsConfig().max_unfinished_per_user == 20


def test_only_a_job_larger_than_the_projects_whole_quota_is_refused():
    projects = {"small": project_from_dict("small", {"members": ["alice"], "quota": {"cpus": 2}}, "p")}

    def submit_to(workers):
        return validate_submission(
            {"code": "print(1)", "project": "small", "workers": workers, "cpus": 1}, caller=Caller("alice"),
            projects=projects, templates=TEMPLATES, limits=JobsConfig(), capabilities=RAY, capacity=None,
            volumes=POD_VOLUMES, job_id="a" * 16,
        )  # fmt: skip

    assert submit_to(2).workers == 2  # the whole quota: accepted, whatever holds it now
    with pytest.raises(PublicError) as refused:
        submit_to(3)
    assert refused.value.message == (
        "Project 'small' has a quota of 2 CPUs, and this job asks for 3 in all: it could never start."
    )
    assert refused.value.field == "cpus" and "at most 2 CPUs in all" in (refused.value.hint or "")
