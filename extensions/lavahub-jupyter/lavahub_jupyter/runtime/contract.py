"""The job execution contract: the environment every worker of every backend gets.

The names are the same on one machine and on a cluster, so code written for
`torch.distributed` (or plain `RANK` / `WORLD_SIZE`) runs unchanged on both.
"""

from __future__ import annotations

from collections.abc import Mapping

# set by lavahub for every worker; a job's own `env` may not override them
RESERVED_ENV = frozenset(
    {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "HOME",
        "USER",
        "PYTHONUNBUFFERED",
    }
)
RESERVED_ENV_PREFIXES = ("LAVAHUB_", "JUPYTERHUB_", "RAY_")

CODE_FILE = "code.py"
EXPORTS_FILE = "exports.pkl"
EXPORTS_B64_FILE = "exports.pkl.b64"  # the same, base64: where only text travels (a pod annotation)
RESULT_FILE = "result.pkl"


# what a worker takes from the machine it runs on: how to find programs and speak the locale;
# never the platform's tokens, settings or home (the tests give the platform secrets to check that)
PASSED_THROUGH = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH")


def base_env(machine: Mapping[str, str], *, home: str, user: str) -> dict[str, str]:
    """A worker's environment before the contract's names: nothing of the platform's own."""
    env = {key: machine[key] for key in PASSED_THROUGH if key in machine}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return {**env, "HOME": home, "USER": user}


def is_reserved(name: str) -> bool:
    return name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES)


def contract_env(
    *,
    job_id: str,
    job_dir: str,
    rank: int,
    world_size: int,
    local_rank: int,
    master_addr: str,
    master_port: int,
    env: Mapping[str, str] = {},
    result: str | None = None,
) -> dict[str, str]:
    """One worker's contract variables, over the template's and the job's own `env`."""
    return {
        **env,
        "LAVAHUB_JOB_ID": job_id,
        "LAVAHUB_JOB_DIR": job_dir,
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(local_rank),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "PYTHONUNBUFFERED": "1",
        **({"LAVAHUB_RESULT": result} if result else {}),
    }


# Where a worker cannot write into the service's view of the job dir (a pod on Kubernetes), rank 0
# sends its result in its own output: `RESULT_MARKER <token> <base64 chunk>` lines, then
# `RESULT_MARKER <token> end <sha256>`. The service takes those lines out of the log.
RESULT_MARKER = "lavahub-result"
RESULT_CHUNK = 48 * 1024  # base64 characters per line


def result_lines(data: bytes, token: str) -> list[str]:
    """`data` as the lines rank 0 prints (without newlines)."""
    import base64
    import hashlib

    text = base64.b64encode(data).decode()
    chunks = [text[i : i + RESULT_CHUNK] for i in range(0, len(text), RESULT_CHUNK)]
    lines = [f"{RESULT_MARKER} {token} {chunk}" for chunk in chunks]
    return [*lines, f"{RESULT_MARKER} {token} end {hashlib.sha256(data).hexdigest()}"]
