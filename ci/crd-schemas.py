#!/usr/bin/env python3
"""Builds strict JSON schemas for kubeconform from the upstream API definitions in the Go module cache.

- Built-in kinds (Deployment, Service, CronJob, Role, ...): Kubernetes' own OpenAPI spec,
  k8s.io/kubernetes/api/openapi-spec/swagger.json (the release ci/kube-apiserver/go.mod pins).
- CRD kinds: the CustomResourceDefinitions KServe (InferenceService, ServingRuntime, ...),
  prometheus-operator (ServiceMonitor, PodMonitor, PrometheusRule, ...) and the Spark operator
  (SparkApplication, ScheduledSparkApplication) ship in their Go modules.

Strict means unknown fields fail: every object schema that lists `properties` and says nothing about
`additionalProperties` gets `additionalProperties: false`, except where the CRD's structural schema
keeps unknown fields (`x-kubernetes-preserve-unknown-fields: true`). A CRD's `metadata` is checked
against the real ObjectMeta. Output, one file per kind and version, for
`kubeconform -strict -schema-location 'DIR/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'`:
    DIR/<group>/<kind lowercase>_<version>.json   (core kinds: DIR/v1/<kind>_v1.json)

usage: ci/crd-schemas.py [--out build/crd-schemas] [--gomodcache DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# The same Kubernetes release the API-server tier builds (ci/kube-apiserver/go.mod), else this one.
KUBERNETES_FALLBACK = "v1.37.2"
CRD_SOURCES = {
    "github.com/kserve/kserve@v0.20.0": "config/crd/full/serving.kserve.io_*.yaml",
    "github.com/prometheus-operator/prometheus-operator@v0.85.0": (
        "example/prometheus-operator-crd/monitoring.coreos.com_*.yaml"
    ),
    # The Spark operator's SparkApplication and ScheduledSparkApplication (the chart's batch drift job).
    "github.com/kubeflow/spark-operator/v2@v2.3.0": "config/crd/bases/sparkoperator.k8s.io_*.yaml",
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# Types the OpenAPI spec declares as plain strings but that YAML writers give as numbers too.
SPECIAL_TYPES = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"anyOf": [{"type": "number"}, {"type": "string"}]},
}


class CRDLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """Safe loader that reads the YAML 1.1 `=` value tag (an enum entry in some CRDs) as a string."""


CRDLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def gomodcache(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("GOMODCACHE"):
        return Path(os.environ["GOMODCACHE"])
    try:
        out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return Path.home() / "go" / "pkg" / "mod"


def strictify(node, preserve_unknown: bool = False):
    """Copy of a schema with `additionalProperties: false` on every closed object; OpenAPI quirks mapped."""
    if isinstance(node, list):
        return [strictify(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {name: strictify(sub) for name, sub in value.items()}
        else:
            out[key] = strictify(value)
    keeps_unknown = preserve_unknown or node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not keeps_unknown:
        out["additionalProperties"] = False
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-int-or-string") is True and "anyOf" not in node:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def referenced(definitions: dict, root: dict) -> set[str]:
    """Names of every definition reachable from root through $ref."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/"):
                name = ref.removeprefix("#/definitions/")
                if name not in seen:
                    seen.add(name)
                    stack.append(definitions[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def kubernetes_module() -> str:
    go_mod = REPO / "ci" / "kube-apiserver" / "go.mod"
    if go_mod.is_file():
        for line in go_mod.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and parts[1].startswith("v"):
                return f"k8s.io/kubernetes@{parts[1]}"
    return f"k8s.io/kubernetes@{KUBERNETES_FALLBACK}"


def ensure_module(modcache: Path, module: str) -> Path:
    """The module's source folder, downloaded through the Go module proxy when missing."""
    folder = modcache / module
    if not folder.is_dir():
        print(f"crd-schemas: go mod download {module}", file=sys.stderr)
        env = {**os.environ, "GOFLAGS": "-mod=mod"}
        done = subprocess.run(
            ["go", "mod", "download", module], env=env, cwd="/", capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"crd-schemas: cannot download {module}: {done.stderr.strip()}")
    return folder


def load_swagger(modcache: Path) -> dict:
    path = ensure_module(modcache, kubernetes_module()) / "api" / "openapi-spec" / "swagger.json"
    if not path.is_file():
        sys.exit(f"crd-schemas: {path} not found")
    definitions = json.loads(path.read_text())["definitions"]
    for name, replacement in SPECIAL_TYPES.items():
        definitions[name] = {**replacement, "description": definitions[name].get("description", "")}
    return definitions


def standalone(definitions: dict, root: dict) -> dict:
    """root plus the strict definitions it references, as one draft-04 compatible document."""
    names = referenced(definitions, root)
    schema = strictify(root)
    if names:
        schema["definitions"] = {name: strictify(definitions[name]) for name in sorted(names)}
    return schema


def write(out: Path, group: str, kind: str, version: str, schema: dict) -> Path:
    # kubeconform's {{ .Group }} of a core kind (apiVersion "v1") is "v1".
    folder = out / (group or version)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind.lower()}_{version}.json"
    # Atomic, so a concurrent run never reads half a schema.
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def builtin_schemas(definitions: dict, out: Path) -> int:
    count = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            if name.startswith("io.k8s.apimachinery") or not definition.get("properties"):
                continue
            schema = standalone(definitions, definition)
            write(out, gvk["group"], gvk["kind"], gvk["version"], schema)
            count += 1
    return count


def crd_schemas(definitions: dict, modcache: Path, out: Path) -> int:
    count = 0
    for module, pattern in CRD_SOURCES.items():
        files = sorted(ensure_module(modcache, module).glob(pattern))
        if not files:
            sys.exit(f"crd-schemas: no CRDs at {modcache / module / pattern} (go mod download {module})")
        for path in files:
            for crd in yaml.load_all(path.read_text(), Loader=CRDLoader):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for version in spec["versions"]:
                    body = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                    body.setdefault("properties", {})["metadata"] = {"$ref": f"#/definitions/{OBJECT_META}"}
                    schema = standalone(definitions, body)
                    write(out, spec["group"], spec["names"]["kind"], version["name"], schema)
                    count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "build" / "crd-schemas"), help="output folder")
    parser.add_argument("--gomodcache", default=None, help="Go module cache (default: go env GOMODCACHE)")
    args = parser.parse_args()
    modcache = gomodcache(args.gomodcache)
    out = Path(args.out)
    definitions = load_swagger(modcache)
    builtins = builtin_schemas(definitions, out)
    crds = crd_schemas(definitions, modcache, out)
    print(f"crd-schemas: {builtins} built-in and {crds} CRD kind versions written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
