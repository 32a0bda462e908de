import pytest

from spawner.errors import PublicError
from spawner.options import resolve_options


def resolve(options, projects, templates, user="alice", admin=False):
    mine = {name: p for name, p in projects.items() if user in p.members}
    return resolve_options(options, user=user, admin=admin, projects=mine, templates=templates)


def test_missing_fields_take_first_project_and_template_defaults(projects, templates):
    request = resolve({}, projects, templates)
    assert request.project.name == "default"
    assert request.template.slug == "python"
    assert (request.resources.cpus, request.resources.memory, request.resources.gpus) == (1, 2 * 2**30, 0)
    assert resolve(None, projects, templates).template.slug == "python"


def test_template_defaults_follow_the_chosen_template(projects, templates):
    request = resolve({"project": "vision", "template": "pytorch"}, projects, templates)
    assert request.resources.gpus == 1 and request.resources.cpus == 2
    assert request.to_options() == {
        "template": "pytorch",
        "project": "vision",
        "gpus": 1,
        "cpus": 2.0,
        "memory": "4Gi",
    }


def test_form_strings_are_accepted(projects, templates):
    request = resolve(
        {"project": "vision", "template": "pytorch", "gpus": "2", "cpus": "1.5", "memory": "8Gi",
         "gpu_type": "NVIDIA-A100-SXM4-80GB"},
        projects, templates,
    )  # fmt: skip
    assert (request.resources.gpus, request.resources.cpus, request.resources.memory) == (2, 1.5, 8 * 2**30)
    assert request.gpu_type == "NVIDIA-A100-SXM4-80GB"


@pytest.mark.parametrize(
    ("options", "user", "message", "field"),
    [
        ({"template": "nope"}, "alice", "Unknown template 'nope'", "template"),
        ({"template": "retired"}, "alice", "Template 'retired' is disabled", "template"),
        ({"template": "pytorch", "project": "default"}, "alice", "not available in project 'default'", "template"),
        ({"project": "vision"}, "bob", "bob is not a member of project 'vision'", "project"),
        ({"project": "ghost"}, "alice", "not a member of project 'ghost'", "project"),
        ({}, "mallory", "not a member of any project", "project"),
        ({"project": "vision", "template": "pytorch", "gpus": 3}, "alice", "allows at most 2 GPUs; 3 asked for", "gpus"),
        ({"gpus": 1}, "alice", "allows at most 0 GPUs", "gpus"),
        ({"gpus": -1}, "alice", "whole number >= 0", "gpus"),
        ({"gpus": 1.5}, "alice", "whole number >= 0", "gpus"),
        ({"gpus": "many"}, "alice", "gpus must be a number", "gpus"),
        ({"cpus": 5}, "alice", "at most 4 CPUs; 5 asked for", "cpus"),
        ({"cpus": 0}, "alice", "more than 0", "cpus"),
        ({"memory": "9Gi"}, "alice", "at most 8Gi memory; 9Gi asked for", "memory"),
        ({"memory": "a lot"}, "alice", "not an amount of memory", "memory"),
        ({"project": "vision", "template": "pytorch", "gpu_type": "NVIDIA-V100"}, "alice", "not offered", "gpu_type"),
        ({"project": "vision", "template": "pytorch", "gpus": 0, "gpu_type": "NVIDIA-A100-SXM4-80GB"}, "alice", "no GPUs were asked for", "gpu_type"),
        ({"image": "evil:latest"}, "alice", "Unknown workspace option 'image'", "image"),
    ],
)  # fmt: skip
def test_refusals_say_what_and_which_field(projects, templates, options, user, message, field):
    with pytest.raises(PublicError) as refused:
        resolve(options, projects, templates, user=user)
    assert message in str(refused.value)
    assert refused.value.field == field


def test_refusal_hints_list_what_is_available(projects, templates):
    with pytest.raises(PublicError) as refused:
        resolve({"template": "pytorch"}, projects, templates)
    assert refused.value.hint == "templates for project default: python"
    with pytest.raises(PublicError) as refused:
        resolve({"project": "vision"}, projects, templates, user="bob")
    assert refused.value.hint == "your projects: default"


def test_options_must_be_an_object(projects, templates):
    with pytest.raises(PublicError, match="JSON object"):
        resolve(["python"], projects, templates)
