"""KServe's own agent in front of the real predictor: what it sends to the logger sink, read back byte
for byte by a capturing HTTP server on loopback (tests/e2e/sinks.py).

The agent is the binary `make setup` builds from the kserve Go module, started with the flags the demo
and the rest of this tier use (demo/agent.py), configured from the rendered chart's logger spec.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from sinks import CapturingSink

from demo import chart
from demo.agent import (
    AGENT_SOCKET,
    KSERVE_VERSION,
    READINESS_PROBE_HEADERS,
    REQUEST_TYPE,
    RESPONSE_TYPE,
    KServeAgent,
    socket_holders,
)
from demo.processes import ManagedProcess, ProcessFailed, free_port
from demo.stack import Stack
from demo.traffic import Client, v1_body, v2_body

REPO = Path(__file__).resolve().parents[2]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def sink():
    capturing = CapturingSink()
    yield capturing
    capturing.close()


@pytest.fixture(scope="module")
def serving(settings, tmp_path_factory, sink):
    """The predictor alone, behind KServe's agent, which logs to the capturing sink."""
    stack = Stack(replace(settings, run_dir=tmp_path_factory.mktemp("agent") / "run"))
    try:
        stack.prepare()
        stack.start_predictor()
        stack.wait_predictor()
        stack.start_agent(log_url=sink.url)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def events(sink) -> CapturingSink:
    sink.clear()
    return sink


def infer(stack: Stack, body: bytes, headers: dict[str, str], protocol: str = "v1"):
    path = (
        f"/v1/models/{stack.model_name}:predict"
        if protocol == "v1"
        else f"/v2/models/{stack.model_name}/infer"
    )
    return Client().post(f"{stack.agent_url}{path}", body, headers)


def rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00"))


def test_request_and_response_are_logged_as_kserve_cloudevents(serving, data, events):
    row = data.holdout[data.features].iloc[0].tolist()
    request_id = str(uuid.uuid4())
    status, _, answer = infer(serving, v1_body([row]), {"X-Request-Id": request_id})
    assert status == 200
    request, response = sorted(events.wait_for(2), key=lambda e: e.type)
    assert (request.type, response.type) == (REQUEST_TYPE, RESPONSE_TYPE)
    assert request.body == v1_body([row]) and response.body == answer  # raw bytes, both ways
    assert request.id == response.id and UUID.match(request.id)  # the agent's own id, shared
    for event in (request, response):
        h = event.headers
        assert h["ce-specversion"] == "1.0"
        assert h["content-type"] == "application/json"  # the request's, also on the response event
        assert h["ce-source"] == serving.pod_name  # KServe passes the pod name as --source-uri
        assert h["ce-inferenceservicename"] == serving.model_name
        assert h["ce-namespace"] == serving.settings.namespace
        assert h["ce-component"] == "predictor" and h["ce-endpoint"] == ""  # the header is sent, empty
        assert rfc3339(h["ce-time"]) <= rfc3339(h["ce-recordedtime"])
        # The chart's metadataHeaders: the caller's request id reaches the sink, where feedback joins on it.
        assert json.loads(h["ce-metadata"]) == {"X-Request-Id": [request_id]}
        assert "ce-annotations" not in h  # sent only when there are annotations


def test_callers_ce_id_is_kept_and_v2_is_logged_verbatim(serving, data, events):
    row = data.holdout[data.features].iloc[1].tolist()
    body = v2_body([row])
    status, _, _ = infer(serving, body, {"Ce-Id": "caller-id-1", "X-Request-Id": "r-1"}, protocol="v2")
    assert status == 200
    logged = events.wait_for(2)
    assert {e.id for e in logged} == {"caller-id-1"}
    assert [e.body for e in logged if e.type == REQUEST_TYPE] == [body]


