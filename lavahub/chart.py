"""The Helm chart's values.schema.json: the platform config's own JSON Schema under `platform`, and
the chart's deployment keys beside it.

The platform part is not written a second time: it is `lavahub.config.schema()`, narrowed where the
chart deploys one kind of platform (the kubernetes backend, its data on the hub's claim, no shared
password, no client secret in a ConfigMap). `lavahub config schema --helm` prints the whole document;
tests/unit/test_chart.py checks that helm/lavahub/values.schema.json is what it prints.
"""

from __future__ import annotations

from typing import Any

from .config import schema as platform_schema

# What the chart sets in the platform config itself, or refuses there (templates/_helpers.tpl).
CHART_PLATFORM: dict[str, Any] = {
    "properties": {
        "backend": {"const": "kubernetes", "description": "The chart deploys the kubernetes backend."},
        "data_dir": {"const": "/srv/lavahub", "description": "The chart mounts the hub's claim here."},
        "bind": {"const": "0.0.0.0", "description": "The hub listens on its pod's address."},
        "database_url": {
            "type": "null",
            "description": "Not in the ConfigMap (a URL carries its password): hub.db sets it.",
        },
        "hub_database_url": {
            "type": "null",
            "description": "Not in the ConfigMap (a URL carries its password): hub.db sets it.",
        },
        "auth": {
            "properties": {
                "type": {
                    "enum": ["local", "oauth"],
                    "description": "local (a password per user) or oauth (OpenID Connect). A shared "
                    "password lets anyone who knows it log in as anyone: refused. pam: no accounts in a pod.",
                },
                "admin_password": {"type": "null", "description": "A shared password: refused."},
                "user_password": {"type": "null", "description": "A shared password: refused."},
                "oauth": {
                    "properties": {
                        "client_secret": {
                            "type": "null",
                            "description": "Not in the ConfigMap: give it in oidc.clientSecret (the "
                            "chart's Secret) or oidc.existingSecret.",
                        },
                        "client_secret_file": {
                            "type": "null",
                            "description": "The chart mounts the client secret and sets this itself.",
                        },
                    }
                },
            }
        },
    }
}


def _obj(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": properties,
        **extra,
    }


