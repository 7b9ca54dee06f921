"""Render the kustomize trees under deploy/kubernetes and pick objects out, for the tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
STANDALONE = K8S / "overlays" / "standalone"
MULTI_TARGET = K8S / "overlays" / "multi-target"
PROBE_SCRAPE = ROOT / "deploy" / "prometheus" / "probe-scrape-config.yml"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "ScrapeConfig"}
# Oldest and newest Kubernetes minor versions the manifests are checked against.
K8S_VERSIONS = ("1.29.0", "1.37.0")

Obj = dict[str, Any]


def render(path: Path) -> list[Obj]:
    """The objects ``kubectl kustomize path`` renders (the test is skipped without kubectl)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: it renders kustomize (kubectl kustomize)")
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The single object of ``kind`` (and ``name``); a test failure if not exactly one."""
    found = [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def container_named(pod_spec: Obj, name: str) -> Obj:
    """The pod's container called ``name``."""
    (found,) = [c for c in pod_spec["containers"] if c["name"] == name]
    typed: Obj = found
    return typed
