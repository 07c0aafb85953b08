"""The real helm CLI against the test cluster, failing on any warning the API server sends back."""

from __future__ import annotations

import subprocess

from chartlib import helm_env
from kube_harness import REPO

HELM = str(REPO / ".tools" / "bin" / "helm")


def helm_result(cluster, *args: str) -> subprocess.CompletedProcess:
    """Runs helm against the test cluster and returns its result, whatever the exit code."""
    cmd = [HELM, "--kubeconfig", str(cluster.admin_kubeconfig), *args]
    return subprocess.run(cmd, env=helm_env(), capture_output=True, text=True, check=False, timeout=300)


def helm(cluster, *args: str) -> subprocess.CompletedProcess:
    """Runs helm against the test cluster; fails with helm's output, and on any server warning."""
    done = helm_result(cluster, *args)
    assert done.returncode == 0, f"{' '.join(args[:2])} failed:\n{done.stderr}"
    # client-go prints the API server's Warning headers (e.g. unknown fields) to stderr.
    warnings = [line for line in done.stderr.splitlines() if "warnings.go" in line or "Warning:" in line]
    assert not warnings, "the API server warned:\n" + "\n".join(warnings)
    return done
