"""In a browser: an admin adds a template on the templates page; a user starts a workspace from it."""

from __future__ import annotations

import pytest

from tests.browser.hub_pages import log_in
from tests.integration.conftest import ADMIN_PASSWORD, PLATFORM, USER_PASSWORD, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture
def platform(tmp_path):
    running = start_platform(tmp_path, PLATFORM)
    yield running
    running.stop()


def test_an_admin_adds_a_template_and_a_user_starts_a_workspace_from_it(browser, platform, tmp_path):
    admin = log_in(browser, platform.url, "admin", ADMIN_PASSWORD)
    admin.goto(f"{platform.url}/hub/home")
    admin.click("text=Services")
    admin.click("a.dropdown-item:has-text('templates'), .dropdown-menu a:has-text('templates')")
    admin.wait_for_selector("#template-python", timeout=30_000)
    admin.click("text=New template")
    admin.fill("#f-slug", "teaching")
    admin.fill("#f-display_name", "Teaching")
    admin.fill("#f-image", "quay.io/jupyter/scipy-notebook:2025-01-06")
    admin.fill("#f-max_cpus", "eight")
    admin.click("button[type=submit]")
    assert "must be a number" in admin.inner_text("#error-max_cpus"), "the error shows next to its field"
    admin.fill("#f-max_cpus", "2")
    admin.fill("#f-projects", "default")
    admin.click("button[type=submit]")
    admin.wait_for_selector("#template-teaching", timeout=30_000)
    admin.screenshot(path=str(tmp_path / "templates-page.png"), full_page=True)

    alice = log_in(browser, platform.url, "alice", USER_PASSWORD)
    alice.goto(f"{platform.url}/hub/spawn")
    alice.select_option("#lavahub-project", "default")
    alice.check("input[value='teaching']")
    alice.click("input[type=submit], button[type=submit]")
    alice.wait_for_url("**/user/alice/lab**", timeout=120_000)
    alice.wait_for_selector(".jp-DirListing-item", timeout=60_000)
    model = platform.client("alice").api("GET", "users/alice").json()
    assert model["servers"][""]["user_options"]["template"] == "teaching"
    platform.client("alice").stop()
