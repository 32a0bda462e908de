"""The OpenAPI description of the jobs API, served at api/openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_JOB = {
    "description": "the job",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
}


def openapi(prefix: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "lavahub jobs",
            "version": "1",
            "description": "Run notebook cells as distributed, gang-scheduled jobs.",
        },
        "servers": [{"url": prefix.rstrip("/") + "/api"}],
        "security": [{"token": []}],
        "paths": {
            "/jobs": {
                "get": {
                    "summary": "The caller's jobs, newest first (admins: all=true for everyone's)",
                    "parameters": [
                        {"name": "project", "in": "query", "schema": {"type": "string"}},
                        {"name": "state", "in": "query", "schema": {"$ref": "#/components/schemas/State"}},
                        {"name": "all", "in": "query", "schema": {"type": "boolean"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "jobs",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "jobs": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Job"},
                                            }
                                        },
                                    }
                                }
                            },
                        },
                        "400": _ERROR,
                        "401": _ERROR,
                        "403": _ERROR,
                    },
                },
                "post": {
                    "summary": "Submit a cell as a job",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}
                        },
                    },
                    "responses": {"201": _JOB, "400": _ERROR, "401": _ERROR, "403": _ERROR},
                },
            },
            "/jobs/{id}": {
                "get": {"summary": "One job", "parameters": [_ID], "responses": {"200": _JOB, "404": _ERROR}},
                "delete": {
                    "summary": "Cancel a job",
                    "parameters": [_ID],
                    "responses": {"200": _JOB, "404": _ERROR},
                },
            },
            "/jobs/{id}/logs": {
                "get": {
                    "summary": "Every worker's output, lines prefixed [worker-N]; streamed with follow=true",
                    "parameters": [
                        _ID,
                        {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    ],
                    "responses": {
                        "200": {"description": "log lines", "content": {"text/plain": {}}},
                        "404": _ERROR,
                    },
                }
            },
            "/jobs/{id}/explain": {
                "get": {
                    "summary": "Why the job is waiting or why it failed",
                    "parameters": [_ID],
                    "responses": {
                        "200": {
                            "description": "explanation",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Explanation"}}
                            },
                        },
                        "404": _ERROR,
                    },
                },
            },
            "/jobs/{id}/result": {
                "get": {
                    "summary": "Rank 0's `result` variable, base64 cloudpickle",
                    "parameters": [_ID],
                    "responses": {"200": {"description": "result"}, "404": _ERROR},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "token <JUPYTERHUB_API_TOKEN>",
                }
            },
            "schemas": {
                "State": {
                    "type": "string",
                    "enum": ["pending", "running", "succeeded", "failed", "cancelled"],
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "hint": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
                "Resources": {
                    "type": "object",
                    "properties": {
                        "cpus": {"type": "number"},
                        "memory": {"type": "string"},
                        "gpus": {"type": "integer"},
                    },
                },
                "Job": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "user": {"type": "string"},
                        "project": {"type": "string"},
                        "template": {"type": "string"},
                        "framework": {"type": "string"},
                        "workers": {"type": "integer"},
                        "resources": {"$ref": "#/components/schemas/Resources"},
                        "state": {"$ref": "#/components/schemas/State"},
                        "reason": {"type": "string", "nullable": True},
                        "created": {"type": "string", "format": "date-time"},
                        "started": {"type": "string", "format": "date-time", "nullable": True},
                        "finished": {"type": "string", "format": "date-time", "nullable": True},
                        "exit_code": {"type": "integer", "nullable": True},
                        "timeout": {"type": "integer"},
                    },
                },
                "Submission": {
                    "type": "object",
                    "required": ["code"],
                    "properties": {
                        "code": {"type": "string"},
                        "workers": {"type": "integer", "minimum": 1},
                        "framework": {"type": "string", "enum": ["python", "pytorch", "ray"]},
                        "gpus": {"type": "integer", "minimum": 0},
                        "cpus": {"type": "number"},
                        "memory": {"type": "string"},
                        "project": {"type": "string"},
                        "template": {"type": "string"},
                        "name": {"type": "string"},
                        "timeout": {"type": "integer", "minimum": 1},
                        "env": {"type": "object", "additionalProperties": {"type": "string"}},
                        "cwd": {"type": "string"},
                        "exports": {"type": "string", "format": "byte"},
                        "result": {"type": "string"},
                    },
                },
                "Explanation": {
                    "type": "object",
                    "properties": {
                        "state": {"$ref": "#/components/schemas/State"},
                        "summary": {"type": "string"},
                        "details": {"type": "array", "items": {"type": "string"}},
                        "suggestions": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    }
