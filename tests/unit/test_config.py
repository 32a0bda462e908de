from pathlib import Path

import pytest

from lavahub.config import load_config, parse_config
from spawner.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_embedded_defaults_without_a_config(monkeypatch, tmp_path):
    monkeypatch.delenv("LAVAHUB_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    config = load_config()
    assert config.backend == "local"
    assert (config.bind, config.port) == ("127.0.0.1", 8000)
    assert config.data_dir == tmp_path / "lavahub"
    assert config.local_root == config.data_dir
    assert config.admins == ("admin",)
    assert set(config.projects) == {"default", "vision"}
    assert [t.slug for t in config.templates] == ["python", "pytorch"]
    assert config.database_url == f"sqlite:///{tmp_path / 'lavahub' / 'lavahub.sqlite'}"
    assert config.source is None


def test_example_config_is_valid():
    config = load_config(REPO / "lavahub.example.yaml")
    assert config.projects["vision"].node_pool == "a100"
    assert config.projects["vision"].quota.memory == 128 * 2**30
    pytorch = next(t for t in config.templates if t.slug == "pytorch")
    assert pytorch.projects == ("vision",)
    assert pytorch.max_gpus == 2
    assert config.kubernetes.namespace == "lavahub"
    assert config.kubernetes.gpu_tolerations[0]["key"] == "nvidia.com/gpu"
    vgpu = next(t for t in config.templates if t.slug == "pytorch-vgpu")
    assert (vgpu.gpu_resource, vgpu.gpu_memory) == ("volcano.sh/vgpu-number", 10240)
    # relative paths are relative to the config file, not the working directory
    assert config.data_dir == REPO / "lavahub-data"


def test_config_path_from_environment(monkeypatch, tmp_path):
    path = tmp_path / "lavahub.yaml"
    path.write_text("port: 9000\n")
    monkeypatch.setenv("LAVAHUB_CONFIG", str(path))
    assert load_config().port == 9000


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"backend": "slurm"}, "backend: must be one of local, kubernetes, got 'slurm'"),
        ({"prot": 8000}, "prot: unknown key"),
        ({"port": "eighty"}, "port: must be a whole number"),
        ({"port": 70000}, "port: must be a TCP port"),
        ({"port": 8081}, "three different ports"),
        ({"bind": "0.0.0.0"}, "bind: the local backend listens on loopback only"),
        ({"bind": "192.168.1.5"}, "bind: the local backend listens on loopback only"),
        ({"auth": {"admin_password": "short"}}, "auth.admin_password: must be at least 32 characters"),
        ({"auth": {"user_password": "1234"}}, "auth.user_password: must be at least 8 characters"),
        ({"auth": {"admin_password": "x" * 40, "user_password": "x" * 40}}, "must differ"),
        ({"admins": ["ok", "no way"]}, "admins[1]: 'no way' is not valid"),
        ({"projects": {}}, "projects: at least one project"),
        ({"projects": {"Bad_Name": {}}}, "projects.Bad_Name: 'Bad_Name' is not valid"),
        ({"projects": {"p": {"quota": {"gpus": -1}}}}, "projects.p.quota.gpus: must be a whole number >= 0"),
        ({"projects": {"p": {"quota": {"memory": "lots"}}}}, "projects.p.quota.memory: not an amount of memory"),
        ({"projects": {"p": {"qouta": {}}}}, "projects.p.qouta: unknown key"),
        ({"templates": []}, "templates: must be a non-empty list"),
        ({"templates": [{"slug": "x"}]}, "templates[0].image: is required"),
        ({"templates": [{"slug": "X", "image": "a"}]}, "templates[0].slug: 'X' is not valid"),
        ({"templates": [{"slug": "x", "image": "Not An Image"}]}, "templates[0].image: 'Not An Image' is not valid"),
        ({"templates": [{"slug": "x", "image": "a", "gpus": 2, "max_gpus": 1}]}, "templates[0].gpus: the default is above max_gpus"),
        ({"templates": [{"slug": "x", "image": "a", "memory": "4Gi", "max_memory": "2Gi"}]}, "templates[0].memory: the default is above max_memory"),
        ({"templates": [{"slug": "x", "image": "a", "cpus": 0}]}, "templates[0].cpus: must be greater than 0"),
        ({"templates": [{"slug": "x", "image": "a", "projects": ["nope"]}]}, "templates[0].projects[0]: no project named 'nope' exists"),
        ({"templates": [{"slug": "x", "image": "a", "env": {"LAVAHUB_PROJECT": "x"}}]}, "templates[0].env.LAVAHUB_PROJECT: is set by lavahub"),
        ({"templates": [{"slug": "x", "image": "a", "env": {"1BAD": "x"}}]}, "templates[0].env.1BAD: '1BAD' is not valid"),
        ({"templates": [{"slug": "x", "image": "a", "gpu_types": ["A100"]}]}, "templates[0].gpu_types: names GPU models but max_gpus is 0"),
        ({"templates": [{"slug": "x", "image": "a"}, {"slug": "x", "image": "b"}]}, "templates[1].slug: 'x' is used twice"),
        ({"storage": {"local": {"rooot": "/x"}}}, "storage.local.rooot: unknown key"),
        ({"storage": {"kubernetes": {"uid": "root"}}}, "storage.kubernetes.uid: must be a whole number"),
        ({"storage": {"kubernetes": {"home_mount": "home"}}}, "storage.kubernetes.home_mount: 'home' is not valid"),
        ({"storage": {"kubernetes": {"personal_claim": "Home Claim"}}}, "storage.kubernetes.personal_claim: 'Home Claim' is not valid"),
        ({"templates": [{"slug": "x", "image": "a", "gpu_memory": 1024}]}, "templates[0].gpu_memory: applies to shared GPUs only"),
        ({"kubernetes": {"namespace": "Lava Hub"}}, "kubernetes.namespace: 'Lava Hub' is not valid"),
        ({"kubernetes": {"gpu_product_label": "not a label"}}, "kubernetes.gpu_product_label: 'not a label' is not valid"),
        ({"kubernetes": {"gpu_tolerations": "all"}}, "kubernetes.gpu_tolerations: must be a list"),
        ({"kubernetes": {"start_timeout": 0}}, "kubernetes.start_timeout: must be a whole number >= 1"),
        ({"kubernetes": {"namespaces": "x"}}, "kubernetes.namespaces: unknown key"),
        ({"templates_service": {"port": 8000}}, "templates_service.port: must differ from port"),
        ({"templates_service": {"admins": ["no way"]}}, "templates_service.admins[0]: 'no way' is not valid"),
        ({"templates_service": {"admin_groups": ["Bad"]}}, "templates_service.admin_groups[0]: 'Bad' is not valid"),
        ({"templates_service": {"admin": []}}, "templates_service.admin: unknown key"),
        ({"named_servers": -1}, "named_servers: must be a whole number >= 0"),
        ({"subdomain_host": "hub.example.org"}, "subdomain_host: must be an origin such as https://hub.example.org"),
        ({"backend": "kubernetes", "subdomain_host": "https://hub.example.org/hub"}, "subdomain_host: must be an origin"),
        ({"backend": "kubernetes", "subdomain_host": "https://10.0.0.1"}, "subdomain_host: must be an origin"),
        ({"backend": "kubernetes", "subdomain_host": "http://hub.example.org"}, "subdomain_host: must use https"),
        ({"subdomain_host": "https://hub.example.org"}, "subdomain_host: the local backend serves user servers on loopback only"),
        ({"subdomain_host": "http://localhost:9000"}, "use http://localhost:8000"),
        ({"disable_user_config": "no"}, "disable_user_config: must be true or false"),
        (["not", "a", "mapping"], "config: must be a mapping"),
    ],
)  # fmt: skip
def test_invalid_config_names_the_key(raw, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("raw", "origin"),
    [
        ({"backend": "kubernetes", "subdomain_host": "https://Hub.Example.org/"}, "https://hub.example.org"),
        ({"backend": "kubernetes", "subdomain_host": "https://hub.example.org:8443"}, "https://hub.example.org:8443"),
        ({"subdomain_host": "http://localhost:8000"}, "http://localhost:8000"),
        ({"port": 9000, "subdomain_host": "http://localhost:9000/"}, "http://localhost:9000"),
        ({}, None),
    ],
)  # fmt: skip
def test_subdomain_host_is_an_origin(raw, origin):
    assert parse_config(raw).subdomain_host == origin


def test_kubernetes_backend_may_bind_anywhere():
    assert parse_config({"backend": "kubernetes", "bind": "0.0.0.0"}).bind == "0.0.0.0"


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_binds_are_accepted(bind):
    assert parse_config({"bind": bind}).bind == bind


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line 2"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("port: 0\n")
    with pytest.raises(ConfigError, match=r"^wrong.yaml: port: must be a whole number >= 1"):
        load_config(wrong)


def test_users_are_admins_and_members():
    config = parse_config(
        {"admins": ["root1"], "projects": {"a": {"members": ["x", "y"]}, "b": {"members": ["y", "z"]}}}
    )
    assert config.users == ["root1", "x", "y", "z"]


def test_embedded_templates_follow_the_configs_own_projects():
    config = parse_config({"projects": {"team": {"members": ["x"]}}})
    assert {t.slug: t.projects for t in config.templates} == {"python": (), "pytorch": ()}
