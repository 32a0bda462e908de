import pytest

from spawner.names import SLUG_PATTERN, safe_segment


@pytest.mark.parametrize("name", ["alice", "bob-2", "a", "0x"])
def test_slug_names_are_kept_readable(name):
    assert safe_segment(name) == name


@pytest.mark.parametrize(
    "name",
    ["Alice", "alice.smith", "alice@example.org", "../etc", "a/b", "..", ".", "ü-ser", "-x-", "x" * 100],
)
def test_other_names_become_a_single_safe_segment(name):
    segment = safe_segment(name)
    assert SLUG_PATTERN.match(segment), segment
    assert "/" not in segment and segment not in (".", "..")
    assert len(segment) <= 63


def test_names_that_fold_alike_do_not_collide():
    names = ["alice-x", "alice.x", "Alice.X", "alice@x", "ALICE-X", "alice_x"]
    assert len({safe_segment(n) for n in names}) == len(names)


def test_segment_is_stable():
    assert safe_segment("Alice.Smith@x.org") == safe_segment("Alice.Smith@x.org")


def test_empty_name_is_refused():
    with pytest.raises(ValueError):
        safe_segment("")
