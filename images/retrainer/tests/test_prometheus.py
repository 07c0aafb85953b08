"""The Prometheus side against a real Debian prometheus loaded with backfilled series (conftest.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import yaml
from conftest import free_port
from helpers import TRAIN_IMAGE, InMemoryJobStore, make_settings
from retrain_controller.cli import main
from retrain_controller.controller import EventLog, run_pass
from retrain_controller.jobstore import AlreadyExistsError, ForbiddenError, JobStoreError
from retrain_controller.prometheus import DriftSource

FRAUD = "Fraud_Model.v2/EU ünïcode"


pytestmark = pytest.mark.usefixtures("pass_environment")


def check(prometheus, *extra, dry_run=True):
    argv = ["check", "--prometheus-url", prometheus.url, "--at", str(prometheus.at), "--max-concurrent", "5"]
    return main([*argv, *(["--dry-run"] if dry_run else []), *extra])


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def decisions_by_model(records):
    return {(r["namespace"], r["model"]): r for r in records if r["event"] == "decision"}


def test_dry_run_decides_every_model_and_prints_only_the_sustained_ones(prometheus, capsys):
    assert check(prometheus) == 0
    out, err = capsys.readouterr()
    jobs = [doc for doc in yaml.safe_load_all(out) if doc]
    created = {
        (
            j["metadata"]["annotations"]["kserve-model-monitoring/model-namespace"],
            j["metadata"]["annotations"]["kserve-model-monitoring/model-name"],
        )
        for j in jobs
    }
    assert created == {("ml", "sustained"), ("other", "sustained"), ("team-a", FRAUD)}
    decisions = decisions_by_model(json_lines(err))
    reasons = {key: (d["action"], d["reason"]) for key, d in decisions.items()}
    assert reasons == {
        ("ml", "sustained"): ("create", "drift_sustained"),
        ("other", "sustained"): ("create", "drift_sustained"),
        ("team-a", FRAUD): ("create", "drift_sustained"),
        ("ml", "spike"): ("skip", "not_sustained"),
        ("ml", "calm"): ("skip", "below_threshold"),
        ("ml", "nan-model"): ("skip", "value_nan"),
        ("ml", "newcomer"): ("skip", "insufficient_history"),
    }  # "gone" stopped reporting 30 minutes ago: no series, no decision
    assert decisions[("ml", "sustained")]["value"] == pytest.approx(0.8)
    assert decisions[("ml", "spike")]["value"] == pytest.approx(0.1)
    assert decisions[("ml", "spike")]["current"] == pytest.approx(0.9)
    assert decisions[("ml", "nan-model")]["value"] is None
    fraud = next(
        j for j in jobs if j["metadata"]["annotations"]["kserve-model-monitoring/model-name"] == FRAUD
    )
    assert fraud["metadata"]["name"].startswith("retrain-fraud-model-v2-eu-")
    assert fraud["metadata"]["annotations"]["kserve-model-monitoring/drift-value"] == "0.7"
    assert fraud["metadata"]["annotations"]["kserve-model-monitoring/drift-query"].startswith(
        "min_over_time("
    )


def test_sustained_for_zero_acts_on_the_latest_value(prometheus, capsys):
    assert check(prometheus, "--sustained-for", "0") == 0
    decisions = decisions_by_model(json_lines(capsys.readouterr().err))
    assert decisions[("ml", "spike")]["action"] == "create"
    assert decisions[("ml", "newcomer")]["action"] == "create"


def test_max_concurrent_gives_the_slot_to_the_most_drifted_model(prometheus, capsys):
    assert check(prometheus, "--max-concurrent", "1") == 0
    decisions = decisions_by_model(json_lines(capsys.readouterr().err))
    assert decisions[("ml", "sustained")]["action"] == "create"
    assert decisions[("team-a", FRAUD)]["reason"] == "max_concurrent"
    assert decisions[("other", "sustained")]["reason"] == "max_concurrent"


def test_a_pass_creates_through_the_job_store_and_the_next_pass_is_guarded(prometheus):
    settings = make_settings(**{"prometheus.url": prometheus.url}, maxConcurrent=5)
    store = InMemoryJobStore()
    source = DriftSource(settings)
    log_lines: list[str] = []
    log = EventLog(_ListStream(log_lines))
    assert run_pass(settings, source, store, now=prometheus.at, dry_run=False, log=log) == 0
    assert len(store.created) == 3
    assert store.list_calls == [
        (
            "training",
            "app.kubernetes.io/managed-by=kserve-model-monitoring-retrainer,app.kubernetes.io/instance=demo",
        )
    ]
    # The Jobs are now listed as running: a second pass a minute later creates nothing.
    log_lines.clear()
    assert run_pass(settings, source, store, now=prometheus.at + 60, dry_run=False, log=log) == 0
    decisions = [r for r in json_lines("".join(log_lines)) if r["event"] == "decision"]
    assert len(store.created) == 3
    assert {d["reason"] for d in decisions if d["namespace"] in ("ml", "other", "team-a")} >= {"job_active"}
    assert not [d for d in decisions if d["action"] == "create"]
    summary = json_lines("".join(log_lines))[-1]
    assert (summary["created"], summary["held_back"], summary["skipped"]) == (0, 3, 4)
    assert (
        summary["message"]
        == "0 retrain Job(s) created, 3 held back by the job, cooldown or concurrency guards"
    )


def test_already_exists_counts_as_done(prometheus):
    settings = make_settings(**{"prometheus.url": prometheus.url}, maxConcurrent=5)
    store = InMemoryJobStore(fail_create=AlreadyExistsError("exists"))
    lines: list[str] = []
    assert (
        run_pass(
            settings,
            DriftSource(settings),
            store,
            now=prometheus.at,
            dry_run=False,
            log=EventLog(_ListStream(lines)),
        )
        == 0
    )
    records = json_lines("".join(lines))
    assert [r["outcome"] for r in records if r.get("action") == "create"] == ["already_exists"] * 3
    summary = records[-1]
    assert summary["message"] == "0 retrain Job(s) created, 3 already existed"
    assert (summary["created"], summary["already_exists"], summary["failed"]) == (0, 3, 0)


def test_a_rejected_job_is_logged_the_pass_goes_on_and_exits_4(prometheus):
    settings = make_settings(**{"prometheus.url": prometheus.url}, maxConcurrent=5)
    store = InMemoryJobStore(
        fail_create=JobStoreError("kubernetes API answered 422 Invalid to create jobs.batch")
    )
    lines: list[str] = []
    log = EventLog(_ListStream(lines))
    assert run_pass(settings, DriftSource(settings), store, now=prometheus.at, dry_run=False, log=log) == 4
    records = json_lines("".join(lines))
    failed = [r for r in records if r.get("outcome") == "error"]
    assert len(failed) == 3 and all("422 Invalid" in r["detail"] for r in failed)
    assert records[-1]["failed"] == 3


def test_forbidden_exits_3_naming_the_permission(prometheus, monkeypatch, capsys):
    import retrain_controller.cli as cli

    store = InMemoryJobStore(fail_create=ForbiddenError("create", "jobs.batch", "training", "denied by RBAC"))
    monkeypatch.setattr(cli, "_job_store", lambda *args: store)
    assert check(prometheus, "--training-namespace", "training", dry_run=False) == 3
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1] == (
        "retrain-controller: kubernetes: forbidden: cannot create jobs.batch in namespace 'training' "
        "(the ServiceAccount needs a Role granting verb 'create' on jobs.batch): denied by RBAC"
    )
    assert [r["outcome"] for r in json_lines(out) if r.get("action") == "create"] == ["forbidden"]


def test_series_without_the_model_label_are_reported(prometheus, capsys):
    assert check(prometheus, "--query", "max(model_drift_score)") == 0
    records = json_lines(capsys.readouterr().err)
    warnings = [r["message"] for r in records if r["event"] == "warning" and "series" in r["message"]]
    assert warnings == [
        "1 series without the label 'model_name' ignored: the query must keep 'model_name' "
        "(e.g. max by (model_name, ...))"
    ]
    assert records[-1]["message"] == "no model over the threshold"


def test_an_empty_result_exits_0_with_no_model_over_the_threshold(prometheus, capsys):
    assert check(prometheus, "--query", 'model_drift_score{model_name="no-such-model"}') == 0
    records = json_lines(capsys.readouterr().err)
    assert [r["message"] for r in records if r["event"] == "summary"] == ["no model over the threshold"]


def run_cli(*argv, env_extra=None, timeout=60):
    """The real command in a subprocess, as the CronJob runs it."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAINER_")}
    env.update(
        {"RETRAINER_JOB_IMAGE": TRAIN_IMAGE, "KUBECONFIG": "/nonexistent/kubeconfig"}, **(env_extra or {})
    )
    return subprocess.run(
        [sys.executable, "-m", "retrain_controller", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def assert_exit_2_nothing_created(result, needle):
    assert result.returncode == 2, result.stderr
    reason = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(reason) == 1 and reason[0].startswith("retrain-controller: prometheus: "), result.stderr
    assert needle in reason[0]
    assert "kind: Job" not in result.stdout
    assert not [r for r in json_lines(result.stdout + _json_only(result.stderr)) if r["event"] == "decision"]


def _json_only(text):
    return "\n".join(line for line in text.splitlines() if line.startswith("{"))


def test_a_query_syntax_error_exits_2(prometheus):
    result = run_cli(
        "check", "--prometheus-url", prometheus.url, "--query", "max by (model_name (model_drift_score"
    )
    assert_exit_2_nothing_created(result, "bad_data: invalid parameter")


@pytest.mark.parametrize("query", ["scalar(max(model_drift_score))", "model_drift_score[5m]"])
def test_a_query_that_is_not_an_instant_vector_exits_2(prometheus, query, capsys):
    assert check(prometheus, "--query", query, "--sustained-for", "0") == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith("must return an instant vector (one value per model)")
    )


def test_an_unreachable_prometheus_exits_2():
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("check", "--dry-run", "--prometheus-url", url)
    assert_exit_2_nothing_created(result, f"cannot reach Prometheus at {url}")


def test_a_prometheus_query_timeout_exits_2(prometheus):
    # Prometheus itself enforces the timeout we send and answers 503 errorType=timeout.
    result = run_cli("check", "--prometheus-url", prometheus.url, "--prometheus-timeout", "0.000001s")
    assert_exit_2_nothing_created(result, "timeout: query timed out")


def test_a_hung_connection_times_out_and_exits_2():
    """A listener that accepts and never answers: the client's own timeout fires."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        result = run_cli("check", "--prometheus-url", url, "--prometheus-timeout", "0.5s")
    assert_exit_2_nothing_created(result, "timed out querying")


def test_watch_repeats_the_pass(prometheus):
    result = run_cli(
        "watch",
        "--interval",
        "1",
        "--passes",
        "2",
        "--dry-run",
        "--prometheus-url",
        prometheus.url,
        "--at",
        str(prometheus.at),
    )
    assert result.returncode == 0, result.stderr
    summaries = [r for r in json_lines(_json_only(result.stderr)) if r["event"] == "summary"]
    assert [s["created"] for s in summaries] == [1, 1]  # default maxConcurrent is 1
    assert result.stdout.count("kind: Job") == 2


def test_without_a_cluster_a_real_pass_exits_4_after_deciding(prometheus):
    result = run_cli("check", "--prometheus-url", prometheus.url, "--at", str(prometheus.at))
    assert result.returncode == 4
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("retrain-controller: kubernetes: no Kubernetes configuration (in-cluster or kubeconfig)")
    )


class _ListStream:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text):
        self.lines.append(text)

    def flush(self):
        pass


def test_watch_keeps_going_after_a_failed_pass():
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("watch", "--interval", "1", "--passes", "2", "--prometheus-url", url)
    assert result.returncode == 2
    errors = [r for r in json_lines(result.stdout) if r["event"] == "error"]
    assert [e["exit_code"] for e in errors] == [2, 2]


def test_watch_stops_on_sigterm(prometheus):
    import os
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAINER_")}
    env.update({"RETRAINER_JOB_IMAGE": TRAIN_IMAGE, "KUBECONFIG": "/nonexistent/kubeconfig"})
    argv = [
        "watch",
        "--interval",
        "300",
        "--dry-run",
        "--prometheus-url",
        prometheus.url,
        "--at",
        str(prometheus.at),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "retrain_controller", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # The first summary line means the first pass is done and the loop is waiting.
        for line in proc.stderr:
            if '"event": "summary"' in line:
                break
        proc.send_signal(signal.SIGTERM)
        # Returns long before the 300 s interval would end (else the wait times out and fails).
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
