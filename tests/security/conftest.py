"""The security tests drive a real platform, as tests/integration does: its fixtures, shared."""

from tests.integration.conftest import ray_cluster

__all__ = ["ray_cluster"]
