"""KServe's own agent (the payload logger) in front of the predictor, for `make demo` and tests/e2e.

The binary is `cmd/agent` of the kserve Go module at KSERVE_VERSION, built by `ci/install-tools.sh kserve`
into .tools/bin/kserve-agent. It runs here as KServe's pod webhook runs it next to a predictor
(pkg/webhook/admission/pod/agent_injector.go): the flags come from the rendered chart's logger spec,
with only the sink URL pointed at the local drift detector.

Facts about the agent this module is built around (cmd/agent/main.go, pkg/logger/):
- it listens on all interfaces (callers use 127.0.0.1) and always binds the abstract unix socket
  @/kserve/agent.sock: one agent per network namespace, a second one exits at start-up;
- it counts nothing it could report: no metrics endpoint, and its zap log is sampled (100 identical
  lines a second, then every 100th). What it delivered is counted at the sink;
- it never retries a send and keeps undelivered events in memory only. On SIGTERM it sleeps 30 s
  (Knative's drain; its workers keep sending meanwhile) and then exits, dropping what it still holds.
  Waiting for the sink gives the same guarantee without the fixed 30 s: stop it with SIGKILL once the
  sink has received every event it will get (`wait_delivered`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from demo.processes import ManagedProcess, ProcessFailed

REPO = Path(__file__).resolve().parents[1]
KSERVE_VERSION = "v0.20.0"  # the kserve Go module ci/install-tools.sh builds the agent from
AGENT_BINARY = "kserve-agent"
AGENT_SOCKET = "@/kserve/agent.sock"  # abstract: the leading @ is a NUL byte on the wire
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
# The readiness probe KServe's webhook gives the agent container: the kubelet's User-Agent makes the
# agent answer by itself (knative's drainer), K-Network-Probe is the value its health handler wants.
READINESS_PROBE_HEADERS = {"User-Agent": "kube-probe/1.31", "K-Network-Probe": "queue"}


def agent_binary() -> str:
    """Path of kserve-agent: the repository's .tools/bin first, then PATH."""
    local = REPO / ".tools" / "bin" / AGENT_BINARY
    found = str(local) if local.exists() else shutil.which(AGENT_BINARY)
    if not found:
        raise ProcessFailed(
            f"{AGENT_BINARY} not found: `make setup` (ci/install-tools.sh kserve) builds KServe's agent "
            f"from github.com/kserve/kserve@{KSERVE_VERSION} into .tools/bin"
        )
    return found


@dataclass(frozen=True)
class AgentConfig:
    """What the agent needs: the logger spec of the rendered InferenceService plus local ports."""

    port: int  # where inference traffic goes
    component_port: int  # the predictor's HTTP port, on 127.0.0.1
    log_url: str
    log_mode: str  # all | request | response
    inference_service: str
    namespace: str
    source_uri: str  # KServe passes the pod name
    metadata_headers: tuple[str, ...] = ()
    component: str = "predictor"
    endpoint: str = ""  # the pod label `endpoint`, which KServe 0.20 no longer sets
    # Blob-storage mode (log_url s3://, gs://, abfs://): the logger spec's `storage` fields.
    store_path: str = ""  # --log-store-path: blob mode needs one, else the agent stores nothing
    store_format: str = "json"  # json | csv | parquet
    batch_size: int = 1
    batch_interval: str = "0s"  # a Go duration: flush a partial batch after this long
    marshaller_port: int = 9083  # the agent's embedded marshaller server (all interfaces)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def agent_flags(config: AgentConfig) -> list[str]:
    """The agent's command-line flags, as KServe's pod webhook writes them for a logger spec."""
    flags = ["--port", str(config.port), "--component-port", str(config.component_port)]
    flags += ["--log-url", config.log_url, "--source-uri", config.source_uri, "--log-mode", config.log_mode]
    flags += ["--inference-service", config.inference_service, "--namespace", config.namespace]
    flags += ["--endpoint", config.endpoint, "--component", config.component]
    if config.metadata_headers:
        # Matched against Go's canonical header names: `X-Request-Id`, never `x-request-id`.
        flags += ["--metadata-headers", ",".join(config.metadata_headers)]
    if config.store_path:
        flags += ["--log-store-path", config.store_path, "--log-store-format", config.store_format]
        flags += ["--log-batch-size", str(config.batch_size), "--log-batch-interval", config.batch_interval]
        marshaller = f"http://127.0.0.1:{config.marshaller_port}/marshal"
        flags += ["--log-marshaller-port", str(config.marshaller_port), "--log-marshaller-url", marshaller]
    return [*flags, "--logger-tls-skip-verify", "false"]


