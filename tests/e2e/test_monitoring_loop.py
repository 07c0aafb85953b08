"""The monitoring loop end to end: real predictor behind KServe's own agent (the payload logger), drift
detector, Prometheus (with the chart's rules, rendered by helm) and retrain controller.

The tests run in file order on one stack: clean traffic, feedback, drifted traffic, the retrain
decision, the dashboards, a drift detector crash. Each reads its verdict back from the services' APIs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from dashboard_panels import PANELS_WITHOUT_DATA, dashboard_queries, substitute
from kubernetes import client
from retrain_controller.config import parse_duration
from retrain_controller.decision import cooldown_bucket
from sinks import AckRecorder
from timing import ALERT_FOR, RATE, SCRAPE_SECONDS, WINDOW

from demo.agent import REQUEST_TYPE, expected_events
from demo.scenario import (
    DRIFT_ALERT,
    model_performance,
    retrainer_decisions,
    timestamp,
    wait_until,
)

DRIFT_ALERTS = (DRIFT_ALERT, "KServeModelDriftShareCritical")
ALERT_FOR_SECONDS = float(ALERT_FOR.rstrip("s"))
CLEAN_WINDOWS = 8
DRIFT_WINDOWS = 8
TRAINING_NAMESPACE = "training"  # the stack's retrainer config


def send_phase(sender, frame, rng, watcher, label_share=0.5, send_labels=True):
    """Send `frame`, wait until all its windows were checked; returns (result, checked windows)."""
    first = watcher.last_seq()
    result = sender.send(frame, RATE, label_share, rng, send_labels=send_labels)
    assert result.failed_requests == 0, result.errors
    sender_windows = len(frame) // WINDOW
    wait_until(
        lambda: watcher.poll() is not None and watcher.last_seq() - first >= sender_windows,
        timeout=60,
        what=f"{sender_windows} drift checks",
    )
    return result, watcher.since(first)


def alerts_fired_since(stack, since: float, names: tuple[str, ...] | None = None) -> set[str]:
    """Alert names that were firing at any evaluation since `since` (ALERTS series, not only now)."""
    matcher = f', alertname=~"{"|".join(names)}"' if names else ""
    window = int(time.time() - since) + 2 * SCRAPE_SECONDS
    rows = stack.query(f'max_over_time(ALERTS{{alertstate="firing"{matcher}}}[{window}s])')
    return {r["metric"]["alertname"] for r in rows}


def test_prometheus_scrapes_both_apps_with_the_chart_monitors_labels(stack):
    up = {r["metric"]["job"]: r["metric"] for r in stack.query("up == 1")}
    assert set(up) == {stack.deployment.predictor_job, stack.deployment.drift_job}
    assert all(labels["namespace"] == stack.settings.namespace for labels in up.values())
    # The rules were rendered from the chart for this model and namespace, every alert present.
    assert DRIFT_ALERT in stack.alerts and "KServeModelDriftDetectorDown" in stack.alerts


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port` (/proc/net/tcp, state 0A), as dotted quads."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def test_the_apps_listen_on_loopback_only(stack):
    """The demo binds both apps to 127.0.0.1 (the drift detector through DRIFT_DETECTOR_HTTP_HOST)."""
    assert listening_addresses(stack.ports["drift"]) == {"127.0.0.1"}
    assert listening_addresses(stack.ports["predictor"]) == {"127.0.0.1"}


def test_clean_traffic_fires_no_drift_alert(stack, watcher, sender, data, rng, journal):
    started = time.time()
    journal["clean_started"] = started
    result, windows = send_phase(
        sender, data.clean(CLEAN_WINDOWS * WINDOW, rng), rng, watcher, send_labels=False
    )
    journal["clean_labels"] = result.labelled
    assert len(windows) >= CLEAN_WINDOWS
    # Give a false positive every chance: wait out `for` after the last clean window, plus evaluations.
    time.sleep(ALERT_FOR_SECONDS + 3 * SCRAPE_SECONDS)
    journal["clean_ended"] = time.time()
    assert alerts_fired_since(stack, started, DRIFT_ALERTS) == set()
    assert sum(w["dataset_drift"] for w in windows) <= 1, [w["drift_share"] for w in windows]
    creates = [d for d in retrainer_decisions(stack, started) if d["action"] == "create"]
    assert creates == [], creates
    # The retrain controller did evaluate the clean drift score and held back.
    assert any(d["reason"] == "below_threshold" for d in retrainer_decisions(stack, started))


def test_clean_traffic_fires_no_alert_of_any_kind(stack, journal):
    """The stricter false-positive check: every rule of the chart stays quiet on clean traffic."""
    assert "clean_started" in journal, "runs after test_clean_traffic_fires_no_drift_alert"
    fired = alerts_fired_since(stack, journal["clean_started"])
    assert fired == set(), f"alerts fired on clean held-out traffic: {sorted(fired)}"


def test_model_quality_appears_after_feedback(stack, sender, journal):
    labelled = journal.get("clean_labels")
    assert labelled, "runs after test_clean_traffic_fires_no_drift_alert"
    assert model_performance(stack) == {}, "model quality before any label arrived"
    sent, matched = sender.send_labels(labelled)
    assert matched == sent == len(labelled)
    quality = wait_until(
        lambda: model_performance(stack).get("accuracy") is not None and model_performance(stack),
        timeout=30,
        what="model_performance in Prometheus",
    )
    # The demo model scores 0.98 on held-out rows; the clean traffic is drawn from them.
    assert quality["accuracy"] >= 0.9, quality
    assert {"accuracy", "f1", "roc_auc"} <= set(quality)


def test_drifted_traffic_fires_the_dataset_drift_alert(stack, watcher, sender, data, rng, journal):
    journal["drift_started"] = time.time()
    _, windows = send_phase(sender, data.drifted(DRIFT_WINDOWS * WINDOW, rng), rng, watcher)
    assert all(w["dataset_drift"] for w in windows[1:]), [w["drift_share"] for w in windows]
    wait_until(
        lambda: DRIFT_ALERT in stack.alerts_by_state()["firing"],
        timeout=ALERT_FOR_SECONDS + 30,
        what=f"{DRIFT_ALERT} firing in Prometheus /api/v1/alerts",
    )


def test_every_event_the_agent_logged_was_accepted(stack, sender):
    """v1 and v2 calls through KServe's agent, requests and responses: the detector received, decoded
    and joined every event. The agent counts nothing it could report, so the calls are counted by the
    client (two events each: all were answered 200) and the events by the detector's /metrics."""
    calls = sender.calls
    assert calls.answered > 0 and calls.answered_200 == calls.answered
    expected = expected_events(stack.deployment.logger_mode, calls.answered, calls.answered_200)
    assert expected == 2 * calls.answered
    assert stack.wait_agent_delivered(expected) == expected
    counts = stack.detector_events()
    logged = {
        ("request", "accepted"): calls.answered,
        ("response", "accepted"): calls.answered_200,
        ("join", "matched"): calls.answered,
    }
    assert {k: counts.get(k) for k in logged} == logged, counts
    refused = {
        k: v for k, v in counts.items() if k[0] in ("request", "response", "cloudevent") and k not in logged
    }
    assert all(v == 0 for v in refused.values()), refused


