"""`storage`: where the personal, project and global volumes live, per backend."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from .fields import OptionalPath, Section, Slug, Whole, matching, pattern_schema

ABSOLUTE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
MOUNT_PATH_RULE = "an absolute path of letters, digits and . _ - /"
MountPath = Annotated[str, pattern_schema(ABSOLUTE_PATH), matching(ABSOLUTE_PATH, MOUNT_PATH_RULE)]


class LocalStorage(Section):
    """The local backend: directories on this machine."""

    root: OptionalPath = Field(
        None,
        description="The directory holding users/, projects/ and global/. Relative paths are relative "
        "to the config file. Default: data_dir.",
    )


class KubernetesStorage(Section):
    """One RWX (CephFS) claim per volume kind; one claim may serve several kinds."""

    personal_claim: Slug = Field("lavahub-home", description="PVC of the personal volumes (users/<user>).")
    project_claim: Slug = Field(
        "lavahub-projects", description="PVC of the project volumes (projects/<project>)."
    )
    global_claim: Slug = Field("lavahub-global", description="PVC of the global volume (global/).")
    home_mount: MountPath = Field(
        "/home/jovyan", description="Where the personal volume is mounted in a workspace: its home."
    )
    uid: Whole = Field(1000, description="The user id the notebook runs as.")
    gid: Whole = Field(100, description="The group id the notebook runs as, and the pod's fsGroup.")


class StorageConfig(Section):
    """Storage per backend; only the running backend's section is used."""

    local: LocalStorage = Field(default_factory=LocalStorage, description="The local backend's volumes.")
    kubernetes: KubernetesStorage = Field(
        default_factory=KubernetesStorage, description="The kubernetes backend's volumes (CephFS claims)."
    )