def _str(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
ABSOLUTE = r"^/[A-Za-z0-9._/-]*$"
IMAGE = {
    "type": "object",
    "description": "The hub image (the proxy runs from it too).",
    "additionalProperties": False,
    "required": ["repository", "tag"],
    "properties": {
        "repository": _str("Its repository, e.g. registry.example.org/lavahub/hub.", minLength=1),
        "tag": _str("An immutable tag.", minLength=1),
        "pullPolicy": {
            "enum": ["Always", "IfNotPresent", "Never"],
            "description": "Kubernetes' imagePullPolicy.",
        },
    },
}
RESOURCES = {"type": "object", "description": "Kubernetes resources: requests and limits."}
GENERATED = "Empty: generated at install and kept by upgrades."
POSTGRESQL_URL = {"pattern": "^postgresql(\\+[a-z0-9]+)?://"}

CHART_KEYS: dict[str, Any] = {
    "imagePullSecrets": {
        "type": "array",
        "description": "Pull secrets of the hub's and the proxy's pods.",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {"name": _str("A Secret in the release's namespace.", minLength=1)},
        },
    },
    "hub": _obj(
        "The hub's pod: JupyterHub with lavahub's spawner and its hub-managed services.",
        {
            "image": IMAGE,
            "resources": RESOURCES,
            "data": _obj(
                "The hub's ReadWriteOnce claim: SQLite databases, generated files, jobs' logs.",
                {
                    "size": _str("Its size, a Kubernetes quantity.", pattern=QUANTITY),
                    "storageClassName": _str("Its StorageClass; empty: the cluster's default."),
                },
            ),
            "db": _obj(
                "The databases: sqlite (on the hub's claim) or postgresql (two URLs, kept in the Secret).",
                {
                    "type": {"enum": ["sqlite", "postgresql"], "description": "sqlite or postgresql."},
                    "url": _str("postgresql: JupyterHub's SQLAlchemy URL."),
                    "lavahubUrl": _str("postgresql: lavahub's SQLAlchemy URL (templates, passwords)."),
                },
                allOf=[
                    {
                        "if": {"properties": {"type": {"const": "postgresql"}}},
                        "then": {"properties": {"url": POSTGRESQL_URL, "lavahubUrl": POSTGRESQL_URL}},
                    }
                ],
            ),
            "cookieSecret": _str(
                "JupyterHub's cookie secret, 64 hex digits. " + GENERATED,
                pattern="^([0-9a-f]{64})?$",
            ),
            "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
            "tolerations": {"type": "array", "items": {"type": "object"}},
        },
    ),
    "proxy": _obj(
        "configurable-http-proxy, in its own pod.",
        {
            "resources": RESOURCES,
            "service": _obj(
                "The Service users reach.",
                {
                    "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"], "description": "Its type."},
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Its port."},
                },
            ),
            "secretToken": _str("The hub's token for the proxy's API. " + GENERATED),
        },
    ),
    "ingress": _obj(
        "An Ingress to the proxy.",
        {
            "enabled": {"type": "boolean", "description": "Make the Ingress."},
            "className": _str("Its ingressClassName."),
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "hosts": {
                "type": "array",
                "items": _str("A host name.", minLength=1),
                "description": "Its hosts.",
            },
            "tls": {"type": "array", "items": {"type": "object"}, "description": "Its tls entries."},
        },
    ),
    "oidc": _obj(
        "The OpenID Connect client secret (platform.auth.type oauth).",
        {
            "clientSecret": _str("The secret; kept in the chart's Secret."),
            "existingSecret": _str("Or a Secret of yours that holds it."),
            "existingSecretKey": _str("Its key in existingSecret.", minLength=1),
        },
    ),
    "storage": _obj(
        "The personal, project and global CephFS claims.",
        {
            "mode": {
                "enum": ["dynamic", "static"],
                "description": "dynamic (a StorageClass) or static (PersistentVolumes).",
            },
            "storageClassName": _str("dynamic: ceph-csi's CephFS StorageClass.", minLength=1),
            "size": _obj(
                "The claims' sizes.",
                {
                    kind: _str(f"The {kind} claim's size.", pattern=QUANTITY)
                    for kind in ("personal", "project", "global")
                },
            ),
            "existingClaims": {"type": "boolean", "description": "The claims exist already: make none."},
            "static": _obj(
                "static: ceph-csi static volumes on existing CephFS paths.",
                {
                    "driver": _str("The CSI driver.", minLength=1),
                    "clusterID": _str("The Ceph cluster's id."),
                    "fsName": _str("The CephFS file system."),
                    "secretName": _str("The Secret with the CephFS user's userID and userKey."),
                    "secretNamespace": _str("Its namespace; empty: the release's."),
                    "rootPaths": _obj(
                        "The CephFS path of each claim.",
                        {
                            kind: _str(f"The {kind} claim's path.", pattern=ABSOLUTE)
                            for kind in ("personal", "project", "global")
                        },
                    ),
                },
            ),
        },
    ),
    "networkPolicy": _obj(
        "NetworkPolicies for the hub, the proxy, workspaces and jobs.",
        {
            "enabled": {"type": "boolean", "description": "Make them."},
            "proxyIngressFrom": {
                "type": "array",
                "items": {"type": "object"},
                "description": "Peers that reach the proxy; empty: any.",
            },
            "workspaceEgress": {
                "type": "array",
                "items": {"type": "object"},
                "description": "Extra egress rules for workspaces and jobs.",
            },
        },
    ),
}


def values_schema() -> dict[str, Any]:
    """values.schema.json: the chart's keys, and the platform config's schema under `platform`."""
    platform = platform_schema()
    defs = platform.pop("$defs", {})
    defs["PlatformConfig"] = platform
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "lavahub Helm chart values",
        "type": "object",
        "additionalProperties": False,
        "required": ["platform"],
        "properties": {
            "platform": {
                "description": "The platform config (lavahub.yaml), as the chart runs it.",
                "allOf": [{"$ref": "#/$defs/PlatformConfig"}, CHART_PLATFORM],
            },
            **CHART_KEYS,
        },
        "$defs": defs,
    }
