"""Steps on the hub's own pages that several browser tests take."""

from __future__ import annotations

from typing import Any


def log_in(browser: Any, url: str, user: str, password: str, *, width: int = 1200) -> Any:
    """A new page logged in to the hub at `url` as `user`."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_load_state()
    return page
