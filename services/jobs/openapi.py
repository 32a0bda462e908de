"""The OpenAPI document of the jobs API, generated from `api_models`, served at api/openapi.json.

Only the routes are written here; every body's schema comes from its model.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from .api_models import MODELS, Error, Explanation, Job, JobList, Options, Result, Submission

REF = "#/components/schemas/{model}"
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"}}
STATE_ENUM = ["pending", "running", "succeeded", "failed", "cancelled"]


def _ref(model: type) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(description: str, model: type) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


ERRORS = {status: _json("error", Error) for status in ("400", "401", "403")}
NOT_FOUND = {"404": _json("no such job (or not yours)", Error), "401": ERRORS["401"]}

PATHS: dict[str, dict[str, Any]] = {
    "/jobs": {
        "get": {
            "summary": "The caller's jobs, newest first (admins: all=true for everyone's)",
            "parameters": [
                _query("project", {"type": "string"}, "only this project's jobs"),
                _query("state", {"type": "string", "enum": STATE_ENUM}, "only jobs in this state"),
                _query("all", {"type": "boolean"}, "admins: everyone's jobs"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many"),
            ],
            "responses": {"200": _json("jobs", JobList), **ERRORS},
        },
        "post": {
            "summary": "Submit a cell as a job",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(Submission)}}},
            "responses": {"201": _json("the job, pending", Job), **ERRORS},
        },
    },
    "/options": {
        "get": {
            "summary": "What the caller may ask of a job: frameworks, limits, their projects and templates",
            "responses": {"200": _json("the choices", Options), "401": ERRORS["401"], "403": ERRORS["403"]},
        },
    },
    "/jobs/{id}": {
        "get": {
            "summary": "One job",
            "parameters": [ID],
            "responses": {"200": _json("the job", Job), **NOT_FOUND},
        },
        "delete": {
            "summary": "Cancel a job (every worker stops); cancelling an ended job changes nothing",
            "parameters": [ID],
            "responses": {"200": _json("the job", Job), **NOT_FOUND},
        },
    },
    "/jobs/{id}/logs": {
        "get": {
            "summary": "Every worker's output, lines prefixed [worker-N]; streamed with follow=true",
            "parameters": [
                ID,
                _query("follow", {"type": "boolean"}, "keep the response open until the job ends"),
                _query("since", {"type": "integer", "minimum": 0}, "skip this many lines"),
            ],
            "responses": {
                "200": {
                    "description": "log lines",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "400": ERRORS["400"],
                **NOT_FOUND,
            },
        }
    },
    "/jobs/{id}/explain": {
        "get": {
            "summary": "Why the job is waiting or why it failed",
            "parameters": [ID],
            "responses": {"200": _json("explanation", Explanation), **NOT_FOUND},
        },
    },
    "/jobs/{id}/result": {
        "get": {
            "summary": "Rank 0's `result` variable, base64 cloudpickle",
            "parameters": [ID],
            "responses": {"200": _json("result", Result), **NOT_FOUND},
        },
    },
}


def openapi(prefix: str) -> dict[str, Any]:
    _, schemas = models_json_schema([(m, "validation") for m in MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lavahub jobs",
            "version": "1",
            "description": "Run notebook cells as distributed, gang-scheduled jobs.",
        },
        "servers": [{"url": prefix.rstrip("/") + "/api"}],
        "security": [{"token": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "token <JUPYTERHUB_API_TOKEN>",
                }
            },
            "schemas": schemas["$defs"],
        },
    }


if __name__ == "__main__":  # `make lab-types`: the document the lab extension's types come from
    import json

    print(json.dumps(openapi("/services/jobs/"), indent=1))
