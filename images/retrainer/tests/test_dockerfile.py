"""Static checks of the image recipe (no Docker engine here): pinned base, pinned installs, non-root,
the entry point, and a context filter that lets through exactly what the build copies."""

import fnmatch
import re
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parents[1]
REPO = IMAGE_DIR.parents[1]
DOCKERFILE = (IMAGE_DIR / "Dockerfile").read_text()


def instructions(name):
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(name + " ")]


def test_base_image_is_a_pinned_slim_python_3_11():
    base = re.search(r"^ARG PYTHON_BASE=(\S+)$", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert instructions("FROM") == ["${PYTHON_BASE} AS build", "${PYTHON_BASE}"]


def test_installs_with_the_shared_constraints():
    assert "-c ci/constraints.txt ./images/retrainer" in DOCKERFILE
    assert re.search(r"pip install setuptools==\d+\.\d+\.\d+", DOCKERFILE)


def test_runs_as_uid_1000_with_the_module_entry_point():
    assert instructions("USER") == ["1000:1000"]
    assert instructions("ENTRYPOINT") == ['["python", "-m", "retrain_controller"]']
    assert "--uid 1000" in DOCKERFILE


def test_dockerignore_lets_through_every_copied_path_and_nothing_else():
    patterns = [
        line.strip()
        for line in (IMAGE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern.lstrip("!")
            if fnmatch.fnmatch(path, body) or path.startswith(body.rstrip("/") + "/"):
                keep = negate
        return keep

    sources = [part for copy in instructions("COPY") if "--from" not in copy for part in copy.split()[:-1]]
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
        for file in files:
            assert included(str(file.relative_to(REPO))), file
    assert not included(".venv/bin/python")
    assert not included("images/predictor/pyproject.toml")
