"""The platform config (`lavahub.yaml`): one pydantic model per section, loaded and validated here.

Each key is declared once, with its default, its description and its validation
(`platform.py` and the section modules); `schema()` is the JSON Schema made from
them. An invalid config is one ConfigError naming the key path
(`jobs.ray.port: ...`, `templates[1].slug: ...`), prefixed with the file's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from spawner.errors import ConfigError

from .accounts import AccountsConfig
from .auth import AuthConfig
from .errors import one_line
from .jobs import JobsConfig, RayConfig
from .kubernetes import KubernetesConfig
from .platform import PlatformConfig
from .services import TemplatesServiceConfig
from .storage import KubernetesStorage, LocalStorage, StorageConfig

__all__ = [
    "CONFIG_ENV",
    "AccountsConfig",
    "AuthConfig",
    "ConfigError",
    "JobsConfig",
    "KubernetesConfig",
    "KubernetesStorage",
    "LocalStorage",
    "PlatformConfig",
    "RayConfig",
    "StorageConfig",
    "TemplatesServiceConfig",
    "config_path",
    "load_config",
    "parse_config",
    "schema",
]

CONFIG_ENV = "LAVAHUB_CONFIG"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config to read: `--config`, else $LAVAHUB_CONFIG, else none (embedded defaults)."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or None
    return Path(chosen).expanduser().resolve() if chosen else None


def load_config(path: str | os.PathLike[str] | None = None) -> PlatformConfig:
    """Read and validate the platform config; raise ConfigError with the key that is wrong."""
    source = config_path(path)
    raw: Any = {}
    if source is not None:
        try:
            text = source.read_text()
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except OSError as e:
            raise ConfigError(f"config file {source} cannot be read: {e.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or "not valid YAML"
            raise ConfigError(f"{source}: not valid YAML{at}: {problem}") from None
    try:
        return parse_config(raw, source=source)
    except ConfigError as e:
        if source is not None:
            raise ConfigError(f"{source.name}: {e.message}", hint=e.hint, field=e.field) from None
        raise


def parse_config(raw: Any, *, source: Path | None = None) -> PlatformConfig:
    """Validate a config mapping; relative paths in it are relative to `source`'s folder."""
    base = source.parent if source else Path.cwd()
    try:
        config = PlatformConfig.model_validate(raw, context={"base": base})
    except ValidationError as e:
        raise one_line(e) from None
    config._source = source
    return config


def schema() -> dict[str, Any]:
    """The JSON Schema of the platform config (for editors and the Helm chart's values.schema.json)."""
    return PlatformConfig.model_json_schema()
