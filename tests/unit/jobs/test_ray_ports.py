"""The local Ray head's ports: the config's, unless another program holds them (then recorded)."""

import socket

from lavahub.config import RayConfig
from services.jobs.backends.ray import RayBackend
from services.jobs.backends.ray.backend import free_port


def test_taken_ports_are_replaced_recorded_and_found_again(tmp_path):
    port, dashboard = free_port(), free_port()
    backend = RayBackend(state_dir=str(tmp_path), settings=RayConfig(port=port, dashboard_port=dashboard))
    backend._choose_ports()
    assert backend.ports == {"port": port, "dashboard_port": dashboard}, "free ports are kept"
    assert not (tmp_path / "ports.json").exists()

    with socket.socket() as other:  # another program (or another lavahub's head) on the dashboard port
        other.bind(("127.0.0.1", dashboard))
        other.listen()
        backend._choose_ports()
    assert backend.port == port and backend.dashboard_port != dashboard
    assert backend.dashboard_url == f"http://127.0.0.1:{backend.dashboard_port}"

    again = RayBackend(state_dir=str(tmp_path), settings=RayConfig(port=port, dashboard_port=dashboard))
    assert again.ports == backend.ports, "a restarted service (and `lavahub down`) finds the head"
