"""The local backend's spawner: one JupyterLab process per workspace on this machine.

All workspaces run as the OS user that runs the hub (JupyterHub's
SimpleLocalProcessSpawner), so this backend is for one machine and one team
that trusts each other; isolation between users comes with the Kubernetes backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode

from .base import WorkspaceSpawnerMixin, refusal
from .errors import PublicError
from .gpus import inventory
from .holdings import Holdings
from .ledger import Ledger
from .local_plan import LocalWorkspacePlan, plan_local_workspace, prepare_directories
from .resources import Resources, parse_memory

STATE_KEY = "lavahub"


@functools.cache
def local_ledger(database_url: str) -> Ledger:
    """The hub process's one ledger over this machine's GPUs, kept in lavahub's database.

    Made by the first workspace the hub restores or starts. JupyterHub restores every
    still-running workspace before its start-up first awaits, so a reconciliation run
    just after that releases the holdings of workspaces no longer running.
    """
    ledger = Ledger(Holdings(database_url), inventory())
    with contextlib.suppress(RuntimeError):  # no event loop (a script): nothing to reconcile
        asyncio.get_running_loop().call_soon(ledger.reconcile)
    return ledger


class LocalSpawner(WorkspaceSpawnerMixin, SimpleLocalProcessSpawner):
    storage_root = Unicode(
        config=True,
        help="Directory holding users/, projects/ and global/. Set from storage.local.root.",
    )

    _plan: LocalWorkspacePlan | None = None

    async def start(self) -> Any:
        self._lavahub_events.clear()
        self.emit(10, "Checking template, project and resources")
        request = self.resolve_request()
        ledger = local_ledger(self.database_url)
        try:
            gpus = ledger.reserve(self.holder, request)
        except PublicError as e:
            raise refusal(e) from None
        try:
            if gpus:
                self.emit(30, f"Assigned GPU {', '.join(str(g.index) for g in gpus)}")
            plan = plan_local_workspace(request, root=Path(self.storage_root), gpus=gpus)
            self.emit(40, f"Preparing personal, project ({request.project.name}) and global directories")
            prepare_directories(plan, member_of=self.user_projects())
            self._plan = plan
            self.home_dir = self.notebook_dir = str(plan.home)
            self.cmd = list(plan.cmd)
            self.args = list(plan.args)
            self.default_url = "/lab"
            self.emit(60, f"Starting JupyterLab from template {request.template.display_name}")
            return await super().start()
        except BaseException:
            ledger.release(self.holder)
            raise

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        if self._plan is not None:
            env.update(self._plan.env)
        return env

    async def stop(self, now: bool = False) -> None:
        try:
            await super().stop(now=now)
        finally:
            local_ledger(self.database_url).release(self.holder)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._plan is not None and self.pid:
            r = self._plan.request
            state[STATE_KEY] = {
                "project": r.project.name,
                "template": r.template.slug,
                "template_version": r.template.version,
                "resources": r.resources.to_dict(),
                "gpus": [g.index for g in self._plan.gpus],
                "home": str(self._plan.home),
            }
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """After a hub restart, a still-running workspace keeps its GPUs and quota share."""
        super().load_state(state)
        held = state.get(STATE_KEY)
        if held and self.pid:
            res = held["resources"]
            local_ledger(self.database_url).restore(
                self.holder,
                held["project"],
                Resources(cpus=res["cpus"], memory=parse_memory(res["memory"]), gpus=res["gpus"]),
                held["gpus"],
                user=self.user.name,
            )
            self.home_dir = self.notebook_dir = held.get("home", self.home_dir)

    def clear_state(self) -> None:
        super().clear_state()
        local_ledger(self.database_url).release(self.holder)
        self._plan = None
