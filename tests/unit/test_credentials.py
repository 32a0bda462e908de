import stat

import pytest

from lavahub.config import parse_config
from lavahub.credentials import ensure_credentials
from spawner.errors import ConfigError


def config(tmp_path, **raw):
    return parse_config({"data_dir": str(tmp_path / "data"), **raw})


def test_generated_once_with_mode_0600(tmp_path):
    first, created = ensure_credentials(config(tmp_path))
    assert created
    assert len(first.admin_password) >= 32 and len(first.user_password) >= 16
    path = tmp_path / "data" / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second, created_again = ensure_credentials(config(tmp_path))
    assert (second, created_again) == (first, False)


def test_config_passwords_win_and_nothing_is_written(tmp_path):
    given = {"auth": {"admin_password": "a" * 32, "user_password": "u" * 8}}
    creds, created = ensure_credentials(config(tmp_path, **given))
    assert (creds.admin_password, creds.user_password, created) == ("a" * 32, "u" * 8, False)
    assert not (tmp_path / "data" / "credentials").exists()


def test_one_password_from_config_the_other_generated(tmp_path):
    creds, _ = ensure_credentials(config(tmp_path, auth={"user_password": "u" * 8}))
    assert creds.user_password == "u" * 8 and len(creds.admin_password) >= 32


def test_loose_permissions_are_tightened_and_damage_is_reported(tmp_path):
    ensure_credentials(config(tmp_path))
    path = tmp_path / "data" / "credentials"
    path.chmod(0o644)
    ensure_credentials(config(tmp_path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("admin_password: [\n")
    with pytest.raises(ConfigError, match="damaged"):
        ensure_credentials(config(tmp_path))
