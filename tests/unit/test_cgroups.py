"""spawner.cgroups: against fake v1 and v2 trees (exactly what is written), then the real kernel.

The real tests run where this process is root and cgroups v1 cpu, memory and
devices are writable under /sys/fs/cgroup (the development machines and CI);
elsewhere they are skipped, each saying what the machine lacks.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spawner.cgroups import (
    NVIDIA_MAJOR,
    CgroupError,
    Controller,
    Controllers,
    Limits,
    create,
    detect,
    group,
    writes,
)

MiB = 2**20

# The files a kernel's hierarchy root has, as far as detect looks.
V1_FILES = {
    "cpu": ["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.stat"],
    "memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"],
    "pids": [],
    "devices": ["devices.allow", "devices.deny", "devices.list"],
}


def v1_tree(root: Path, controllers: tuple[str, ...] = tuple(V1_FILES), swap: bool = True) -> Path:
    """A tmpfs like a v1 machine's /sys/fs/cgroup: a hierarchy per controller (and the base in it)."""
    for name in controllers:
        for d in (root / name, root / name / "lavahub"):
            d.mkdir(parents=True, exist_ok=True)
            for f in ["cgroup.procs", "cgroup.sane_behavior", "tasks", *V1_FILES[name]]:
                if swap or "memsw" not in f:
                    (d / f).write_text("")
    return root


def v2_tree(root: Path, offered: str = "cpuset cpu io memory hugetlb pids rdma misc") -> Path:
    """A v2 machine's /sys/fs/cgroup: one hierarchy; the base's memory.swap.max as the kernel makes it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(offered + "\n")
    (root / "cgroup.subtree_control").write_text("\n")
    (root / "cgroup.procs").write_text("")
    base = root / "lavahub"
    base.mkdir()
    for f in ["cgroup.controllers", "cgroup.subtree_control", "cgroup.procs", "memory.swap.max"]:
        (base / f).write_text("")
    return root


def empty_fake(made) -> None:
    """Delete the files create wrote in a fake tree: a kernel's own need no deleting before rmdir."""
    for d in made.dirs:
        for f in d.iterdir():
            f.unlink()


# --- detect -------------------------------------------------------------------------------------


def test_detect_v1_finds_each_hierarchy_and_says_what_is_enforced(tmp_path):
    found = detect(v1_tree(tmp_path))
    assert found.usable == (
        Controller("cpu", 1, tmp_path / "cpu"),
        Controller("memory", 1, tmp_path / "memory", swap=True),
        Controller("pids", 1, tmp_path / "pids"),
        Controller("devices", 1, tmp_path / "devices"),
    )
    assert found.unusable == ()
    assert found.enforced
    assert found.describe() == (
        f"cgroups v1: cpu, memory, pids, devices under {tmp_path}; "
        "CPU, memory and process-count limits enforced; GPUs not given are hidden"
    )


def test_detect_makes_the_base_group_in_each_hierarchy(tmp_path):
    for name in V1_FILES:
        (tmp_path / name).mkdir()
        for f in ["cgroup.procs", *V1_FILES[name]]:
            (tmp_path / name / f).write_text("")
    found = detect(tmp_path, base="lavahub-x")
    assert [c.name for c in found.usable] == ["cpu", "memory", "pids", "devices"]
    assert all((tmp_path / name / "lavahub-x").is_dir() for name in V1_FILES)


def test_detect_v1_names_what_is_missing(tmp_path):
    found = detect(v1_tree(tmp_path, ("cpu", "memory"), swap=False))
    assert [c.name for c in found.usable] == ["cpu", "memory"]
    assert found.get("memory") == Controller("memory", 1, tmp_path / "memory", swap=False)
    assert found.unusable == (("pids", "not mounted"), ("devices", "not mounted"))
    assert found.describe() == (
        f"cgroups v1: cpu, memory under {tmp_path}; CPU and memory limits enforced; "
        "not enforced: pids, devices: not mounted"
    )


def test_detect_v1_does_not_mistake_a_v2_group_called_like_a_controller(tmp_path):
    (tmp_path / "cpu").mkdir()
    for f in ["cgroup.procs", "cgroup.controllers", "cpu.cfs_quota_us"]:
        (tmp_path / "cpu" / f).write_text("")
    assert detect(tmp_path).usable == ()


