import os
from pathlib import Path

import pytest

from spawner.gpus import Gpu
from spawner.local_plan import plan_local_workspace, prepare_directories
from spawner.options import resolve_options


@pytest.fixture
def request_(projects, templates):
    mine = {n: p for n, p in projects.items() if "alice" in p.members}
    return resolve_options(
        {"project": "vision", "template": "pytorch", "gpus": 2}, user="alice", admin=False,
        projects=mine, templates=templates,
    )  # fmt: skip


GPUS = (Gpu(2, "GPU-2", "NVIDIA A100-SXM4-80GB", 81920), Gpu(3, "GPU-3", "NVIDIA A100-SXM4-80GB", 81920))


def test_environment_names_volumes_template_and_gpus(request_, tmp_path):
    plan = plan_local_workspace(
        request_, root=tmp_path, gpus=GPUS, cmd=["jupyterhub-singleuser"], as_root=False
    )
    env = plan.env
    assert env["LAVAHUB_PROJECT"] == "vision"
    assert env["LAVAHUB_TEMPLATE"] == "pytorch"
    assert env["LAVAHUB_PERSONAL_DIR"] == str(tmp_path / "users/alice")
    assert env["LAVAHUB_PROJECT_DIR"] == str(tmp_path / "projects/vision")
    assert env["LAVAHUB_GLOBAL_DIR"] == str(tmp_path / "global")
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert (env["CPU_LIMIT"], env["MEM_LIMIT"]) == ("2", str(4 * 2**30))
    assert plan.home == tmp_path / "users/alice"
    assert plan.args == ()


def test_no_gpus_hides_every_gpu(request_, tmp_path):
    plan = plan_local_workspace(request_, root=tmp_path, gpus=(), as_root=False)
    assert plan.env["CUDA_VISIBLE_DEVICES"] == ""


def test_root_gets_allow_root(request_, tmp_path):
    assert plan_local_workspace(request_, root=tmp_path, gpus=(), as_root=True).args == ("--allow-root",)


def test_render_shape(request_, tmp_path):
    shown = plan_local_workspace(request_, root=tmp_path, gpus=GPUS, cmd=["x"], as_root=False).to_dict()
    assert shown["command"] == ["x"]
    assert shown["working_dir"] == str(tmp_path / "users/alice")
    assert [d["kind"] for d in shown["directories"]] == ["personal", "project", "global"]
    assert shown["resources"] == {"cpus": 2.0, "memory": "4Gi", "gpus": 2}


def test_prepare_creates_directories_and_links(request_, tmp_path):
    plan = plan_local_workspace(request_, root=tmp_path, gpus=(), as_root=False)
    prepare_directories(plan, member_of=["default", "vision"])
    home = tmp_path / "users/alice"
    assert (tmp_path / "projects/vision").is_dir() and (tmp_path / "global").is_dir()
    assert os.readlink(home / "projects/vision") == str(tmp_path / "projects/vision")
    assert os.readlink(home / "global") == str(tmp_path / "global")
    (home / "projects/vision/data.txt").write_text("shared")
    assert (tmp_path / "projects/vision/data.txt").read_text() == "shared"
    prepare_directories(plan, member_of=["default", "vision"])  # idempotent


def test_prepare_drops_links_of_left_projects_but_keeps_user_files(request_, tmp_path):
    plan = plan_local_workspace(request_, root=tmp_path, gpus=(), as_root=False)
    home = tmp_path / "users/alice"
    (home / "projects").mkdir(parents=True)
    (home / "projects/old").symlink_to(tmp_path)  # a project alice has left
    (home / "projects/default").symlink_to(tmp_path)  # another of her projects
    (home / "projects/notes").mkdir()  # her own directory
    prepare_directories(plan, member_of=["default", "vision"])
    assert sorted(p.name for p in (home / "projects").iterdir()) == ["default", "notes", "vision"]


def test_prepare_never_replaces_a_users_own_directory(request_, tmp_path):
    plan = plan_local_workspace(request_, root=tmp_path, gpus=(), as_root=False)
    own = tmp_path / "users/alice/global"
    own.mkdir(parents=True)
    (own / "mine.txt").write_text("keep")
    prepare_directories(plan, member_of=["vision"])
    assert not own.is_symlink() and (own / "mine.txt").read_text() == "keep"


def test_odd_user_name_gets_its_own_directory(projects, templates, tmp_path):
    odd = "Alice.Smith@x.org"
    request = resolve_options(
        {}, user=odd, admin=False, projects={"default": projects["default"]}, templates=templates
    )
    plan = plan_local_workspace(request, root=tmp_path, gpus=(), as_root=False)
    assert plan.home.parent == tmp_path / "users"
    assert plan.home.name.startswith("alice-smith-x-org-")
    assert Path(plan.env["LAVAHUB_PERSONAL_DIR"]) == plan.home
