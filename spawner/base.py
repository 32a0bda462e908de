"""What both lavahub spawners share: the template store, projects from groups, the form.

A mixin, so the local and the Kubernetes spawner stay thin adapters over the
pure modules; each backend only turns a WorkspaceRequest into its own object.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from tornado import web
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from .errors import PublicError
from .form import options_from_form, render_form
from .names import is_slug
from .options import resolve_options
from .projects import Project, project_from_group
from .store import TemplateStore
from .workspace import WorkspaceRequest


@functools.cache
def template_store(url: str) -> TemplateStore:
    """One store (one engine) per database URL per process."""
    return TemplateStore(url)


class WorkspaceSpawnerMixin(LoggingConfigurable):
    """Mix into a JupyterHub Spawner subclass, listed before the spawner class.

    A Configurable itself, so its options are real traits: `c.LocalSpawner.database_url`.
    """

    if TYPE_CHECKING:  # what it uses of the JupyterHub Spawner it is mixed into
        user: Any  # jupyterhub.user.User (JupyterHub ships no type information)
        name: str
        user_options: dict[str, Any]
        _spawn_pending: bool

    database_url = Unicode(
        "sqlite:///lavahub.sqlite",
        config=True,
        help="SQLAlchemy URL of lavahub's database (templates). Set from the platform config's database_url.",
    )

    @property
    def store(self) -> TemplateStore:
        return template_store(self.database_url)

    @property
    def holder(self) -> str:
        """How this workspace is named in quota messages: `alice` or `alice/ws2`."""
        return f"{self.user.name}/{self.name}" if self.name else self.user.name

    def user_projects(self) -> dict[str, Project]:
        """The user's projects: their JupyterHub groups, settings read from group properties."""
        projects = {}
        for group in self.user.groups:
            if not is_slug(group.name):
                continue  # groups that are not projects (names not usable in paths)
            try:
                projects[group.name] = project_from_group(
                    group.name, group.properties, [u.name for u in group.users]
                )
            except PublicError as e:
                self.log.warning("Ignoring group %r as a project: %r", group.name, str(e))
        return projects

    def resolve_request(self) -> WorkspaceRequest:
        """Validate user_options; a refusal becomes a 400 whose message the user sees."""
        try:
            request = resolve_options(
                self.user_options,
                user=self.user.name,
                admin=bool(self.user.admin),
                projects=self.user_projects(),
                templates=self.store.list(),
            )
        except PublicError as e:
            raise refusal(e) from None
        # what was started, defaults filled in: the hub's server model shows it (template usage)
        self.user_options = request.to_options()
        return request

    @default("options_form")
    def _lavahub_options_form(self) -> Any:
        def form(spawner: WorkspaceSpawnerMixin) -> str:
            return render_form(spawner.store.list(), spawner.user_projects(), spawner.user_options)

        return form

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, str]:
        return options_from_form(formdata)

    # progress messages for the hub's spawn-pending page
    def emit(self, progress: int, message: str) -> None:
        self._lavahub_events.append({"progress": progress, "message": message})

    @property
    def _lavahub_events(self) -> list[dict[str, Any]]:
        if "_events" not in self.__dict__:
            self.__dict__["_events"] = []
        return self.__dict__["_events"]

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        sent = 0
        while True:
            events = self._lavahub_events
            while sent < len(events):
                yield events[sent]
                sent += 1
            if not self._spawn_pending:
                return
            await asyncio.sleep(0.1)


def refusal(error: PublicError) -> web.HTTPError:
    """A spawn refusal the hub relays to the user as a 400 (API) or a form message (page)."""
    http_error = web.HTTPError(400, "%s", str(error))
    http_error.jupyterhub_message = str(error)  # type: ignore[attr-defined]  # JupyterHub reads it off HTTPError
    return http_error