def test_retrain_controller_decides_one_job_for_the_drift(stack, journal):
    started = journal.get("drift_started")
    assert started, "runs after test_drifted_traffic_fires_the_dataset_drift_alert"
    creates = wait_until(
        lambda: [d for d in retrainer_decisions(stack, started) if d["action"] == "create"],
        timeout=60,
        what="a create decision of the retrain controller (watch mode, dry run)",
    )
    assert {d["reason"] for d in creates} == {"drift_sustained"}
    # A dry run sees no Jobs, so every pass repeats the decision, always for the same Job within one
    # cooldown bucket (the name's time part).
    names = {(cooldown_bucket_of(stack, d), d["job"]) for d in creates}
    assert len({bucket for bucket, _ in names}) == len(names), names
    journal["job_bucket"], journal["job_name"] = max(names)
    manifests = [m for m in yaml.safe_load_all(stack.retrainer_jobs.read_text()) if m]
    assert {m["metadata"]["name"] for m in manifests} == {journal["job_name"]}
    labels = manifests[0]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "kserve-model-monitoring-retrainer"
    assert labels["kserve-model-monitoring/model"] == stack.model_name
    assert manifests[0]["metadata"]["namespace"] == TRAINING_NAMESPACE


def run_check(stack, kubeconfig: str) -> list[dict]:
    """One `retrain_controller check` pass against a real API; its decision events."""
    out = subprocess.run(
        stack.retrainer_command("check", kubeconfig),
        env=stack.retrainer_env(kubeconfig),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == "decision"]


def test_second_pass_skips_the_job_on_a_real_kubernetes_api(stack, kube, journal):
    """Dry runs cannot remember a Job: a real kube-apiserver holds the one the first pass creates."""
    assert journal.get("job_name"), "runs after test_retrain_controller_decides_one_job_for_the_drift"
    admin = kube.admin_client()
    core, batch = client.CoreV1Api(admin), client.BatchV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=TRAINING_NAMESPACE)))
    kubeconfig = str(kube.admin_kubeconfig)

    first = run_check(stack, kubeconfig)
    assert [(d["action"], d.get("outcome")) for d in first] == [("create", "created")], first
    second = run_check(stack, kubeconfig)
    assert len(second) == 1 and second[0]["action"] == "skip", second
    # No kubelet runs here, so the Job never finishes: the active-Job guard holds it back.
    assert second[0]["reason"] in ("job_active", "cooldown"), second

    jobs = batch.list_namespaced_job(TRAINING_NAMESPACE).items
    assert [j.metadata.name for j in jobs] == [first[0]["job"]]
    if cooldown_bucket_of(stack, first[0]) == journal["job_bucket"]:
        assert first[0]["job"] == journal["job_name"], "the dry run named the same deterministic Job"
    else:  # the passes straddle a cooldown boundary: a new bucket is a new name
        assert first[0]["job"] != journal["job_name"]


