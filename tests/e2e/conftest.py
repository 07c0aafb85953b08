"""End-to-end tier: the demo's own stack (demo/stack.py), shorter windows and `for` durations.

One stack serves the whole module; the tests in test_monitoring_loop.py run in file order and build on
each other (clean traffic, then drifted traffic, then a restart), like the demo's phases.

KServe's agent binds an abstract unix socket, so only one runs per network namespace: every fixture
that starts one is module-scoped (torn down before the next module starts its own, or the demo CLI
test runs the whole demo). Run the tier in a network namespace of its own when other agents run on
the machine: `unshare --net bash -c 'ip link set lo up && make test-e2e'` (as root).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from timing import ALERT_FOR, RETRAIN_SUSTAINED_FOR, SCRAPE_SECONDS, WINDOW  # noqa: E402

from demo.scenario import WindowWatcher  # noqa: E402
from demo.stack import BUILD, Stack, StackSettings  # noqa: E402
from demo.traffic import DemoData, TrafficSender  # noqa: E402


@pytest.fixture(scope="session")
def settings(tmp_path_factory) -> StackSettings:
    if not (BUILD / "model" / "model.joblib").exists():
        pytest.fail(f"{BUILD}/model is missing: run `make demo-model` (make test-e2e does)")
    return StackSettings(
        run_dir=tmp_path_factory.mktemp("e2e") / "run",
        window_size=WINDOW,
        min_samples=50,
        scrape_interval_seconds=SCRAPE_SECONDS,
        alert_for=ALERT_FOR,
        retrain_interval_seconds=2,
        retrain_sustained_for=RETRAIN_SUSTAINED_FOR,
        drift_config={
            "pending_ttl_seconds": 5,  # a request whose response never came joins its window soon
            "report_every_n_windows": 0,  # reports only for drifted windows
            "performance_window": 200,
            "performance_min_samples": 20,
        },
    )


@pytest.fixture(scope="module")
def stack(settings):
    with Stack(settings) as running:
        yield running


@pytest.fixture(scope="module")
def watcher(stack):
    watching = WindowWatcher(stack).start()
    yield watching
    watching.stop()


@pytest.fixture(scope="session")
def data() -> DemoData:
    return DemoData.load(BUILD)


@pytest.fixture(scope="module")
def sender(stack, data) -> TrafficSender:
    return TrafficSender(stack.agent_url, stack.drift_url, stack.model_name, data.features, concurrency=4)


@pytest.fixture(scope="session")
def rng() -> np.random.Generator:
    return np.random.default_rng(20261126)


@pytest.fixture(scope="session")
def journal() -> dict:
    """What earlier tests observed, for later ones (phase times, labels held back)."""
    return {}


def load_by_path(name: str, path: Path):
    """A helper module of another test tier (test directories are not packages)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kube(tmp_path_factory):
    """A real kube-apiserver + etcd (tests/k8s/kube_harness.py) for the retrain controller's guards."""
    harness = load_by_path("kube_harness", REPO / "tests" / "k8s" / "kube_harness.py")
    cluster, etcd = harness.start_cluster(tmp_path_factory.mktemp("kube"))
    yield cluster
    cluster.apiserver.stop()
    etcd.stop()
