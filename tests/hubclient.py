"""A small client for a running hub: log in through the form, then use the REST API.

Used by the integration tests and the benchmarks, so both drive the hub the way a
person's browser and scripts do.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_for_hub(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Wait until the hub answers through the proxy; fail with the end of its log if it cannot."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the hub exited with {process.returncode}:\n{log_tail(log)}")
        try:
            if requests.get(f"{url}/hub/api/", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the hub at {url} did not answer within {timeout}s:\n{log_tail(log)}")


class HubClient:
    def __init__(self, url: str, user: str, password: str | None, session: requests.Session | None = None):
        """Log in with the login form, or (`password=None`) use a `session` logged in already
        (through an OAuth provider, say)."""
        self.url = url.rstrip("/")
        self.user = user
        self.session = session or requests.Session()
        if password is not None:
            self._login(password)
        self.token = self._new_token()
        # API calls carry the token; the login cookie stays for pages and forms
        self.session.headers["Authorization"] = f"token {self.token}"

    def _login(self, password: str) -> None:
        page = self.session.get(f"{self.url}/hub/login", timeout=10)
        page.raise_for_status()
        xsrf = self.session.cookies.get("_xsrf", path="/hub/")
        response = self.session.post(
            f"{self.url}/hub/login?next=",
            data={"username": self.user, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=10,
        )
        if response.status_code != 302:
            raise PermissionError(f"login as {self.user} failed: {response.status_code}")

    def _new_token(self) -> str:
        xsrf = self.session.cookies.get("_xsrf", path="/hub/")
        response = self.session.post(
            f"{self.url}/hub/api/users/{self.user}/tokens",
            json={"note": "lavahub tests", "expires_in": 3600},
            headers={"X-XSRFToken": xsrf},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["token"]

    def page(self, path: str) -> requests.Response:
        """A hub page as the logged-in browser sees it (cookie, no token)."""
        return requests.get(
            f"{self.url}/{path.lstrip('/')}", cookies=self.session.cookies, timeout=10, allow_redirects=False
        )

    def submit_form(self, path: str, fields: dict[str, str]) -> requests.Response:
        """POST a hub form the way a browser does: login cookie plus the XSRF field."""
        xsrf = self.session.cookies.get("_xsrf", path="/hub/")
        return requests.post(
            f"{self.url}/{path.lstrip('/')}",
            data={**fields, "_xsrf": xsrf},
            cookies=self.session.cookies,
            timeout=30,
            allow_redirects=False,
        )

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api/{path.lstrip('/')}", timeout=30, **kwargs)

    def templates(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        """The templates service's API through the proxy, with this user's token."""
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, f"{self.url}/services/templates/api/templates{path}", **kwargs)

    def jobs(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        """The jobs service's API through the proxy, with this user's token."""
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, f"{self.url}/services/jobs/api/jobs{path}", **kwargs)

    def spawn(self, server: str = "", options: dict[str, Any] | None = None) -> requests.Response:
        path = f"users/{self.user}/servers/{server}" if server else f"users/{self.user}/server"
        return self.api("POST", path, json=options or {})

    def server_url(self, server: str = "") -> str:
        return f"{self.url}/user/{self.user}/{server + '/' if server else ''}"

    def wait_ready(self, server: str = "", timeout: float = 90) -> dict[str, Any]:
        """Wait until the hub calls the server ready and JupyterLab answers through the proxy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"users/{self.user}").json()
            entry = model.get("servers", {}).get(server)
            if entry and entry.get("ready"):
                status = self.session.get(f"{self.server_url(server)}api/status", timeout=10)
                if status.status_code == 200:
                    return entry
            time.sleep(0.1)
        raise TimeoutError(f"{self.user}'s server {server!r} not ready after {timeout}s")

    def stop(self, server: str = "", timeout: float = 60, *, remove: bool = False) -> None:
        """Stop a server; `remove` also deletes a named server's record (as the home page's delete does)."""
        path = f"users/{self.user}/servers/{server}" if server else f"users/{self.user}/server"
        response = self.api("DELETE", path, json={"remove": True} if remove else None)
        if response.status_code not in (202, 204):
            response.raise_for_status()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.api("GET", f"users/{self.user}").json().get("servers", {}).get(server)
            if entry is None or not (entry.get("pending") or entry.get("ready")):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.user}'s server {server!r} did not stop in {timeout}s")
