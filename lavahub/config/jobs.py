"""`jobs`: the jobs service, the limits on a job, and the backend that runs jobs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .fields import (
    Flag,
    Memory,
    OptionalPath,
    OptionalPositive,
    OptionalText,
    Port,
    Positive,
    Section,
    Slug,
    Whole,
    refuse,
)

RAY_WORKER_PORTS = (10002, 19999)  # ray start's default --min/max-worker-port


class RayConfig(Section):
    """The Ray cluster that runs jobs: any cluster by address, else a local head lavahub starts."""

    address: OptionalText = Field(
        None,
        description="The Ray dashboard address of an existing cluster (such as http://ray-head:8265). "
        "Default: start (or reuse) a local head on loopback.",
    )
    gcs_address: OptionalText = Field(
        None,
        description="The GCS address (host:port) of the cluster named by `address`: the jobs service "
        "joins it as a Ray driver. Default: the dashboard's host, port 6379 (Ray's default).",
    )
    port: Port = Field(6380, description="The local head's GCS port.")
    dashboard_port: Port = Field(8265, description="The local head's dashboard / Jobs API port (loopback).")
    num_cpus: OptionalPositive = Field(
        None, description="CPUs the local head offers. Default: every core of this machine."
    )
    object_store_memory: Memory = Field(
        256 * 2**20, description="The local head's object store, bytes or an amount such as 512Mi."
    )
    start_timeout: Positive = Field(
        180, description="Seconds to wait for a local head's GCS to answer once `ray start` returned."
    )

    @model_validator(mode="after")
    def _outside_worker_ports(self) -> RayConfig:
        low, high = RAY_WORKER_PORTS
        for key in ("port", "dashboard_port"):
            port = getattr(self, key)
            if low <= port <= high:
                raise refuse(
                    f"{port} is in the range Ray keeps for its workers ({low}-{high})",
                    at=key,
                    hint="pick a port outside it, such as 6380 or 8265",
                )
        return self


class VolcanoConfig(Section):
    """Volcano on Kubernetes: each job a gang-scheduled `batch.volcano.sh` Job in its project's queue."""

    namespace: Slug | None = Field(
        None, description="The namespace of the jobs' Volcano Jobs and pods. Default: kubernetes.namespace."
    )
    scheduler_name: Slug = Field("volcano", description="The scheduler that places the jobs' pods.")
    max_retry: Whole = Field(
        3, description="How often Volcano restarts a job whose node was lost (maxRetry) before it fails."
    )
    ttl_seconds_after_finished: Whole = Field(
        600,
        description="Seconds Volcano keeps an ended job's pods (ttlSecondsAfterFinished); lavahub keeps "
        "their logs and the result either way.",
    )
    priority_class: Slug | None = Field(
        None, description="The priorityClassName of every job's pods, unless its project names one."
    )
    master_port: Port = Field(29500, description="MASTER_PORT of python jobs (rank 0 listens there).")
    workspaces_in_queues: Flag = Field(
        False,
        description="Schedule workspaces with Volcano in their project's queue too, so notebooks and jobs "
        "share one quota as they do on one machine.",
    )


MIN_LINE_BYTES = 256  # room for a line's prefix and the marker of a cut line


class JobLogsConfig(Section):
    """How much of a job's output the service keeps: a job that writes more keeps running."""

    max_bytes: Memory = Field(
        64 * 2**20,
        description="The most of one job's output the service keeps, bytes or an amount such as 64Mi. "
        "Past it one line says the log was truncated, and the rest is discarded (the job keeps running).",
    )
    max_line_bytes: Memory = Field(
        64 * 2**10,
        description="The longest line kept, bytes (with its [worker-N] prefix); a longer one is cut, "
        "with a marker saying so.",
    )

    @model_validator(mode="after")
    def _lines_fit(self) -> JobLogsConfig:
        if self.max_line_bytes < MIN_LINE_BYTES:
            raise refuse(f"must be at least {MIN_LINE_BYTES} bytes", at="max_line_bytes")
        if self.max_line_bytes > self.max_bytes:
            raise refuse("must not exceed jobs.logs.max_bytes", at="max_line_bytes")
        return self


class JobsConfig(Section):
    """The `jobs` service: its port, the limits on a job, and the backend it runs jobs on."""

    enabled: Flag = Field(
        True, description="Run the jobs service (false leaves %%job and `lavahub jobs` off)."
    )
    port: Port = Field(8082, description="The service's port on loopback; the proxy serves it.")
    max_workers: Positive = Field(8, description="The most workers one job may ask for.")
    max_code_bytes: Positive = Field(2**20, description="The largest cell a job may run, in bytes.")
    default_timeout: Positive = Field(3600, description="Seconds a job may run when it names no timeout.")
    max_pending: Positive = Field(
        24 * 3600,
        description="Seconds a job may wait to start; then it fails, saying why it waited.",
    )
    max_timeout: Positive = Field(
        7 * 24 * 3600, description="The longest timeout a job may ask for, seconds."
    )
    max_unfinished_per_user: Positive = Field(
        20, description="The most pending or running jobs one user may have; more are refused."
    )
    max_result_bytes: Memory = Field(
        64 * 2**20,
        description="The largest result (rank 0's `result` variable, pickled) handed back, bytes or "
        "an amount such as 64Mi; a larger one is not returned, and the answer says why.",
    )
    logs: JobLogsConfig = Field(default_factory=JobLogsConfig, description="The caps on each job's log.")
    logs_dir: OptionalPath = Field(
        None,
        description="Where the service keeps each job's log (<logs_dir>/<job id>/output.log); put it "
        "off the database's volume so that no job's output can fill that. Default: <data_dir>/jobs.",
    )
    backend: Literal["ray", "volcano"] = Field(
        "ray",
        description="What runs jobs: ray (a Ray cluster, or a local head), or volcano (gang-scheduled "
        "Volcano Jobs; the kubernetes backend only).",
    )
    ray: RayConfig = Field(default_factory=RayConfig, description="The Ray cluster (backend ray).")
    volcano: VolcanoConfig = Field(
        default_factory=VolcanoConfig, description="Volcano on the cluster (backend volcano)."
    )

    @model_validator(mode="after")
    def _timeouts(self) -> JobsConfig:
        if self.default_timeout > self.max_timeout:
            raise refuse("must not exceed jobs.max_timeout", at="default_timeout")
        return self
