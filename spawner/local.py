"""The local backend's spawner: one JupyterLab process per workspace on this machine.

When the hub runs as root (`accounts`), each workspace runs as its user's own OS
account (spawner/accounts.py), in directories only that user and their projects
reach (spawner/ownership.py), as JupyterHub's LocalProcessSpawner does. Otherwise
every workspace runs as the hub's own OS user (JupyterHub's
SimpleLocalProcessSpawner), which keeps no user from another: the start-up log
and the home page say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import grp
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, Unicode

from . import cgroups
from .accounts import Account, Naming, account_groups, ensure_account
from .base import WorkspaceSpawnerMixin, refusal
from .errors import PublicError
from .gpus import inventory
from .holdings import Holdings
from .ledger import Ledger
from .local_plan import (
    LocalWorkspacePlan,
    personal_dir,
    plan_local_workspace,
    prepare_directories,
    volume_owners,
)
from .names import safe_segment
from .resources import Resources, parse_memory

STATE_KEY = "lavahub"
USER_UMASK = 0o007  # files a user makes in a project directory stay writable by its members


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
    accounts = Bool(
        False,
        config=True,
        help="Run each workspace as its user's own OS account, made on first spawn (needs root). "
        "Set from accounts.mode.",
    )
    enforce_limits = Bool(
        True,
        config=True,
        help="Hold each workspace to its CPUs and memory, and hide the GPUs it was not given, "
        "through cgroups where the machine offers writable ones (spawner/cgroups.py; the log says "
        "at the first start what it found).",
    )
    user_prefix = Unicode("lavahub-", config=True, help="Accounts are named <prefix><user>.")
    group_prefix = Unicode("lavahub-", config=True, help="Groups are named <prefix>p-<project>.")

    _plan: LocalWorkspacePlan | None = None
    _account: Account | None = None
    _cgroup: cgroups.Cgroup | None = None

    @property
    def naming(self) -> Naming:
        return Naming(self.user_prefix, self.group_prefix)

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
            root = Path(self.storage_root)
            projects = self.user_projects()
            account = await self._ensure_account(root, projects) if self.accounts else None
            plan = plan_local_workspace(request, root=root, gpus=gpus, account=account)
            self.emit(40, f"Preparing personal, project ({request.project.name}) and global directories")
            owners = None
            if account is not None:
                naming = self.naming
                project_gid = grp.getgrnam(naming.project(request.project.name)).gr_gid
                owners = volume_owners(account, project_gid, grp.getgrnam(naming.admins_group).gr_gid)
            await asyncio.to_thread(prepare_directories, plan, projects, owners)
            self._cgroup = await asyncio.to_thread(self._make_cgroup, plan) if self.enforce_limits else None
            self._account = account
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

    async def _ensure_account(self, root: Path, projects: dict[str, Any]) -> Account:
        """The user's account, with the groups of the projects they are in now."""
        groups = account_groups(self.user.name, projects, admin=bool(self.user.admin), naming=self.naming)
        home = str(personal_dir(root, self.user.name))
        return await asyncio.to_thread(
            ensure_account, self.user.name, home=home, groups=groups, naming=self.naming
        )

    @property
    def cgroup_name(self) -> str:
        server = f"--{safe_segment(self.name)}" if self.name else ""
        return f"workspace-{safe_segment(self.user.name)}{server}"

    def _make_cgroup(self, plan: LocalWorkspacePlan) -> cgroups.Cgroup | None:
        """The workspace's cgroup with its CPUs, memory and GPUs; None where none can be made."""
        controllers = cgroups.this_machine()
        if not controllers.usable:
            return None
        r = plan.request.resources
        limits = cgroups.Limits(
            cpus=r.cpus or None,
            memory_bytes=r.memory or None,
            gpus_allowed=tuple(g.index for g in plan.gpus),
            all_gpus=tuple(g.index for g in inventory()),
        )
        try:
            return cgroups.create(controllers, self.cgroup_name, limits)
        except cgroups.CgroupError as e:
            self.log.warning("Workspace %r starts without its limits: %s", self.holder, e)
            return None

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        """In the workspace's cgroup (joined as root), then as the user's account when there is
        one; else as the hub's user, in the home."""
        join = self._cgroup.join_self if self._cgroup is not None else None
        if self._account is not None:
            return self._account.preexec(umask=USER_UMASK, before=join)
        inner: Callable[[], None] = super().make_preexec_fn(name)
        if join is None:
            return inner

        def preexec() -> None:
            join()
            inner()

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env = super().user_env(env)
        if self._account is not None:
            env.update(USER=self._account.name, LOGNAME=self._account.name, HOME=self._account.home)
        return env

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
            if self.enforce_limits:
                await asyncio.to_thread(self._remove_cgroup)

    def _remove_cgroup(self) -> None:
        """Its group, by name (also one a restarted hub did not make); a busy one is left."""
        controllers = cgroups.this_machine()
        if controllers.usable:
            try:
                cgroups.group(controllers, self.cgroup_name).remove()
            except cgroups.CgroupError as e:
                self.log.warning("Workspace %r: %s", self.holder, e)
        self._cgroup = None

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
        self._account = None
