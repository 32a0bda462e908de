"""The spawn form's script in a browser: picking another template starts from its defaults."""

from __future__ import annotations

from spawner.form import render_form
from spawner.projects import Project
from spawner.templates import template_from_dict

TEMPLATES = [
    template_from_dict({"slug": "big", "image": "i", "cpus": 4, "max_cpus": 16, "gpus": 1, "max_gpus": 4,
                        "memory": "16Gi", "max_memory": "64Gi"}),
    template_from_dict({"slug": "small", "image": "i", "cpus": 1, "max_cpus": 2, "gpus": 0, "max_gpus": 0,
                        "memory": "2Gi", "max_memory": "4Gi"}),
]  # fmt: skip
PROJECTS = {"default": Project("default", ("alice",))}
LAST_START = {"project": "default", "template": "big", "cpus": "12", "gpus": "3", "memory": "48Gi"}


def values(page) -> dict[str, tuple[str, str]]:
    """Each resource input's (value, placeholder)."""
    return {
        key: (page.input_value(f"#lavahub-{key}"), page.get_attribute(f"#lavahub-{key}", "placeholder"))
        for key in ("cpus", "gpus", "memory")
    }


def test_the_last_starts_values_stay_for_its_template_and_another_starts_from_its_defaults(browser):
    page = browser.new_page()
    page.set_content(f"<form>{render_form(TEMPLATES, PROJECTS, LAST_START)}</form>")
    assert values(page) == {"cpus": ("12", "4"), "gpus": ("3", "1"), "memory": ("48Gi", "16Gi")}

    page.check("input[value='small']")  # its maxima are below the last start's values
    assert values(page) == {"cpus": ("", "1"), "gpus": ("", "0"), "memory": ("", "2Gi")}
    assert page.get_attribute("#lavahub-cpus", "max") == "2"

    page.fill("#lavahub-cpus", "1.5")
    page.check("input[value='big']")  # and back: the defaults again, not what was typed for small
    assert values(page) == {"cpus": ("", "4"), "gpus": ("", "1"), "memory": ("", "16Gi")}
    page.close()


def test_values_from_a_template_no_longer_offered_are_not_kept(browser):
    page = browser.new_page()
    page.set_content(f"<form>{render_form(TEMPLATES[1:], PROJECTS, LAST_START)}</form>")
    assert page.is_checked("input[value='small']")
    assert values(page) == {"cpus": ("", "1"), "gpus": ("", "0"), "memory": ("", "2Gi")}
    page.close()
