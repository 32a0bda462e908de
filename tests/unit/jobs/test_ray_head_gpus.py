"""The local Ray head is offered only the GPUs no workspace holds, and holds them from then on."""

import asyncio

from lavahub.config import RayConfig
from services.jobs.backends.ray import RayBackend
from services.jobs.backends.ray.backend import HEAD_HOLDER, head_gpu_env, head_gpus
from spawner.gpus import Gpu
from spawner.holdings import CLUSTER, WORKSPACE, Holding, Holdings
from spawner.ledger import Ledger
from spawner.resources import Resources


def test_the_head_gets_the_gpus_no_one_holds():
    assert head_gpus(4, {0: WORKSPACE, 2: WORKSPACE}) == (1, 3)
    assert head_gpus(2, [0, 1]) == ()
    assert head_gpus(0, {}) == (), "a machine without GPUs"


def test_the_heads_environment_shows_it_only_its_gpus():
    assert head_gpu_env(4, (1, 3)) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1,3"}
    assert head_gpu_env(2, ()) == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ""}
    assert head_gpu_env(0, ()) == {}, "without GPUs the head's environment is as it always was"


class Started:
    """Stands in for `ray start`: records what it was run with, and succeeds."""

    def __init__(self) -> None:
        self.command: list[str] = []
        self.env: dict[str, str] = {}
        self.returncode = 0

    async def __call__(self, *command, env, **_):
        self.command, self.env = list(command), dict(env)
        return self

    async def communicate(self):
        return b"", b""


def start_head(tmp_path, monkeypatch, **traits) -> tuple[RayBackend, Started]:
    started = Started()
    monkeypatch.setattr("services.jobs.backends.ray.backend.asyncio.create_subprocess_exec", started)
    backend = RayBackend(state_dir=str(tmp_path / "ray"), settings=RayConfig(), **traits)
    monkeypatch.setattr(backend, "_alive", lambda: True)
    asyncio.run(backend._start_local_head())
    return backend, started


def test_a_head_started_beside_a_gpu_workspace_gets_the_rest_and_holds_them(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'lavahub.sqlite'}"
    holdings = Holdings(url)
    workspace = Holding(WORKSPACE, "alice", "alice", "vision", Resources(1, 0, 1))
    holdings.reserve(workspace, choose_gpus=lambda held: [2])

    backend, started = start_head(tmp_path, monkeypatch, num_gpus=4, database_url=url)

    assert "--num-gpus=3" in started.command
    assert started.env["CUDA_VISIBLE_DEVICES"] == "0,1,3"
    head = holdings.get(CLUSTER, HEAD_HOLDER)
    assert head is not None and head.gpu_indices == (0, 1, 3) and head.project == ""
    assert asyncio.run(backend.capacity()).gpus == 3, "before the head answers, what it was given"
    # workspaces started while the head runs are given the GPUs outside the head's first
    holdings.release(WORKSPACE, "alice")
    ledger = Ledger(holdings, [Gpu(i, f"GPU-{i}", "NVIDIA H100", 81920) for i in range(4)])
    bob = Holding(WORKSPACE, "bob", "bob", "vision", Resources(1, 0, 1))
    assert holdings.reserve(bob, choose_gpus=ledger._chooser("bob", 1, None)).gpu_indices == (2,)

    monkeypatch.setattr(backend, "stop_local_head", lambda: 0)  # never any real Ray on this machine
    backend.stop_cluster()  # `lavahub down`: the GPUs are the workspaces' again
    assert holdings.get(CLUSTER, HEAD_HOLDER) is None


def test_without_gpus_the_head_starts_as_before_and_records_nothing(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'lavahub.sqlite'}"
    _, started = start_head(tmp_path, monkeypatch, num_gpus=0, database_url=url)
    assert "--num-gpus=0" in started.command
    assert "CUDA_VISIBLE_DEVICES" not in started.env
    assert not (tmp_path / "lavahub.sqlite").exists(), "no GPU: the database is not even opened"