def test_a_non_200_answer_is_logged_as_a_request_only(serving, data, events):
    bad = json.dumps({"instances": [[1.0, 2.0]]}).encode()  # 2 features where the model has 30
    status, _, _ = infer(serving, bad, {"Ce-Id": "bad-call", "X-Request-Id": "r-bad"})
    assert status == 400
    # A good call afterwards: its response event is queued after the bad call's would have been.
    row = data.holdout[data.features].iloc[2].tolist()
    assert infer(serving, v1_body([row]), {"Ce-Id": "good-call"})[0] == 200
    events.wait_for(3)
    logged = sorted((e.id, e.type) for e in events.quiet(1.0))
    assert logged == [("bad-call", REQUEST_TYPE), ("good-call", REQUEST_TYPE), ("good-call", RESPONSE_TYPE)]


def test_kubelet_probes_are_answered_by_the_agent_and_other_calls_logged(serving, events):
    client = Client()
    probe, _, answer = client.get(f"{serving.agent_url}/", READINESS_PROBE_HEADERS)
    assert (probe, answer) == (200, b"queue")  # the agent's own health handler, not the predictor
    status, _, metadata = client.get(f"{serving.agent_url}/v2/models/{serving.model_name}")
    assert status == 200
    events.wait_for(2)
    # A metadata GET is logged like an inference call (empty request body); the probe is not logged.
    assert sorted((e.type, e.body) for e in events.quiet(1.0)) == [
        (REQUEST_TYPE, b""),
        (RESPONSE_TYPE, metadata),
    ]


def test_log_mode_and_metadata_headers_come_from_the_chart(serving, data, events, sink):
    """Chart values flow into the agent's flags: mode `request` logs no response; a second metadata
    header is copied too."""
    chart_values = {
        "predictor.logger.mode": "request",
        "predictor.logger.metadataHeaders": ["X-Request-Id", "X-Tenant"],
    }
    default = serving.deployment
    serving.deployment = chart.deployment(serving.settings.release, serving.settings.namespace, chart_values)
    try:
        serving.restart_agent(log_url=sink.url)
        row = data.holdout[data.features].iloc[3].tolist()
        assert infer(serving, v1_body([row]), {"X-Request-Id": "r-2", "X-Tenant": "blue"})[0] == 200
        events.wait_for(1)
        (only,) = events.quiet(1.0)
        assert only.type == REQUEST_TYPE
        assert json.loads(only.headers["ce-metadata"]) == {"X-Request-Id": ["r-2"], "X-Tenant": ["blue"]}
    finally:
        serving.deployment = default
        serving.restart_agent(log_url=sink.url)


def test_a_second_agent_in_the_network_namespace_is_refused_in_one_line(serving, sink, tmp_path):
    running = serving.procs["kserve-agent"]
    assert socket_holders() == [running.pid]
    config = replace(serving.agent_config(sink.url), port=free_port())
    second = KServeAgent(config, tmp_path / "second-agent.log", dict(os.environ))
    with pytest.raises(ProcessFailed) as refused:
        second.start()  # the demo's own check, before anything starts
    assert str(refused.value).count("\n") == 0
    assert f"another KServe agent already runs in this network namespace (pid {running.pid})" in str(
        refused.value
    )
    # Past that check (another agent starting at the same moment), the agent itself exits, and the
    # demo still says it in one line.
    ManagedProcess.start(second)
    try:
        with pytest.raises(ProcessFailed) as exited:
            second.wait_ready(timeout=30)
        assert str(exited.value).count("\n") == 0 and AGENT_SOCKET in str(exited.value)
        assert "address already in use" in second.log_tail()
    finally:
        second.stop()


def test_the_agent_is_the_kserve_version_the_demo_names():
    """ci/install-tools.sh builds the agent from the kserve module; the demo and docs name its version."""
    script = (REPO / "ci" / "install-tools.sh").read_text()
    assert re.search(rf"^KSERVE_MODULE_VERSION={re.escape(KSERVE_VERSION)}$", script, re.M)