def test_detect_v2_enables_the_controllers_for_the_base_and_its_groups(tmp_path):
    root = v2_tree(tmp_path)
    found = detect(root)
    assert found.usable == (
        Controller("cpu", 2, root),
        Controller("memory", 2, root, swap=True),
        Controller("pids", 2, root),
    )
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (root / "lavahub" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    (name, why), *rest = found.unusable
    assert name == "devices" and not rest
    assert "eBPF" in why
    assert found.describe() == (
        f"cgroups v2: cpu, memory, pids under {root}; CPU, memory and process-count limits enforced; "
        "not enforced: devices: GPUs not given stay visible "
        "(cgroups v2 filters devices only through eBPF, which lavahub does not load)"
    )


def test_detect_v2_writes_nothing_where_the_controllers_are_enabled_already(tmp_path):
    root = v2_tree(tmp_path, offered="cpu memory")
    (root / "cgroup.subtree_control").write_text("cpu memory\n")
    (root / "lavahub" / "cgroup.subtree_control").write_text("memory cpu\n")
    found = detect(root)
    assert [c.name for c in found.usable] == ["cpu", "memory"]
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory\n"
    assert ("pids", "not mounted") in found.unusable


def test_detect_v2_without_swap_accounting(tmp_path):
    root = v2_tree(tmp_path)
    (root / "lavahub" / "memory.swap.max").unlink()
    assert detect(root).get("memory") == Controller("memory", 2, root, swap=False)


def test_detect_hybrid_takes_from_v2_only_what_v1_lacks(tmp_path):
    v1_tree(tmp_path, ("cpu", "memory", "devices"))
    v2_tree(tmp_path / "unified", offered="pids")
    found = detect(tmp_path)
    assert [(c.name, c.version) for c in found.usable] == [
        ("cpu", 1),
        ("memory", 1),
        ("pids", 2),
        ("devices", 1),
    ]
    assert found.describe().startswith(
        f"cgroups v1: cpu, memory, devices; cgroups v2: pids under {tmp_path};"
    )


def test_detect_with_no_cgroups_says_limits_are_not_enforced(tmp_path):
    found = detect(tmp_path)
    assert found.usable == ()
    assert not found.enforced
    assert found.describe() == (
        f"no writable cgroups under {tmp_path} (cpu, memory, pids, devices: not mounted): "
        "CPU and memory limits are not enforced"
    )


def test_detect_with_an_unwritable_hierarchy_says_why(tmp_path):
    v1_tree(tmp_path)
    for name in V1_FILES:
        for f in (tmp_path / name / "lavahub").iterdir():
            f.unlink()
        (tmp_path / name / "lavahub").rmdir()
        (tmp_path / name / "lavahub").write_text("")  # mkdir then fails, as on a read-only mount
    found = detect(tmp_path)
    assert found.usable == ()
    assert found.describe() == (
        f"no writable cgroups under {tmp_path} (cpu, memory, pids, devices: cannot make lavahub/: "
        "File exists): CPU and memory limits are not enforced"
    )


def test_detect_checks_the_base_name(tmp_path):
    with pytest.raises(ValueError, match="not a cgroup name"):
        detect(tmp_path, base="../escape")


# --- what create writes ---------------------------------------------------------------------------


def test_writes_v1_in_order(tmp_path):
    found = detect(v1_tree(tmp_path))
    limits = Limits(cpus=1.5, memory_bytes=512 * MiB, gpus_allowed=(1,), all_gpus=(0, 1, 2), pids=256)
    cpu, memory, pids, devices = (tmp_path / n / "lavahub" / "workspace-alice" for n in V1_FILES)
    assert writes(found, "workspace-alice", limits) == (
        (cpu / "cpu.cfs_period_us", "100000"),
        (cpu / "cpu.cfs_quota_us", "150000"),
        (memory / "memory.memsw.limit_in_bytes", "-1"),
        (memory / "memory.limit_in_bytes", str(512 * MiB)),
        (memory / "memory.memsw.limit_in_bytes", str(512 * MiB)),
        (pids / "pids.max", "256"),
        (devices / "devices.deny", "c 195:0 rwm"),
        (devices / "devices.allow", "c 195:1 rwm"),
        (devices / "devices.deny", "c 195:2 rwm"),
    )


def test_writes_v1_without_limits_resets_every_one(tmp_path):
    found = detect(v1_tree(tmp_path, swap=False))
    cpu, memory, pids, devices = (tmp_path / n / "lavahub" / "g" for n in V1_FILES)
    assert writes(found, "g", Limits(all_gpus=(0, 1))) == (
        (cpu / "cpu.cfs_period_us", "100000"),
        (cpu / "cpu.cfs_quota_us", "-1"),
        (memory / "memory.limit_in_bytes", "-1"),
        (pids / "pids.max", "max"),
        (devices / "devices.allow", "c 195:0 rwm"),
        (devices / "devices.allow", "c 195:1 rwm"),
    )


def test_writes_v1_a_workspace_with_no_gpus_has_every_gpu_hidden(tmp_path):
    found = detect(v1_tree(tmp_path, ("devices",)))
    devices = tmp_path / "devices" / "lavahub" / "g"
    assert writes(found, "g", Limits(gpus_allowed=(), all_gpus=(0, 1))) == (
        (devices / "devices.deny", "c 195:0 rwm"),
        (devices / "devices.deny", "c 195:1 rwm"),
    )


def test_writes_v2(tmp_path):
    found = detect(v2_tree(tmp_path))
    g = tmp_path / "lavahub" / "job-42-worker-0"
    limits = Limits(cpus=0.25, memory_bytes=64 * MiB, gpus_allowed=(), all_gpus=(0,), pids=100)
    assert writes(found, "job-42-worker-0", limits) == (
        (g / "cpu.max", "25000 100000"),
        (g / "memory.max", str(64 * MiB)),
        (g / "memory.swap.max", "0"),
        (g / "pids.max", "100"),
    )
    assert writes(found, "job-42-worker-0", Limits()) == (
        (g / "cpu.max", "max 100000"),
        (g / "memory.max", "max"),
        (g / "memory.swap.max", "max"),
        (g / "pids.max", "max"),
    )


def test_a_tiny_cpu_share_gets_the_kernels_smallest_quota(tmp_path):
    found = detect(v2_tree(tmp_path, offered="cpu"))
    assert writes(found, "g", Limits(cpus=0.001)) == (
        (tmp_path / "lavahub" / "g" / "cpu.max", "1000 100000"),
    )


def test_create_v1_makes_a_directory_per_hierarchy_with_the_limits(tmp_path):
    found = detect(v1_tree(tmp_path))
    made = create(
        found, "workspace-alice--ws2", Limits(cpus=2, memory_bytes=MiB, gpus_allowed=(0,), all_gpus=(0, 1))
    )
    assert made.dirs == tuple(tmp_path / n / "lavahub" / "workspace-alice--ws2" for n in V1_FILES)
    assert made.controllers == ("cpu", "memory", "pids", "devices")
    cpu, memory, _, devices = made.dirs
    assert (cpu / "cpu.cfs_quota_us").read_text() == "200000"
    assert (memory / "memory.limit_in_bytes").read_text() == str(MiB)
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == str(MiB)
    assert (devices / "devices.deny").read_text() == "c 195:1 rwm"
    assert (devices / "devices.allow").read_text() == "c 195:0 rwm"


def test_create_again_resets_the_limits(tmp_path):
    found = detect(v2_tree(tmp_path))
    create(found, "g", Limits(cpus=1, memory_bytes=MiB))
    (again,) = create(found, "g", Limits(cpus=3)).dirs
    assert (again / "cpu.max").read_text() == "300000 100000"
    assert (again / "memory.max").read_text() == "max"


def test_create_v2_makes_one_directory(tmp_path):
    made = create(detect(v2_tree(tmp_path)), "g", Limits())
    assert made.dirs == (tmp_path / "lavahub" / "g",)
    assert made.controllers == ("cpu", "memory", "pids")


def test_create_without_usable_controllers_makes_a_group_that_enforces_nothing(tmp_path):
    made = create(detect(tmp_path), "g", Limits(cpus=1, memory_bytes=MiB))
    assert made.dirs == () and made.controllers == () and made.procs_files() == ()
    made.join_self()
    made.attach(os.getpid())
    assert made.remove() == ()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["", "..", ".hidden", "a/b", "../../etc", "-x", "x" * 129, "wörk", "a b", "x\n"]
)
def test_create_refuses_names_that_are_not_one_plain_segment(tmp_path, name):
    with pytest.raises(ValueError, match="not a cgroup name"):
        create(detect(v2_tree(tmp_path)), name, Limits())


