"""Reading files a job can write: links, FIFOs, devices, directories and garbage are refused."""

import os

import pytest

from services.jobs.backends.ray.jobdir import STATE_SHAPE
from services.jobs.backends.untrusted import Untrusted, read_at, read_capped, read_json_object


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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1]", "holds list, not an object"),
        ('{"exit_code": "x"}', "exit_code holds str, not int"),
        ('{"exit_code": true}', "exit_code holds bool, not int"),
        ('{"placed": 1}', "placed holds int, not bool"),
        ("{not json", "is not JSON"),
        ("9" * 100_000, "more than the 65536"),
    ],
)
def test_garbage_json_is_refused_with_what_is_wrong(tmp_path, text, problem):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(Untrusted, match=problem):
        read_json_object(path, STATE_SHAPE, 64 * 2**10)


def test_an_object_of_the_expected_shape_keeps_only_the_known_keys(tmp_path):
    path = tmp_path / "state.json"
    assert read_json_object(path, STATE_SHAPE, 1000) is None
    path.write_text('{"placed": true, "exit_code": 3, "reason": null, "extra": [1]}')
    assert read_json_object(path, STATE_SHAPE, 1000) == {"placed": True, "exit_code": 3}
