"""User text reaches the services' logs quoted: a newline in a name cannot forge a log line."""

import logging
from types import SimpleNamespace

import pytest

from services.api import JsonApiHandler
from services.jobs.spec import NAME_PATTERN
from spawner.errors import PublicError
from spawner.names import is_slug, safe_segment
from spawner.templates import template_from_dict

FORGED = "cell\n[I 2026-12-01 00:00:00 jobs] Job 0000000000000000 accepted for 'admin'"


def test_a_refusal_that_echoes_a_newline_is_one_escaped_log_record(caplog):
    handler = SimpleNamespace(request=SimpleNamespace(method="POST", path="/services/jobs/api/jobs"))
    refusal = PublicError(f"name {FORGED} is not valid", field="name")  # even a message quoting nothing
    with caplog.at_level(logging.INFO, logger="services.api"):
        JsonApiHandler.log_exception(handler, PublicError, refusal, None)  # type: ignore[arg-type]
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert "cell\\n[I 2026-12-01" in message


@pytest.mark.parametrize("name", ["cell\n", "python\n", "alice\n"])
def test_a_trailing_newline_is_no_valid_name(name):
    assert not NAME_PATTERN.fullmatch(name)
    assert not is_slug(name)
    assert "\n" not in safe_segment(name)


def test_a_template_slug_with_a_newline_is_refused():
    with pytest.raises(PublicError, match="slug"):
        template_from_dict({"slug": "python\n", "image": "python:3.11"}, "templates[0]")
