"""The whole monitoring loop on loopback ports: one implementation for `make demo` and tests/e2e.

    with Stack(StackSettings(run_dir=...)) as stack:
        stack.relay_url       # send inference here (the simulated KServe payload logger forwards it)
        stack.drift_url       # drift detector API
        stack.prometheus_url  # Prometheus with the chart's rules

Processes (each in its own process group, log under run_dir/logs/):
  predictor       python -m monitored_predictor (KServe ModelServer) serving build/demo/model
  drift-detector  python -m drift_detector with build/demo/reference.parquet
  prometheus      Debian's /usr/bin/prometheus scraping both, rules rendered from the chart by helm
  retrainer       python -m retrain_controller watch (dry run unless a kubeconfig is given)
and in this process: the relay (demo/relay.py) that stands in for KServe's payload logger.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from demo import chart
from demo.processes import ManagedProcess, ProcessFailed, free_port, http_ok
from demo.relay import PayloadLoggerRelay

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "demo"
PYTHON = sys.executable


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        raise ProcessFailed(
            f"{name} not found: install Debian's package (`sudo apt-get install prometheus`, which also "
            f"brings promtool) or run `make setup`; any Prometheus 2.x binary on PATH works"
        )
    return found


@dataclass
class StackSettings:
    """Everything that differs between the demo and the end-to-end test."""

    run_dir: Path = BUILD / "run"
    build_dir: Path = BUILD
    release: str = "breast-cancer"  # Helm release; the chart names the InferenceService after it
    namespace: str = "demo"  # release namespace: the `namespace` target label (the apps never set it)
    window_size: int = 200
    min_samples: int = 100
    window_max_age_seconds: float = 0.0
    reports_every_n_windows: int = 1
    scrape_interval_seconds: int = 2
    alert_for: str = "10s"  # every alert's `for`, set through the chart's values
    # Extra chart values (dotted keys) for the demo's release; the chart's defaults already make the
    # payload logger copy X-Request-Id into Ce-Metadata, which the relay then honours.
    chart_values: dict[str, Any] = field(default_factory=dict)
    retrain_interval_seconds: int = 5
    retrain_sustained_for: str = "10s"
    retrain_cooldown: str = "10m"
    retrain_threshold: float = 0.5
    kubeconfig: str | None = None  # a real Kubernetes API: Jobs are created, not just printed
    drift_config: dict[str, Any] = field(default_factory=dict)  # extra drift detector settings


class Stack:
    def __init__(self, settings: StackSettings, on_step: Callable[[str], None] = lambda text: None):
        self.settings = settings
        self.on_step = on_step
        s = settings
        self.logs = s.run_dir / "logs"
        self.data_dir = s.run_dir / "drift-data"
        self.reports_dir = s.run_dir / "reports"
        self.prom_dir = s.run_dir / "prometheus"
        self.retrainer_jobs = s.run_dir / "retrainer-jobs.yaml"
        self.ports = {name: free_port() for name in ("predictor", "predictor_grpc", "drift", "prometheus")}
        self.predictor_url = f"http://127.0.0.1:{self.ports['predictor']}"
        self.drift_url = f"http://127.0.0.1:{self.ports['drift']}"
        self.prometheus_url = f"http://127.0.0.1:{self.ports['prometheus']}"
        self.relay: PayloadLoggerRelay | None = None
        self.procs: dict[str, ManagedProcess] = {}
        self.alerts: list[str] = []
        self.deployment = chart.deployment(s.release, s.namespace, s.chart_values)
        self.model_name = self.deployment.model_name

    # --- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def relay_url(self) -> str:
        assert self.relay is not None, "stack not started"
        return self.relay.url

    def start(self) -> None:
        s, on_step = self.settings, self.on_step
        for path in (s.build_dir / "model", s.build_dir / "reference.parquet"):
            if not path.exists():
                raise ProcessFailed(f"{path} is missing: run `make demo-model` first")
        for tool in ("prometheus", "promtool"):  # before anything starts
            _tool(tool)
        clear_run_dir(s.run_dir)
        for d in (self.logs, self.data_dir, self.reports_dir, self.prom_dir):
            d.mkdir(parents=True)
        on_step("starting the predictor and the drift detector")
        self.procs["predictor"] = self._predictor().start()
        self.procs["drift-detector"] = self._drift_detector().start()
        on_step("rendering the alert rules from the chart with helm")
        rules = self._rules_file()
        on_step(f"starting Prometheus with {len(self.alerts)} alert rules from the chart")
        self.procs["prometheus"] = self._prometheus(rules).start()
        on_step("waiting for the services to be ready")
        self.wait_drift_detector()
        self.procs["predictor"].wait_ready(self._predictor_ready, timeout=120, what="serving the model")
        self.procs["prometheus"].wait_ready(lambda: http_ok(f"{self.prometheus_url}/-/ready"), 60, "ready")
        self.relay = PayloadLoggerRelay(
            predictor_url=self.predictor_url,
            sink_url=f"{self.drift_url}/",
            inference_service=self.model_name,
            namespace=s.namespace,
            metadata_headers=self.deployment.metadata_headers,
        ).start()
        on_step("starting the retrain controller (watch mode)")
        self.procs["retrainer"] = self._retrainer().start()
        self.wait_targets_up()

    def stop(self) -> None:
        if self.relay is not None:
            with contextlib.suppress(Exception):
                self.relay.drain(timeout=10)
            self.relay.stop()
            self.relay = None
        for name in ("retrainer", "prometheus", "predictor", "drift-detector"):
            proc = self.procs.get(name)
            if proc is not None:
                proc.stop()

    # --- predictor --------------------------------------------------------------------------------
    def _predictor(self) -> ManagedProcess:
        s = self.settings
        cmd = [PYTHON, "-m", "monitored_predictor", "--model_name", self.model_name]
        cmd += ["--model_dir", str(s.build_dir / "model"), "--http_port", str(self.ports["predictor"])]
        cmd += ["--http_host", "127.0.0.1"]  # loopback only: the demo never serves the network
        cmd += ["--grpc_port", str(self.ports["predictor_grpc"]), "--enable_grpc", "false", "--workers", "1"]
        return ManagedProcess("predictor", cmd, self.logs / "predictor.log", env=self._env())

    def _predictor_ready(self) -> bool:
        return http_ok(f"{self.predictor_url}/v2/models/{self.model_name}/ready")

    # --- drift detector ---------------------------------------------------------------------------
    def _drift_config(self) -> Path:
        s = self.settings
        config = {
            "window_max_age_seconds": s.window_max_age_seconds,
            "report_every_n_windows": s.reports_every_n_windows,
            "performance_min_samples": 20,
            **s.drift_config,
        }
        path = s.run_dir / "drift-detector.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _drift_detector(self) -> ManagedProcess:
        s = self.settings
        cmd = [PYTHON, "-m", "drift_detector", "--reference", str(s.build_dir / "reference.parquet")]
        cmd += ["--model-name", self.model_name, "--http-port", str(self.ports["drift"])]
        cmd += ["--data-dir", str(self.data_dir), "--reports-dir", str(self.reports_dir)]
        cmd += ["--window-size", str(s.window_size), "--min-samples", str(s.min_samples)]
        cmd += ["--config", str(self._drift_config())]
        env = self._env()
        env["DRIFT_DETECTOR_HTTP_HOST"] = "127.0.0.1"
        return ManagedProcess("drift-detector", cmd, self.logs / "drift-detector.log", env=env)

    def wait_drift_detector(self, timeout: float = 120) -> None:
        self.procs["drift-detector"].wait_ready(lambda: http_ok(f"{self.drift_url}/readyz"), timeout, "ready")

    def restart_drift_detector(self, signal_number: int) -> None:
        """Kill the drift detector with `signal_number` (e.g. SIGKILL) and start it again on the same port."""
        old = self.procs["drift-detector"]
        old.kill(signal_number)
        old.stop()
        self.procs["drift-detector"] = ManagedProcess(old.name, old.cmd, old.log_path, old.env).start()
        self.wait_drift_detector()

    # --- prometheus -------------------------------------------------------------------------------
    def rule_values(self) -> dict[str, Any]:
        """Chart values for the rules: scoped to the demo's model and namespace, every `for` shortened."""
        s = self.settings
        values = dict(s.chart_values)
        base = chart.render_rule_groups(values, release=s.release, namespace=s.namespace)
        for alert in chart.alert_names(base):
            values[f"prometheusRule.rules.{alert}.for"] = s.alert_for
        return values

    def _rules_file(self) -> Path:
        s = self.settings
        groups = chart.render_rule_groups(self.rule_values(), release=s.release, namespace=s.namespace)
        self.alerts = chart.alert_names(groups)
        return chart.write_rules_file(groups, self.prom_dir / "rules.yml", promtool=_tool("promtool"))

    def scrape_jobs(self) -> dict[str, dict[str, str]]:
        """Target labels like the chart's PodMonitor and ServiceMonitor give them in a cluster."""
        s, d = self.settings, self.deployment
        return {
            "predictor": {
                "job": d.predictor_job,
                "namespace": s.namespace,
                "pod": f"{d.model_name}-predictor-local",
                "container": "kserve-container",
            },
            "drift-detector": {
                "job": d.drift_job,
                "namespace": s.namespace,
                "service": d.drift_service,
                "endpoint": "http",
                "pod": f"{d.drift_service}-local",
                "container": "drift-detector",
            },
        }

    def _prometheus_config(self, rules: Path) -> Path:
        s = self.settings
        interval = f"{s.scrape_interval_seconds}s"
        targets = {"predictor": self.ports["predictor"], "drift-detector": self.ports["drift"]}
        scrape = []
        for name, labels in self.scrape_jobs().items():
            target_labels = {k: v for k, v in labels.items() if k != "job"}
            scrape.append(
                {
                    "job_name": labels["job"],
                    "scrape_interval": interval,
                    "metrics_path": "/metrics",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{targets[name]}"], "labels": target_labels},
                    ],
                }
            )
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(rules)],
            "scrape_configs": scrape,
        }
        path = self.prom_dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _prometheus(self, rules: Path) -> ManagedProcess:
        cmd = [_tool("prometheus"), f"--config.file={self._prometheus_config(rules)}"]
        cmd += [f"--storage.tsdb.path={self.prom_dir / 'data'}", "--storage.tsdb.retention.time=1d"]
        cmd += [f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}", "--log.level=warn"]
        return ManagedProcess("prometheus", cmd, self.logs / "prometheus.log")

    def wait_targets_up(self, timeout: float = 60) -> None:
        """Both scrape targets report up == 1 (so the first windows are not missed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = self.query("up")
            if len(up) == len(self.scrape_jobs()) and all(float(r["value"][1]) == 1 for r in up):
                return
            time.sleep(0.5)
        raise ProcessFailed(f"Prometheus targets not up after {timeout:.0f}s: {self.query('up')}")

    # --- retrain controller -----------------------------------------------------------------------
    def _retrainer_config(self) -> Path:
        s = self.settings
        config = {
            "prometheus": {"url": self.prometheus_url, "timeout": "10s"},
            "threshold": s.retrain_threshold,
            "sustainedFor": s.retrain_sustained_for,
            "evaluationStep": f"{s.scrape_interval_seconds}s",
            "cooldown": s.retrain_cooldown,
            "trainingNamespace": "training",
            "release": s.release,
            "driftReportUrl": f"{self.drift_url}/reports/",
            "job": {
                "image": "registry.example.com/breast-cancer-train:1.0",
                "args": ["--reference", "s3://models/breast-cancer/reference.parquet"],
                "ttlSecondsAfterFinished": 86400,
            },
        }
        path = s.run_dir / "retrainer.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def retrainer_command(self, mode: str = "watch", kubeconfig: str | None = None) -> list[str]:
        """`python -m retrain_controller watch|check`: against `kubeconfig`'s API, else a dry run."""
        s = self.settings
        cmd = [PYTHON, "-m", "retrain_controller", mode, "--config", str(self._retrainer_config())]
        cmd += ["--kubeconfig", kubeconfig] if kubeconfig else ["--dry-run"]
        if mode == "watch":
            cmd += ["--interval", str(s.retrain_interval_seconds)]
        return cmd

    def retrainer_env(self, kubeconfig: str | None = None) -> dict[str, str]:
        env = self._env()
        # A dry run must never reach the user's real cluster through ~/.kube/config.
        env["KUBECONFIG"] = kubeconfig or str(self.settings.run_dir / "no-kubeconfig")
        return env

    def _retrainer(self) -> ManagedProcess:
        kubeconfig = self.settings.kubeconfig
        return ManagedProcess(
            "retrainer",
            self.retrainer_command("watch", kubeconfig),
            self.logs / "retrainer.log",
            env=self.retrainer_env(kubeconfig),
            # A dry run prints manifests on stdout and its decision log on stderr; a real run logs on stdout.
            stdout_path=None if kubeconfig else self.retrainer_jobs,
        )

    def retrainer_events(self) -> list[dict]:
        """The retrain controller's JSON log lines so far (decisions, summaries, errors)."""
        events = []
        with contextlib.suppress(OSError):
            for line in (self.logs / "retrainer.log").read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if isinstance(doc, dict) and "event" in doc:
                        events.append(doc)
        return events

    # --- APIs -------------------------------------------------------------------------------------
    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """Instant query against this Prometheus; the `result` list."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        doc = get_json(f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}")
        if doc.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {doc}")
        return doc["data"]["result"]

    def alerts_by_state(self) -> dict[str, set[str]]:
        """Alert names Prometheus reports as firing and as pending (GET /api/v1/alerts)."""
        doc = get_json(f"{self.prometheus_url}/api/v1/alerts")
        states: dict[str, set[str]] = {"firing": set(), "pending": set()}
        for alert in doc["data"]["alerts"]:
            states.setdefault(alert["state"], set()).add(alert["labels"]["alertname"])
        return states

    def drift(self) -> dict:
        return get_json(f"{self.drift_url}/api/v1/drift")

    def drift_history(self, limit: int = 100) -> list[dict]:
        return get_json(f"{self.drift_url}/api/v1/drift/history?limit={limit}")["results"]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("KUBECONFIG", None)
        return env


RUN_DIR_MARKER = ".kserve-model-monitoring-demo"


def clear_run_dir(run_dir: Path) -> None:
    """Empty the previous run's directory; refuse a directory the demo did not create."""
    if run_dir.exists() and any(run_dir.iterdir()):
        ours = (run_dir / RUN_DIR_MARKER).exists() or run_dir.resolve().is_relative_to(REPO / "build")
        if not ours:
            raise ProcessFailed(
                f"refusing to clear {run_dir}: not a demo run directory (no {RUN_DIR_MARKER})"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_DIR_MARKER).write_text("written by demo/stack.py; the next run empties this directory\n")


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())
