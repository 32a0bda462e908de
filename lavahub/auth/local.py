"""`auth.type: local`: a password per user, kept as a hash in lavahub's database.

`lavahub up` gives every configured user a password on first start (and new users at the next
start) and shows each once; `lavahub users reset-password` makes a new one; the user changes
their own at `/hub/change-password`. Failed logins are logged (never the password) and slowed:
each failure waits `failure_delay`, and after `failure_limit` failures within `failure_window`
seconds a name is refused until the window has passed, whatever the password.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from functools import cached_property
from pathlib import Path
from typing import Any

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from tornado import web
from traitlets import Float, Integer, Unicode

from .store import PasswordStore

PAGE = Path(__file__).with_name("html") / "change-password.html"


class LocalPasswordAuthenticator(Authenticator):
    """Each user logs in with their own password; only its scrypt hash is stored."""

    database_url = Unicode(
        config=True, help="lavahub's database (a SQLAlchemy URL), where the password hashes are."
    )
    min_password_length = Integer(
        10, config=True, help="The shortest password a user may choose on the change-password page."
    )
    failure_delay = Float(0.5, config=True, help="Seconds every failed login waits before it is answered.")
    failure_limit = Integer(
        5, config=True, help="Failed logins of one name, within failure_window, before it is refused."
    )
    failure_window = Float(300, config=True, help="Seconds over which failed logins of one name are counted.")

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._failures: dict[str, deque[float]] = {}

    @cached_property
    def store(self) -> PasswordStore:
        return PasswordStore(self.database_url)

    async def authenticate(self, handler: web.RequestHandler, data: dict[str, str]) -> str | None:
        username = data.get("username", "")
        if await self.check_password(handler, username, data.get("password", "")):
            return username
        return None

    async def check_password(self, handler: web.RequestHandler, username: str, password: str) -> bool:
        """Whether `password` is `username`'s, counting and logging failures (the login form and
        the change-password page both check through here)."""
        source = handler.request.remote_ip
        if self._refused(username):
            self.log.warning("Login of %r from %s refused: too many failed logins", username, source)
            await asyncio.sleep(self.failure_delay)
            return False
        if await asyncio.to_thread(self.store.verify, username, password):
            self._failures.pop(username, None)
            return True
        self._failures.setdefault(username, deque()).append(time.monotonic())
        self.log.warning("Failed login of %r from %s", username, source)
        await asyncio.sleep(self.failure_delay)
        return False

    def _refused(self, username: str) -> bool:
        horizon = time.monotonic() - self.failure_window
        for name in [n for n, times in self._failures.items() if times[-1] < horizon]:
            del self._failures[name]  # forget names whose last failure is old
        recent = self._failures.get(username, deque())
        while recent and recent[0] < horizon:
            recent.popleft()
        return len(recent) >= self.failure_limit

    async def change_password(self, username: str, password: str) -> None:
        await asyncio.to_thread(self.store.set, username, password, username)

    def get_handlers(self, app: Any) -> list[tuple[str, type[web.RequestHandler]]]:
        return [*super().get_handlers(app), (r"/change-password", ChangePasswordHandler)]


class ChangePasswordHandler(BaseHandler):
    """`/hub/change-password`: the logged-in user sets a new password, given the current one."""

    @web.authenticated
    async def get(self) -> None:
        self.finish(await self._page())

    @web.authenticated
    async def post(self) -> None:
        authenticator = self.authenticator
        assert isinstance(authenticator, LocalPasswordAuthenticator)
        user = self.current_user
        current = self.get_body_argument("current_password", "")
        new = self.get_body_argument("new_password", "")
        minimum = authenticator.min_password_length
        problem = None
        if not await authenticator.check_password(self, user.name, current):
            problem = "The current password is not right."
        elif len(new) < minimum:
            problem = f"The new password must be at least {minimum} characters."
        elif new != self.get_body_argument("confirm_password", ""):
            problem = "The two new passwords differ."
        elif new == current:
            problem = "The new password must differ from the current one."
        if problem:
            self.set_status(400)
            self.finish(await self._page(error=problem))
            return
        await authenticator.change_password(user.name, new)
        self.log.info("User %r changed their password", user.name)
        self.finish(await self._page(changed=True))

    async def _page(self, **ns: Any) -> str:
        authenticator = self.authenticator
        assert isinstance(authenticator, LocalPasswordAuthenticator)
        template = self.settings["jinja2_env"].from_string(PAGE.read_text())
        namespace = {**self.template_namespace, "min_length": authenticator.min_password_length, **ns}
        return await template.render_async(**namespace)