def test_create_that_fails_leaves_nothing_and_says_where(tmp_path):
    found = detect(v1_tree(tmp_path))
    (tmp_path / "memory" / "lavahub" / "g").write_text("")  # in the way of the memory group
    with pytest.raises(
        CgroupError, match=f"cannot make {tmp_path / 'memory' / 'lavahub' / 'g'}: File exists"
    ):
        create(found, "g", Limits(memory_bytes=MiB))
    assert not (tmp_path / "cpu" / "lavahub" / "g").exists()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (dict(cpus=0), "cpus must be more than 0"),
        (dict(cpus=-1.0), "cpus must be more than 0"),
        (dict(memory_bytes=0), "memory_bytes must be more than 0"),
        (dict(pids=0), "pids must be more than 0"),
        (dict(all_gpus=(255,)), "not a GPU's device number"),
        (dict(gpus_allowed=(-1,)), "not a GPU's device number"),
    ],
)
def test_limits_refuse_nonsense(limits, message):
    with pytest.raises(ValueError, match=message):
        Limits(**limits)


def test_hidden_gpus():
    assert Limits(gpus_allowed=None, all_gpus=(0, 1)).hidden_gpus() == ()
    assert Limits(gpus_allowed=(), all_gpus=(1, 0)).hidden_gpus() == (0, 1)
    assert Limits(gpus_allowed=(1, 3), all_gpus=(0, 1, 2, 3)).hidden_gpus() == (0, 2)


