from dataclasses import replace

import pytest

from spawner.store import TemplateStore


@pytest.fixture
def store(tmp_path):
    return TemplateStore(f"sqlite:///{tmp_path / 'db' / 'lavahub.sqlite'}")


def test_seed_adds_templates_once(store, templates):
    report = store.seed(templates)
    assert report.added == ["python", "pytorch", "retired"]
    assert [t.slug for t in store.list()] == ["python", "pytorch", "retired"]
    assert all(t.version == 1 for t in store.list())
    again = store.seed(templates)
    assert (again.added, again.updated, again.kept) == ([], [], [])
    assert all(t.version == 1 for t in store.list())


def test_stored_template_equals_the_seeded_one(store, templates):
    store.seed(templates)
    assert store.get("pytorch") == templates[1].with_version(1)
    assert store.get("missing") is None


def test_config_changes_apply_until_an_admin_edits(store, templates):
    store.seed(templates)
    bigger = replace(templates[0], max_cpus=8)
    report = store.seed([bigger])
    assert report.updated == ["python"]
    assert store.get("python").max_cpus == 8 and store.get("python").version == 2

    store.put(replace(bigger, description="edited by an admin"), author="admin")
    report = store.seed([replace(templates[0], max_cpus=16)])
    assert report.kept == ["python"]
    kept = store.get("python")
    assert (kept.description, kept.max_cpus, kept.version) == ("edited by an admin", 8, 3)


def test_every_change_is_a_version_with_its_author(store, templates):
    store.seed(templates[:1])
    store.put(replace(templates[0], enabled=False), author="admin")
    history = store.history("python")
    assert [(h["version"], h["author"], h["spec"]["enabled"]) for h in history] == [
        (1, "config", True),
        (2, "admin", False),
    ]
    assert store.get("python").enabled is False


def test_store_survives_reopening(tmp_path, templates):
    url = f"sqlite:///{tmp_path / 'lavahub.sqlite'}"
    TemplateStore(url).seed(templates)
    assert len(TemplateStore(url).list()) == 3


def test_history_says_field_by_field_what_each_version_changed(store, templates):
    store.seed(templates[:1])
    store.put(replace(templates[0], max_cpus=3, description="more CPUs"), author="dana")
    first, second = store.history("python")
    assert first["changes"]["slug"] == {"from": None, "to": "python"}, "the first version adds every field"
    assert second["changes"] == {
        "description": {"from": "", "to": "more CPUs"},
        "max_cpus": {"from": 4.0, "to": 3.0},
    }


def test_rollback_restores_an_old_version_as_a_new_one(store, templates):
    store.seed(templates[:1])
    store.put(replace(templates[0], image="python:3.12"), author="dana")
    restored = store.rollback("python", 1, author="erin")
    assert (restored.version, restored.image) == (3, templates[0].image)
    assert store.get("python").image == templates[0].image
    last = store.history("python")[-1]
    assert last["author"] == "erin" and last["changes"] == {
        "image": {"from": "python:3.12", "to": templates[0].image}
    }


@pytest.mark.parametrize(
    ("slug", "version", "message"), [("python", 9, "has no version 9"), ("nope", 1, "No template")]
)
def test_rollback_to_nothing_is_refused(store, templates, slug, version, message):
    from spawner.errors import PublicError

    store.seed(templates[:1])
    with pytest.raises(PublicError, match=message):
        store.rollback(slug, version, author="erin")
    assert store.get("python").version == 1
