"""The OpenAPI document of the server extension's API, served at ``<base_url>lavahub/openapi.json``.

Its ``/api/...`` operations are the jobs service's own (the extension forwards
them unchanged), so they are taken from the service's document, which stays
their one source; ``/gpus`` and ``/workspace`` are the extension's.
"""

from __future__ import annotations

import copy
from typing import Any

GPU = {
    "type": "object",
    "required": ["index", "uuid", "name", "utilization", "memory_used_mib", "memory_total_mib"],
    "properties": {
        "index": {"type": "integer", "minimum": 0, "description": "NVML's index (PCI order)."},
        "uuid": {"type": "string"},
        "name": {"type": "string"},
        "utilization": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Percent busy."},
        "memory_used_mib": {"type": "integer", "minimum": 0},
        "memory_total_mib": {"type": "integer", "minimum": 0},
    },
}
WORKSPACE = {
    "type": "object",
    "required": ["template", "project", "jobs", "jobs_off"],
    "properties": {
        "template": {"type": ["string", "null"], "description": "The template it was started from."},
        "project": {"type": ["string", "null"], "description": "The project it was started in."},
        "jobs": {"type": "boolean", "description": "Whether this platform runs jobs."},
        "jobs_off": {"type": ["string", "null"], "description": "Why not, where it does not."},
    },
}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def server_document(jobs: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The extension's document from the jobs service's: its paths under /api, and the extension's own."""
    doc = copy.deepcopy(jobs)
    doc["info"] = {
        "title": "lavahub in JupyterLab",
        "version": "1",
        "description": "The jobs API as the person using the page, and this workspace's GPUs and defaults.",
    }
    doc["servers"] = [{"url": base_url.rstrip("/") + "/lavahub"}]
    doc["paths"] = {"/api" + path: item for path, item in jobs.get("paths", {}).items()}
    doc["paths"]["/gpus"] = {
        "get": {
            "summary": "This workspace's GPUs: utilization and memory (none without GPUs)",
            "responses": {
                "200": _json(
                    "the GPUs",
                    {
                        "type": "object",
                        "required": ["gpus"],
                        "properties": {"gpus": {"type": "array", "items": GPU}},
                    },
                )
            },
        }
    }
    doc["paths"]["/workspace"] = {
        "get": {
            "summary": "The template and project this workspace was started with: a job's defaults",
            "responses": {"200": _json("the workspace", WORKSPACE)},
        }
    }
    return doc
