"""The whole monitoring loop on loopback ports: one implementation for `make demo` and tests/e2e.

    with Stack(StackSettings(run_dir=...)) as stack:
        stack.agent_url       # send inference here: KServe's agent proxies it and logs it
        stack.drift_url       # drift detector API
        stack.prometheus_url  # Prometheus with the chart's rules

Processes (each in its own process group, log under run_dir/logs/):
  predictor       python -m monitored_predictor (KServe ModelServer) serving build/demo/model
  kserve-agent    KServe's agent (demo/agent.py) in front of the predictor, logging to the drift detector
                  as the rendered InferenceService's `spec.predictor.logger` says
  drift-detector  python -m drift_detector with build/demo/reference.parquet
  prometheus      Debian's /usr/bin/prometheus scraping both, rules rendered from the chart by helm
  retrainer       python -m retrain_controller watch (dry run unless a kubeconfig is given)
The agent binds an abstract unix socket: one stack per network namespace at a time.
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
from prometheus_client.parser import text_string_to_metric_families

from demo import chart
from demo.agent import (
    AgentConfig,
    KServeAgent,
    agent_binary,
    another_agent_message,
    local_log_url,
    socket_holders,
    socket_taken,
    wait_delivered,
)
from demo.processes import ManagedProcess, ProcessFailed, free_port, http_ok

REPO = Path(__file__).resolve().parents[1]
# drift_detector_events_total types of logged events: decoded ones, and those refused before decoding.
LOGGER_EVENT_TYPES = ("request", "response", "cloudevent")
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
    # payload logger copy X-Request-Id into Ce-Metadata, and the agent takes its flags from the render.
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
        ports = ("predictor", "predictor_grpc", "agent", "drift", "prometheus")
        self.ports = {name: free_port() for name in ports}
        self.predictor_url = f"http://127.0.0.1:{self.ports['predictor']}"
        self.agent_url = f"http://127.0.0.1:{self.ports['agent']}"
        self.drift_url = f"http://127.0.0.1:{self.ports['drift']}"
        self.prometheus_url = f"http://127.0.0.1:{self.ports['prometheus']}"
        self.procs: dict[str, ManagedProcess] = {}
        self.alerts: list[str] = []
        self.deployment = chart.deployment(s.release, s.namespace, s.chart_values)
        self.model_name = self.deployment.model_name
        self.pod_name = f"{self.model_name}-predictor-local"  # the pod label of the predictor's target

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

    def prepare(self) -> None:
        """Check everything the stack needs before anything starts; empty the run directory."""
        s = self.settings
        for path in (s.build_dir / "model", s.build_dir / "reference.parquet"):
            if not path.exists():
                raise ProcessFailed(f"{path} is missing: run `make demo-model` first")
        for tool in ("prometheus", "promtool"):
            _tool(tool)
        agent_binary()
        if socket_taken():
            raise ProcessFailed(another_agent_message(socket_holders()))
        clear_run_dir(s.run_dir)
        for d in (self.logs, self.data_dir, self.reports_dir, self.prom_dir):
            d.mkdir(parents=True)

    def start(self) -> None:
        on_step = self.on_step
        self.prepare()
        on_step("starting the predictor and the drift detector")
        self.start_predictor()
        self.procs["drift-detector"] = self._drift_detector().start()
        on_step("rendering the alert rules from the chart with helm")
        rules = self._rules_file()
        on_step(f"starting Prometheus with {len(self.alerts)} alert rules from the chart")
        self.procs["prometheus"] = self._prometheus(rules).start()
        on_step("waiting for the services to be ready")
        self.wait_drift_detector()
        self.wait_predictor()
        self.procs["prometheus"].wait_ready(lambda: http_ok(f"{self.prometheus_url}/-/ready"), 60, "ready")
        on_step("starting KServe's agent in front of the predictor, logging to the drift detector")
        self.start_agent()
        on_step("starting the retrain controller (watch mode)")
        self.procs["retrainer"] = self._retrainer().start()
        self.wait_targets_up()

    def stop(self) -> None:
        self.stop_agent()
        for name in ("retrainer", "prometheus", "predictor", "drift-detector"):
            proc = self.procs.get(name)
            if proc is not None:
                proc.stop()

    # --- KServe's agent ---------------------------------------------------------------------------
    def agent_config(self, log_url: str | None = None) -> AgentConfig:
        """The agent's settings from the rendered logger spec; its sink is the local drift detector
        (same path as the chart's URL) unless `log_url` names another one."""
        d = self.deployment
        return AgentConfig(
            port=self.ports["agent"],
            component_port=self.ports["predictor"],
            log_url=log_url or local_log_url(d.logger_url, self.drift_url),
            log_mode=d.logger_mode,
            inference_service=d.model_name,
            namespace=self.settings.namespace,
            source_uri=self.pod_name,
            metadata_headers=d.metadata_headers,
        )

    def start_agent(self, log_url: str | None = None) -> KServeAgent:
        agent = KServeAgent(self.agent_config(log_url), self.logs / "kserve-agent.log", self._env())
        self.procs["kserve-agent"] = agent
        return agent.start().wait_ready()

    def stop_agent(self, timeout: float = 10.0) -> None:
        """Let the agent deliver what it holds (the detector's count stops moving), then SIGKILL it."""
        agent = self.procs.get("kserve-agent")
        if agent is None:
            return
        detector = self.procs.get("drift-detector")
        if agent.alive() and detector is not None and detector.alive():
            self.wait_agent_delivered(timeout=timeout)
        agent.stop()

    def restart_agent(self, log_url: str | None = None) -> KServeAgent:
        """A new agent on the same port, logging to `log_url` (default: the drift detector)."""
        self.stop_agent()
        return self.start_agent(log_url)

    def wait_agent_delivered(self, expected: int | None = None, timeout: float = 30.0) -> int:
        """Events the drift detector has received once it got `expected` or its count stopped moving."""
        quiet = 1.5 if expected is None else 5.0  # with a target, wait longer before calling events lost
        return wait_delivered(self.events_received, expected, timeout, quiet_seconds=quiet)

    def detector_events(self) -> dict[tuple[str, str], int]:
        """drift_detector_events_total by (type, outcome), straight from the detector's /metrics."""
        with urllib.request.urlopen(f"{self.drift_url}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        counts = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "drift_detector_events_total":
                    counts[(sample.labels["type"], sample.labels["outcome"])] = int(sample.value)
        return counts

    def events_received(self, counts: dict[tuple[str, str], int] | None = None) -> int:
        """CloudEvents the detector has answered so far, whatever the outcome (accepted or not), from
        `counts` (detector_events()) or a fresh read."""
        counts = self.detector_events() if counts is None else counts
        return sum(n for (kind, _), n in counts.items() if kind in LOGGER_EVENT_TYPES)

    # --- predictor --------------------------------------------------------------------------------
    def _predictor(self) -> ManagedProcess:
        s = self.settings
        cmd = [PYTHON, "-m", "monitored_predictor", "--model_name", self.model_name]
        cmd += ["--model_dir", str(s.build_dir / "model"), "--http_port", str(self.ports["predictor"])]
        cmd += ["--http_host", "127.0.0.1"]  # loopback only: the demo never serves the network
        cmd += ["--grpc_port", str(self.ports["predictor_grpc"]), "--enable_grpc", "false", "--workers", "1"]
        return ManagedProcess("predictor", cmd, self.logs / "predictor.log", env=self._env())

    def start_predictor(self) -> ManagedProcess:
        self.procs["predictor"] = self._predictor().start()
        return self.procs["predictor"]

    def wait_predictor(self, timeout: float = 120) -> None:
        self.procs["predictor"].wait_ready(self._predictor_ready, timeout=timeout, what="serving the model")

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
