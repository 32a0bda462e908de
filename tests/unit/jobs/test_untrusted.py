"""Reading files a job can write: links, FIFOs, devices, directories and garbage are refused."""

import os

import pytest

from services.jobs.backends.untrusted import Untrusted, read_at, read_capped


def test_a_regular_file_is_read_from_an_offset_at_most_limit_bytes(tmp_path):
    path = tmp_path / "worker-0.log"
    path.write_bytes(b"0123456789")
    assert read_at(path, 2, 3) == (b"234", 10)
    assert read_at(path, 8, 100) == (b"89", 10)
    assert read_at(path, 20, 100) == (b"", 10)
    with pytest.raises(FileNotFoundError):
        read_at(tmp_path / "missing.log", 0, 10)


@pytest.mark.parametrize(
    "kind", ["directory", "fifo", "symlink to /dev/zero", "symlink to a file", "hard link"]
)
def test_anything_but_a_regular_file_of_its_own_is_refused_at_once(tmp_path, kind):
    path = tmp_path / "worker-9.log"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # nobody writes to it: a blocking open would never return
    elif kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "symlink to a file":
        (tmp_path / "secret").write_text("bob's")
        path.symlink_to(tmp_path / "secret")
    else:
        (tmp_path / "secret").write_text("bob's")
        os.link(tmp_path / "secret", path)
    with pytest.raises(Untrusted) as refused:
        read_at(path, 0, 2**20)
    print(f"{kind}: {refused.value}")
    with pytest.raises(Untrusted):
        read_capped(path, 2**20)


def test_no_directory_on_the_way_below_the_volume_may_be_a_link(tmp_path):
    volume = tmp_path / "alice"
    (tmp_path / "bob" / ".lavahub" / "jobs" / "j" / "logs").mkdir(parents=True)
    (tmp_path / "bob" / ".lavahub" / "jobs" / "j" / "logs" / "worker-0.log").write_text("bob's output\n")
    (volume / ".lavahub").mkdir(parents=True)
    (volume / ".lavahub" / "jobs").symlink_to(tmp_path / "bob" / ".lavahub" / "jobs")
    path = volume / ".lavahub" / "jobs" / "j" / "logs" / "worker-0.log"
    assert read_at(path, 0, 100)[0] == b"bob's output\n"  # what following links would give away
    with pytest.raises(Untrusted, match="symbolic link"):
        read_at(path, 0, 100, below=volume)
    with pytest.raises(FileNotFoundError):
        read_at(volume / ".lavahub" / "missing" / "x.log", 0, 100, below=volume)


def test_a_file_over_the_cap_is_refused_whole_without_being_read(tmp_path):
    path = tmp_path / "result.pkl"
    with path.open("wb") as f:
        f.truncate(2**40)  # a terabyte, sparse
    with pytest.raises(Untrusted, match="more than the 1048576 that are read"):
        read_capped(path, 2**20)
    assert len(read_at(path, 2**39, 2**20)[0]) == 2**20
    path.write_bytes(b"x" * 100)
    assert read_capped(path, 100) == b"x" * 100
