"""The config's models (lavahub/config/): what test_config.py does not already cover."""

from __future__ import annotations

import pydantic
import pytest

from lavahub.config import RayConfig, parse_config
from lavahub.config.errors import key_path
from spawner.errors import ConfigError


def test_jobs_ray_is_its_own_section():
    jobs = parse_config({"jobs": {"ray": {"address": "http://ray:8265", "object_store_memory": "1Gi"}}}).jobs
    assert jobs.backend == "ray"
    assert jobs.ray == RayConfig(address="http://ray:8265", object_store_memory=2**30)
    assert (jobs.ray.port, jobs.ray.dashboard_port, jobs.ray.start_timeout, jobs.ray.num_cpus) == (
        6380,
        8265,
        180,
        None,
    )


def test_one_start_timeout_for_both_backends():
    assert parse_config({}).start_timeout == 300
    assert parse_config({"start_timeout": 60}).start_timeout == 60
    # kubernetes.start_timeout is the same key under its former name
    assert parse_config({"kubernetes": {"start_timeout": 90}}).start_timeout == 90
    assert parse_config({"start_timeout": 90, "kubernetes": {"start_timeout": 90}}).start_timeout == 90
    with pytest.raises(
        ConfigError, match=r"^kubernetes.start_timeout: is start_timeout under its former name"
    ):
        parse_config({"start_timeout": 60, "kubernetes": {"start_timeout": 90}})


def test_job_logs_are_capped_and_kept_where_the_operator_says(tmp_path):
    config = parse_config({"data_dir": str(tmp_path / "data")})
    jobs = config.jobs
    assert (jobs.logs.max_bytes, jobs.logs.max_line_bytes, jobs.max_result_bytes) == (2**26, 2**16, 2**26)
    assert config.job_logs_dir == tmp_path / "data" / "jobs"
    moved = parse_config({"data_dir": str(tmp_path / "data"), "jobs": {"logs_dir": str(tmp_path / "logs")}})
    assert moved.job_logs_dir == tmp_path / "logs"
    assert parse_config({"jobs": {"logs": {"max_bytes": "1Gi"}}}).jobs.logs.max_bytes == 2**30


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"jobs": {"ray": {"port": 15000}}}, "jobs.ray.port: 15000 is in the range Ray keeps for its workers (10002-19999)"),
        ({"jobs": {"ray": {"start_timeout": 0}}}, "jobs.ray.start_timeout: must be a whole number >= 1, got 0"),
        ({"jobs": {"ray": {"num_cpus": "all"}}}, "jobs.ray.num_cpus: must be a whole number >= 1, got 'all'"),
        ({"jobs": {"ray": {"ports": 1}}}, "jobs.ray.ports: unknown key (known keys here: address, gcs_address, port,"),
        ({"jobs": {"backend": "slurm"}}, "jobs.backend: must be one of ray, volcano, got 'slurm'"),
        ({"jobs": {"default_timeout": 10, "max_timeout": 5}}, "jobs.default_timeout: must not exceed jobs.max_timeout"),
        ({"jobs": {"port": 8001}}, "jobs.port: must differ from port, hub_port and proxy_api_port"),
        ({"jobs": {"enabled": "yes"}}, "jobs.enabled: must be true or false, got 'yes'"),
        ({"jobs": {"logs": {"max_line_bytes": 10}}}, "jobs.logs.max_line_bytes: must be at least 256 bytes"),
        ({"jobs": {"logs": {"max_bytes": "1Mi", "max_line_bytes": "2Mi"}}}, "jobs.logs.max_line_bytes: must not exceed jobs.logs.max_bytes"),
        ({"jobs": {"max_unfinished_per_user": 0}}, "jobs.max_unfinished_per_user: must be a whole number >= 1, got 0"),
        ({"jobs": ["ray"]}, "jobs: must be a mapping of keys to values, got list"),
        ({"port": True}, "port: must be a whole number >= 1, got True"),
        ({"port": "8000"}, "port: must be a whole number >= 1, got '8000'"),
        ({"data_dir": ""}, "data_dir: must not be empty"),
        ({"admins": "admin"}, "admins: must be a list, got 'admin'"),
        ({"kubernetes": {"gpu_tolerations": ["x"]}}, "kubernetes.gpu_tolerations[0]: must be a mapping of keys to values, got str"),
        ({"storage": {"kubernetes": {"gid": -1}}}, "storage.kubernetes.gid: must be a whole number >= 0, got -1"),
    ],
)  # fmt: skip
def test_errors_are_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value) and "pydantic" not in str(refused.value)
    assert not isinstance(refused.value.__cause__, pydantic.ValidationError)


def test_the_config_is_frozen():
    config = parse_config({})
    with pytest.raises(pydantic.ValidationError):
        config.port = 9000  # type: ignore[misc]


def test_relative_paths_follow_the_config_file(tmp_path):
    config = parse_config(
        {"data_dir": "data", "storage": {"local": {"root": "../volumes"}}}, source=tmp_path / "c.yaml"
    )
    assert (config.data_dir, config.local_root) == (
        tmp_path / "data",
        (tmp_path.parent / "volumes").resolve(),
    )
    assert config.source == tmp_path / "c.yaml"
    assert config.database_url == f"sqlite:///{tmp_path / 'data' / 'lavahub.sqlite'}"


def test_key_paths():
    assert key_path(("templates", 1, "slug")) == "templates[1].slug"
    assert key_path(("jobs", "ray", "port")) == "jobs.ray.port"
    assert key_path(()) == ""
