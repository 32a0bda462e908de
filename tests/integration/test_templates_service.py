"""The `templates` service in a real hub: who may do what, validation, versions, live pickup."""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.conftest import PLATFORM, start_platform

pytestmark = pytest.mark.integration

# bob holds custom:templates:admin through the config; alice is a plain user
CATALOGUE_PLATFORM = {**PLATFORM, "templates_service": {"admins": ["bob"]}}
NEW = {"slug": "r-lang", "display_name": "R", "image": "quay.io/jupyter/r-notebook:2025-01-06",
       "max_cpus": 2, "projects": ["default"]}  # fmt: skip


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    running = start_platform(tmp_path_factory.mktemp("templates"), CATALOGUE_PLATFORM)
    deadline = time.monotonic() + 60  # the hub starts its services after it answers
    while time.monotonic() < deadline:
        if running.client("admin").templates("GET").status_code == 200:
            break
        time.sleep(0.5)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clients(platform):
    return {name: platform.client(name) for name in ("alice", "bob", "admin")}


WRITES = [
    ("POST", "", NEW),
    ("PUT", "/python", {"slug": "python", "image": "python:3.12"}),
    ("PATCH", "/python", {"max_cpus": 3}),
    ("DELETE", "/pytorch", None),
    ("POST", "/python/rollback", {"version": 1}),
    ("GET", "/python/history", None),
]


def test_anonymous_gets_401_everywhere(platform):
    for method, path, body in [("GET", "", None), *WRITES]:
        response = requests.request(
            method, f"{platform.url}/services/templates/api/templates{path}", json=body, timeout=10
        )
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"] == "Authentication required."


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_plain_user_gets_403_from_every_write(clients, method, path, body):
    response = clients["alice"].templates(method, path, json=body)
    assert response.status_code == 403, response.text
    assert response.json() == {
        "error": "Only admins change templates.",
        "hint": "ask an admin, or for the scope custom:templates:admin",
    }


def test_users_list_their_projects_templates_and_admins_all_with_usage(clients):
    bob = [t["slug"] for t in clients["bob"].templates("GET").json()["templates"]]
    assert bob == ["python", "pytorch", "retired"], "the scope holder sees disabled ones too"
    alice = clients["alice"].templates("GET").json()
    assert [t["slug"] for t in alice["templates"]] == ["python", "pytorch"] and "usage" not in alice
    assert clients["alice"].templates("GET", "/retired").status_code == 404
    admin = clients["admin"].templates("GET").json()
    assert admin["usage"] == {"pytorch": 0, "python": 0, "retired": 0}