# --- joining and removing, on a fake tree -----------------------------------------------------------


def test_join_self_and_attach_write_to_every_procs_file(tmp_path):
    made = create(detect(v1_tree(tmp_path)), "g", Limits())
    assert made.procs_files() == tuple(str(d / "cgroup.procs") for d in made.dirs)
    for f in made.procs_files():
        Path(f).write_text("")
    made.join_self()
    assert [Path(f).read_text() for f in made.procs_files()] == ["0"] * 4
    made.attach(1234)
    assert [Path(f).read_text() for f in made.procs_files()] == ["1234"] * 4


def test_join_self_raises_when_the_group_is_gone(tmp_path):
    made = create(detect(v2_tree(tmp_path)), "g", Limits())
    empty_fake(made)
    assert made.remove() == ()
    with pytest.raises(FileNotFoundError):
        made.join_self()
    with pytest.raises(CgroupError, match="cannot move 7 into"):
        made.attach(7)


def test_preexec_joins_then_runs_what_follows(tmp_path):
    made = create(detect(v2_tree(tmp_path)), "g", Limits())
    procs = Path(made.procs_files()[0])
    procs.write_text("")
    seen = []
    made.preexec(then=lambda: seen.append(procs.read_text()))()
    assert seen == ["0"]


def test_remove_removes_each_directory_and_tolerates_missing_ones(tmp_path):
    found = detect(v1_tree(tmp_path))
    made = create(found, "g", Limits())
    empty_fake(made)
    made.dirs[0].rmdir()
    assert made.remove() == ()
    assert not any(d.exists() for d in made.dirs)
    assert made.remove() == ()
    assert group(found, "g") == made


def test_this_machine_is_found_once_and_logged_once(tmp_path, monkeypatch, caplog):
    import spawner.cgroups as cgroups

    calls = []

    def fake_detect() -> Controllers:
        calls.append(1)
        return detect(tmp_path)

    monkeypatch.setattr(cgroups, "detect", fake_detect)
    cgroups.this_machine.cache_clear()
    try:
        with caplog.at_level("INFO", logger="spawner.cgroups"):
            assert cgroups.this_machine() is cgroups.this_machine()
    finally:
        cgroups.this_machine.cache_clear()
    assert calls == [1]
    (record,) = caplog.records
    assert record.levelname == "WARNING"  # nothing enforced is worth a warning
    assert record.getMessage().endswith("CPU and memory limits are not enforced")


