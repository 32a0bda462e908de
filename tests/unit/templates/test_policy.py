"""The templates service's access rule: who sees which template, who may change them."""

import pytest

from services.templates import policy
from spawner.store import TemplateStore

ALICE = {"name": "alice", "groups": ["vision"], "scopes": []}
BOB = {"name": "bob", "groups": [], "scopes": ["custom:templates:admin"]}
ADMIN = {"name": "admin", "admin": True, "groups": []}


@pytest.fixture
def store(tmp_path, templates):
    store = TemplateStore(f"sqlite:///{tmp_path / 'lavahub.sqlite'}")
    store.seed(templates)
    return store


@pytest.mark.parametrize(("user", "writes"), [(ALICE, False), (BOB, True), (ADMIN, True), ({}, False)])
def test_hub_admins_and_the_custom_scope_may_write(user, writes):
    assert policy.may_write(user) is writes


def test_users_see_the_enabled_templates_of_their_projects(store):
    assert [t.slug for t in policy.visible(store.list(), ALICE)] == ["python", "pytorch"]
    assert [t.slug for t in policy.visible(store.list(), {**ALICE, "groups": []})] == ["python"]


def test_writers_see_every_template_disabled_ones_too(store):
    everything = [t.slug for t in store.list()]
    assert [t.slug for t in policy.visible(store.list(), BOB)] == everything
    assert [t.slug for t in policy.visible(store.list(), ADMIN)] == everything


def test_find_answers_only_what_the_user_may_see(store):
    found = policy.find(store, "pytorch", ALICE)
    assert found is not None and found.slug == "pytorch"
    assert policy.find(store, "retired", ALICE) is None
    found = policy.find(store, "retired", ADMIN)
    assert found is not None and found.slug == "retired"
    assert policy.find(store, "missing", ADMIN) is None
