import pytest

from spawner.errors import PublicError
from spawner.resources import Quota, Resources, check_quota, format_memory, parse_memory

GI = 2**30


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8Gi", 8 * GI), ("512Mi", 512 * 2**20), ("2G", 2 * 10**9), ("1.5Gi", int(1.5 * GI)),
     ("1024", 1024), (4096, 4096), ("2gib", 2 * GI), ("1Ti", 2**40)],
)  # fmt: skip
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "8 XB", "-1Gi", True, None, [1], -5])
def test_parse_memory_refuses_nonsense(text):
    with pytest.raises(ValueError):
        parse_memory(text)


@pytest.mark.parametrize(
    ("nbytes", "text"), [(8 * GI, "8Gi"), (512 * 2**20, "512Mi"), (1000, "1000"), (2**40, "1Ti")]
)
def test_format_memory_round_trips(nbytes, text):
    assert format_memory(nbytes) == text
    assert parse_memory(format_memory(nbytes)) == nbytes


def test_quota_allows_what_fits():
    check_quota("p", Quota(gpus=2), Resources(1, GI, 1), {"alice": Resources(1, GI, 1)})


def test_quota_refusal_names_quota_use_and_largest_holders():
    in_use = {"alice": Resources(1, GI, 2), "bob/ws2": Resources(1, GI, 1), "carol": Resources(1, GI, 0)}
    with pytest.raises(PublicError) as refused:
        check_quota("vision", Quota(gpus=4), Resources(1, GI, 2), in_use)
    message = str(refused.value)
    assert "quota of 4 GPUs" in message
    assert "3 are in use" in message
    assert "alice 2, bob/ws2 1" in message
    assert "carol" not in message  # holds no GPU
    assert "at most 1 GPUs" in message
    assert refused.value.field == "gpus"


def test_unlimited_quota_keys_are_not_checked():
    check_quota("p", Quota(memory=GI), Resources(100, GI // 2, 50), {})
    with pytest.raises(PublicError, match="memory"):
        check_quota("p", Quota(memory=GI), Resources(1, GI, 0), {"x": Resources(0, 1, 0)})
