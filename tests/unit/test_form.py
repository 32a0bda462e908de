from html.parser import HTMLParser

from spawner.form import options_from_form, render_form
from spawner.projects import Project
from spawner.templates import template_from_dict


class Inputs(HTMLParser):
    def __init__(self, html):
        super().__init__()
        self.radios, self.options, self.selected = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "radio":
            self.radios.append(attrs["value"])
        if tag == "option":
            self.options.append(attrs["value"])
            if "selected" in attrs:
                self.selected.append(attrs["value"])


def mine(projects, user):
    return {n: p for n, p in projects.items() if user in p.members}


def test_only_enabled_templates_of_the_users_projects_are_offered(projects, templates):
    alice = Inputs(render_form(templates, mine(projects, "alice")))
    assert alice.options == ["default", "vision"]
    assert alice.radios == ["python", "pytorch"]  # "retired" is disabled
    bob = Inputs(render_form(templates, mine(projects, "bob")))
    assert bob.options == ["default"]
    assert bob.radios == ["python"]  # pytorch is vision-only


def test_previous_choices_are_preselected(projects, templates):
    form = render_form(
        templates, mine(projects, "alice"), {"project": "vision", "template": "pytorch", "gpus": 2}
    )
    assert Inputs(form).selected == ["vision"]
    assert 'value="pytorch" checked' in form
    assert 'name="gpus" value="2"' in form


def test_text_is_escaped(projects):
    evil = template_from_dict(
        {
            "slug": "x",
            "image": "python:3.11",
            "display_name": "<script>alert(1)</script>",
            "description": '"><b>',
        }
    )
    form = render_form([evil], mine(projects, "alice"))
    assert "<script>alert(1)</script>" not in form
    assert "&lt;script&gt;" in form


def test_no_projects_or_no_templates_explain_themselves(projects, templates):
    assert "not a member of any project" in render_form(templates, {})
    only_vision = [templates[1]]
    assert "No template is available" in render_form(only_vision, {"x": Project("x", ("bob",))})


def test_form_data_to_options_drops_empty_fields():
    formdata = {
        "project": ["vision"],
        "template": ["pytorch"],
        "gpus": [""],
        "cpus": [" 2 "],
        "memory": ["8Gi"],
    }
    assert options_from_form(formdata) == {
        "project": "vision",
        "template": "pytorch",
        "cpus": "2",
        "memory": "8Gi",
    }
    assert options_from_form({}) == {}