# --- the real kernel ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel() -> Iterator[Controllers]:
    """This machine's cgroups v1, under a base of this test run's own, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the real cgroup tests need root (they make groups under /sys/fs/cgroup)")
    found = detect(base=f"lavahub-test-{os.getpid()}")
    try:
        missing = [n for n in ("cpu", "memory", "devices") if (c := found.get(n)) is None or c.version != 1]
        if missing:
            pytest.skip(f"the real cgroup tests need cgroups v1 {', '.join(missing)}: {found.describe()}")
        yield found
    finally:
        for c in found.usable:
            base = c.hierarchy / found.base
            for leftover in (d for d in base.iterdir() if d.is_dir()):
                leftover.rmdir()
            base.rmdir()


def run_in(made, code: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """A Python child that joins the group before it execs, as a workspace or job worker will."""
    return subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=made.preexec(),
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def test_kernel_describes_this_machine(kernel):
    line = kernel.describe()
    assert line.startswith("cgroups v1: cpu, memory")
    assert "limits enforced" in line and "GPUs not given are hidden" in line


def test_kernel_memory_limit_stops_a_child_that_allocates_more(kernel):
    allocate = "b = b'x' * (256 << 20); print('allocated', len(b))"
    made = create(kernel, "memory-test", Limits(memory_bytes=64 * MiB))
    try:
        child = run_in(made, allocate)
        memory = kernel.path(kernel.get("memory"), "memory-test")
        peak = int((memory / "memory.max_usage_in_bytes").read_text())
        oom = dict(line.split() for line in (memory / "memory.oom_control").read_text().splitlines())
    finally:
        assert made.remove() == ()
    # killed by the OOM killer (SIGKILL) or refused the memory: either way it never had 256 MiB
    killed = child.returncode == -signal.SIGKILL and int(oom["oom_kill"]) >= 1
    assert killed or "MemoryError" in child.stderr, (child.returncode, oom, child.stderr)
    assert "allocated" not in child.stdout
    assert peak <= 64 * MiB

    roomy = create(kernel, "memory-test", Limits(memory_bytes=512 * MiB))  # the same child, given room
    try:
        assert run_in(roomy, allocate).stdout.strip() == f"allocated {256 * MiB}"
    finally:
        assert roomy.remove() == ()


def test_kernel_cpu_quota_holds_a_busy_loop_to_its_share(kernel):
    spin = (
        "import time, json\n"
        "start = time.monotonic()\n"
        "while time.monotonic() - start < 1.5: pass\n"
        "print(json.dumps({'cpu': time.process_time(), 'wall': time.monotonic() - start}))\n"
    )
    made = create(kernel, "cpu-test", Limits(cpus=0.2))
    try:
        measured = json.loads(run_in(made, spin).stdout)
        stat = (kernel.path(kernel.get("cpu"), "cpu-test") / "cpu.stat").read_text()
    finally:
        assert made.remove() == ()
    throttled = dict(line.split() for line in stat.splitlines())
    assert int(throttled["nr_throttled"]) > 0
    # 0.2 CPU over ~1.5 s is ~0.3 s; a loop the quota did not hold would take up to a whole CPU
    assert measured["cpu"] < 0.6 * measured["wall"], measured


def test_kernel_denied_device_cannot_be_opened(kernel):
    made = create(kernel, "devices-test", Limits())
    try:
        devices = kernel.path(kernel.get("devices"), "devices-test")
        (devices / "devices.deny").write_text("c 1:3 rwm")  # /dev/null
        child = run_in(made, "open('/dev/null', 'rb')")
    finally:
        assert made.remove() == ()
    assert child.returncode == 1 and "PermissionError: [Errno 1] Operation not permitted" in child.stderr


def test_kernel_gpus_not_given_are_hidden_and_a_reset_shows_them_again(kernel, tmp_path):
    for minor in (0, 1):
        try:
            os.mknod(tmp_path / f"nvidia{minor}", 0o600 | 0o020000, os.makedev(NVIDIA_MAJOR, minor))
        except PermissionError as e:
            pytest.skip(f"cannot make device nodes under {tmp_path} to stand in for GPUs: {e}")
    probe = (
        "import json, sys\n"
        "result = {}\n"
        "for n in (0, 1):\n"
        "    try:\n"
        f"        open('{tmp_path}/nvidia%d' % n, 'rb').close(); result[n] = 0\n"
        "    except OSError as e:\n"
        "        result[n] = e.errno\n"
        "print(json.dumps(result))\n"
    )
    made = create(kernel, "gpu-test", Limits(gpus_allowed=(0,), all_gpus=(0, 1)))
    try:
        hidden = json.loads(run_in(made, probe).stdout)
        create(kernel, "gpu-test", Limits(gpus_allowed=None, all_gpus=(0, 1)))
        reset = json.loads(run_in(made, probe).stdout)
    finally:
        assert made.remove() == ()
    # no driver here opens a GPU (ENXIO) unless one does (0); only the cgroup answers EPERM
    assert hidden["1"] == errno.EPERM
    assert hidden["0"] != errno.EPERM
    assert errno.EPERM not in reset.values()


def test_kernel_attach_moves_a_running_process_and_a_busy_group_stays(kernel):
    made = create(kernel, "attach-test", Limits(memory_bytes=64 * MiB))
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        made.attach(sleeper.pid)
        member_of = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        for name in ("cpu", "memory", "pids", "devices"):
            assert f":{name}:/{kernel.base}/attach-test\n" in member_of
        assert made.remove() == made.dirs  # it still holds the sleeper: nothing removed, nothing killed
        assert sleeper.poll() is None and all(d.is_dir() for d in made.dirs)
    finally:
        sleeper.kill()
        sleeper.wait()
    deadline = time.monotonic() + 10
    while (left := made.remove()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel lets go of an exited process's group a moment after wait()
    assert left == ()
