from pathlib import Path

from spawner.names import safe_segment
from spawner.volumes import GLOBAL, PERSONAL, PROJECT, by_kind, local_volume_plan, volume_plan

CLAIMS = {PERSONAL: "home-claim", PROJECT: "projects-claim", GLOBAL: "global-claim"}


def test_user_plan_mounts_three_volumes_with_global_read_only():
    plan = by_kind(volume_plan("alice", "vision", admin=False, sources=CLAIMS, home="/home/jovyan"))
    assert plan[PERSONAL].source == "home-claim"
    assert (plan[PERSONAL].sub_path, plan[PERSONAL].mount_path, plan[PERSONAL].read_only) == (
        "users/alice", "/home/jovyan", False)  # fmt: skip
    assert (plan[PROJECT].sub_path, plan[PROJECT].mount_path, plan[PROJECT].read_only) == (
        "projects/vision", "/mnt/projects/vision", False)  # fmt: skip
    assert (plan[GLOBAL].sub_path, plan[GLOBAL].mount_path, plan[GLOBAL].read_only) == (
        "global", "/mnt/global", True)  # fmt: skip


def test_admins_may_write_global():
    plan = by_kind(volume_plan("root", "vision", admin=True, sources=CLAIMS, home="/home/jovyan"))
    assert plan[GLOBAL].read_only is False


def test_odd_user_names_stay_inside_users():
    for name in ("Alice.Smith@x.org", "../../etc", "a/b"):
        personal = by_kind(volume_plan(name, "p", admin=False, sources=CLAIMS, home="/h"))[PERSONAL]
        assert personal.sub_path == f"users/{safe_segment(name)}"
        assert personal.sub_path.count("/") == 1 and ".." not in personal.sub_path


def test_local_plan_is_directories_under_the_root(tmp_path):
    plan = by_kind(local_volume_plan("alice", "vision", admin=False, root=tmp_path))
    assert Path(plan[PERSONAL].mount_path) == tmp_path / "users" / "alice"
    assert Path(plan[PROJECT].mount_path) == tmp_path / "projects" / "vision"
    assert Path(plan[GLOBAL].mount_path) == tmp_path / "global"
    assert all(v.source == str(tmp_path) for v in plan.values())