def test_create_validate_patch_history_and_rollback(clients, platform):
    bob, alice = clients["bob"], clients["alice"]
    bad = bob.templates("POST", json={**NEW, "max_gpus": "two"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "max_gpus" and "must be a whole number" in bad.json()["error"]
    assert bob.templates("POST", json={**NEW, "projects": ["nope"]}).json()["field"] == "projects[0]"

    created = bob.templates("POST", json=NEW)
    assert created.status_code == 201 and created.json()["version"] == 1
    assert bob.templates("POST", json=NEW).status_code == 409
    # a user of the project sees it at once, in the API and in the spawn form
    assert "r-lang" in [t["slug"] for t in alice.templates("GET").json()["templates"]]
    assert 'value="r-lang"' in alice.page("hub/spawn").text

    patched = bob.templates("PATCH", "/r-lang", json={"max_cpus": 1.5, "description": "R 4"})
    assert patched.status_code == 200 and patched.json()["version"] == 2
    assert bob.templates("PATCH", "/r-lang", json={"slug": "other"}).json()["field"] == "slug"
    history = bob.templates("GET", "/r-lang/history").json()["versions"]
    assert [(v["version"], v["author"]) for v in history] == [(1, "bob"), (2, "bob")]
    assert history[1]["changes"] == {
        "description": {"from": "", "to": "R 4"}, "max_cpus": {"from": 2.0, "to": 1.5},
    }  # fmt: skip
    restored = bob.templates("POST", "/r-lang/rollback", json={"version": 1})
    assert restored.json()["version"] == 3 and restored.json()["max_cpus"] == 2.0
    missing = bob.templates("POST", "/r-lang/rollback", json={"version": 9})
    assert missing.status_code == 404 and "has no version 9" in missing.json()["error"]

    assert bob.templates("DELETE", "/r-lang").status_code == 204
    assert bob.templates("GET", "/r-lang").status_code == 404


def test_deleting_a_template_in_use_disables_it(clients):
    alice, admin = clients["alice"], clients["admin"]
    assert alice.spawn("", {"project": "default", "template": "python"}).status_code in (201, 202)
    alice.wait_ready()
    try:
        assert admin.templates("GET").json()["usage"]["python"] == 1
        answer = admin.templates("DELETE", "/python")
        assert answer.status_code == 200 and answer.json()["deleted"] is False
        assert "used by 1 running workspace" in answer.json()["message"]
        assert answer.json()["enabled"] is False
        refused = alice.spawn("again", {"project": "default", "template": "python"})
        assert refused.status_code == 400 and "disabled" in refused.json()["message"]
    finally:
        alice.stop()
        admin.templates("PATCH", "/python", json={"enabled": True})


def browser_session(client):
    """The client's hub login cookie, without its token: what a browser has."""
    session = requests.Session()
    session.cookies.update(client.session.cookies)
    return session


def page_form(session, url, fields, *, xsrf=True):
    token = session.cookies.get("_xsrf", path="/services/templates/") if xsrf else ""
    return session.post(url, data={**fields, "_xsrf": token}, timeout=30, allow_redirects=False)


def test_the_admin_page_creates_with_inline_errors_and_users_only_read(clients, platform):
    base = f"{platform.url}/services/templates/"
    admin = browser_session(clients["admin"])
    listing = admin.get(base, timeout=30)  # through the hub's OAuth, back with the service's cookie
    assert listing.status_code == 200 and 'id="template-python"' in listing.text
    assert "New template" in listing.text and 'class="usage"' in listing.text

    form = admin.get(base + "new", timeout=30)
    assert form.status_code == 200 and 'name="_xsrf"' in form.text
    fields = {"slug": "julia", "display_name": "Julia", "image": "quay.io/jupyter/julia-notebook:2025-01-06",
              "cpus": "1", "max_cpus": "2", "max_gpus": "two", "projects": "default",
              "enabled": "on"}  # fmt: skip
    refused = page_form(admin, base + "new", fields)
    assert refused.status_code == 400
    assert 'id="error-max_gpus"' in refused.text and "must be a whole number" in refused.text
    assert 'value="quay.io/jupyter/julia-notebook:2025-01-06"' in refused.text, "what was typed is kept"
    forged = page_form(admin, base + "new", {**fields, "max_gpus": "0"}, xsrf=False)
    assert forged.status_code == 403 and clients["admin"].templates("GET", "/julia").status_code == 404
    created = page_form(admin, base + "new", {**fields, "max_gpus": "0"})
    assert created.status_code == 302
    assert 'value="julia"' in clients["alice"].page("hub/spawn").text, (
        "users see it in the spawn form at once"
    )

    assert page_form(admin, base + "toggle/julia", {}).status_code == 302
    assert clients["alice"].templates("GET", "/julia").status_code == 404, "disabled"
    history = admin.get(base + "history/julia", timeout=30)
    assert "Restore version 1" in history.text and "enabled: True &rarr; False" in history.text
    assert page_form(admin, base + "rollback/julia", {"version": "1"}).status_code == 302
    assert clients["alice"].templates("GET", "/julia").json()["version"] == 3

    alice = browser_session(clients["alice"])
    mine = alice.get(base, timeout=30)
    assert mine.status_code == 200 and "New template" not in mine.text and 'id="template-julia"' in mine.text
    alice.get(base + "new", timeout=30)
    assert page_form(alice, base + "new", {**fields, "slug": "mine", "max_gpus": "0"}).status_code == 403
    assert clients["admin"].templates("GET", "/mine").status_code == 404


def test_the_page_shows_each_error_next_to_its_own_field(clients, platform):
    base = f"{platform.url}/services/templates/"
    admin = browser_session(clients["admin"])
    admin.get(base + "new", timeout=30)
    fields = {"slug": "octave", "image": "gnu/octave:9", "max_cpus": "1", "enabled": "on"}
    unknown = page_form(admin, base + "new", {**fields, "projects": "default, nope"})
    assert unknown.status_code == 400
    next_to_projects = '<span class="help-block lavahub-error" id="error-projects">template.projects[1]: no'
    assert next_to_projects in unknown.text
    assert 'value="default, nope"' in unknown.text, "what was typed is kept"
    taken = page_form(admin, base + "new", {**fields, "slug": "python"})
    assert taken.status_code == 400 and 'id="error-slug"' in taken.text and "exists already" in taken.text
    assert 'id="error-projects"' not in taken.text
    escaped = page_form(admin, base + "new", {**fields, "display_name": "<b>x</b>", "image": "<i>"})
    assert 'id="error-image"' in escaped.text and "<i>" not in escaped.text, "autoescaped"
    assert 'value="&lt;b&gt;x&lt;/b&gt;"' in escaped.text