def agent_env(base: dict[str, str]) -> dict[str, str]:
    """The agent refuses to start without SERVING_READINESS_PROBE; empty means "always ready"."""
    return {**base, "SERVING_READINESS_PROBE": ""}


def local_log_url(chart_url: str, sink_base_url: str) -> str:
    """The chart's logger URL with its scheme and host swapped for a local sink's; the path is kept."""
    chart, sink = urlsplit(chart_url), urlsplit(sink_base_url)
    return urlunsplit((sink.scheme, sink.netloc, chart.path or "/", chart.query, ""))


def expected_events(log_mode: str, requests: int, answered_200: int) -> int:
    """Events the agent hands its sender for `requests` calls: a request event for each call, a
    response event only for those the predictor answered with HTTP 200 (pkg/logger/handler.go)."""
    return requests * (log_mode in ("all", "request")) + answered_200 * (log_mode in ("all", "response"))


# --- the abstract socket ----------------------------------------------------------------------------
def _listening_socket_inodes() -> set[str]:
    """Inodes of the listening sockets bound to AGENT_SOCKET in this network namespace."""
    inodes = set()
    with contextlib.suppress(OSError), open("/proc/net/unix") as table:
        next(table)  # header: Num RefCount Protocol Flags Type St Inode Path
        for line in table:
            fields = line.split()
            listening = len(fields) == 8 and int(fields[3], 16) & 0x10000  # __SO_ACCEPTCON
            if listening and fields[7] == AGENT_SOCKET:
                inodes.add(fields[6])
    return inodes


def socket_holders() -> list[int]:
    """Pids of the processes holding AGENT_SOCKET in this network namespace (root sees them all)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_socket_inodes()}
    pids = []
    for proc in Path("/proc").iterdir() if wanted else ():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    return pids


def socket_taken() -> bool:
    """True when some process in this network namespace accepts connections on AGENT_SOCKET."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect("\0" + AGENT_SOCKET[1:])
        except OSError:
            return False
        return True


def another_agent_message(holders: list[int]) -> str:
    who = f" (pid {', '.join(map(str, holders))})" if holders else ""
    return (
        f"another KServe agent already runs in this network namespace{who}: it holds {AGENT_SOCKET} and "
        f"only one fits; stop it, or run in a network namespace of your own "
        f"(`unshare --net bash -c 'ip link set lo up && make demo'` as root)"
    )


# --- the process ------------------------------------------------------------------------------------
class KServeAgent(ManagedProcess):
    """kserve-agent as a child process: refuses to start beside another agent, stops with SIGKILL."""

    def __init__(self, config: AgentConfig, log_path: Path, env: dict[str, str]):
        cmd = [agent_binary(), *agent_flags(config)]
        env = agent_env(env)
        super().__init__("kserve-agent", cmd, log_path, env=env, parent_death_signal=signal.SIGKILL)
        self.config = config

    def start(self) -> KServeAgent:
        if socket_taken():
            raise ProcessFailed(another_agent_message(socket_holders()))
        super().start()
        return self

    def wait_ready(self, timeout: float = 30.0) -> KServeAgent:
        """Ready once this very process holds AGENT_SOCKET (it binds it right after its TCP port)
        and answers a kubelet-style probe on its port."""
        try:
            super().wait_ready(lambda: self.pid in socket_holders() and self._probe_ok(), timeout, "ready")
        except ProcessFailed:
            if "agent.sock" in self.log_tail(5) and "address already in use" in self.log_tail(5):
                raise ProcessFailed(another_agent_message(socket_holders())) from None
            raise
        return self

    def _probe_ok(self) -> bool:
        request = urllib.request.Request(f"{self.config.url}/", headers=READINESS_PROBE_HEADERS)
        with urllib.request.urlopen(request, timeout=2) as resp:
            return resp.status == 200

    def stop(self, grace: float = 0.0) -> None:
        """SIGKILL at once: SIGTERM would only add a 30 s sleep (see the module docstring)."""
        self.kill(signal.SIGKILL)
        super().stop(grace)


def wait_delivered(
    received: Callable[[], int],
    expected: int | None = None,
    timeout: float = 30.0,
    quiet_seconds: float = 1.5,
) -> int:
    """Wait until the sink has received `expected` events, or (without `expected`, or when some never
    arrive) until its count stopped moving for `quiet_seconds`; returns the last count."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            count = received()
            if expected is not None and count >= expected:
                return count
            if count != last:
                last, since = count, time.monotonic()
        if last >= 0 and time.monotonic() - since >= quiet_seconds:
            return last
        time.sleep(0.1)
    return last