def cooldown_bucket_of(stack, decision: dict) -> int:
    """The cooldown bucket a decision was taken in: the retrain controller's own rule."""
    cooldown = parse_duration(stack.settings.retrain_cooldown, "cooldown")
    return cooldown_bucket(timestamp(decision["ts"]), int(cooldown))


def test_every_dashboard_panel_query_returns_data(stack):
    variables = {"namespace": stack.settings.namespace, "model_name": stack.model_name}
    missing, excused = [], set()
    for dashboard, panel, expr in dashboard_queries():
        if (dashboard, panel) in PANELS_WITHOUT_DATA:
            excused.add((dashboard, panel))
            continue
        if not stack.query(substitute(expr, variables)):
            missing.append(f"{dashboard} / {panel}: {expr}")
    assert missing == [], "panels without data:\n" + "\n".join(missing)
    stale = set(PANELS_WITHOUT_DATA) - excused
    assert stale == set(), f"PANELS_WITHOUT_DATA names panels that no longer exist: {stale}"


def drift_detector_rows(stack, watcher) -> int:
    """Rows the drift detector holds: every checked window (history survives restarts) + the open one."""
    watcher.poll()
    checked = sum(w["window"]["rows"] for w in watcher.checked())
    return checked + stack.drift()["open_window"]["rows"]


def settled_rows(stack, watcher) -> int:
    """Rows the detector holds once no request waits for its response any more."""

    def settled():
        status = stack.drift()["open_window"]
        return status["pending_joins"] == 0 and drift_detector_rows(stack, watcher)

    return wait_until(settled, timeout=60, what="pending joins to settle")


def test_drift_detector_restart_loses_no_accepted_row(stack, watcher, sender, data, rng):
    """SIGKILL mid-traffic: every request event the detector acknowledged is a row after the restart.

    Which events the detector acknowledged is known only on the wire (the agent reports no outcome per
    event, the detector's counters die with it): for this test the agent logs through an AckRecorder,
    which forwards each event to the detector unchanged and keeps the detector's answer."""
    stack.wait_agent_delivered()
    rows_before = settled_rows(stack, watcher)
    recorder = AckRecorder(f"{stack.drift_url}/")
    stack.restart_agent(log_url=recorder.url)
    try:
        calls_before = sender.calls.answered
        frame = data.clean(6 * WINDOW, rng)
        done = threading.Event()

        def traffic():
            try:
                sender.send(frame, RATE, 0.0, rng)
            finally:
                done.set()

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        wait_until(
            lambda: recorder.ids(REQUEST_TYPE, True) and stack.drift()["open_window"]["rows"] > 30, 30, "rows"
        )
        stack.restart_drift_detector(signal.SIGKILL)
        thread.join(timeout=120)
        assert done.is_set()
        calls = sender.calls.answered - calls_before
        assert recorder.wait_for(2 * calls) == 2 * calls  # every call answered 200: two events each
    finally:
        stack.restart_agent()
        recorder.close()
    acknowledged = len(recorder.ids(REQUEST_TYPE, True))
    failed = len(recorder.ids(REQUEST_TYPE, False))
    assert failed > 0, "the detector was down while traffic flowed, some events must have failed"

    # Requests without their response join their window after pending_ttl_seconds; closed windows get
    # checked. Then the detector holds every acknowledged request as a row.
    settled_rows(stack, watcher)
    rows = wait_until(
        lambda: (n := drift_detector_rows(stack, watcher)) >= rows_before + acknowledged and n,
        timeout=30,
        what=f"{acknowledged} acknowledged rows in the drift detector's windows",
    )
    # Rows may exceed the acknowledged count only by requests written before the kill but never answered.
    assert rows_before + acknowledged <= rows <= rows_before + acknowledged + failed
    assert stack.query('drift_detector_events_total{type="window", outcome="check_skipped"} > 0') == []


@pytest.fixture(scope="module", autouse=True)
def _report_logs_on_failure(request, stack):
    yield
    if request.session.testsfailed:
        for name, proc in stack.procs.items():
            print(f"\n--- {name} log tail ({proc.log_path}) ---\n{proc.log_tail(15)}")
