"""Tier 3: a real kube-apiserver and etcd; the tests play scheduler, kubelet and Volcano.

KubeSpawner loads its client configuration once per process, from the kubeconfig
that kubernetes_asyncio located when it was first imported. The suite's conftest
imports this package before any test module imports kubernetes_asyncio, so it
names the file the spawner tests write the hub identity's kubeconfig to.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SPAWNER_KUBECONFIG = Path(tempfile.gettempdir()) / f"lavahub-tests-{os.getpid()}" / "kubeconfig"
os.environ["KUBECONFIG"] = str(SPAWNER_KUBECONFIG)
