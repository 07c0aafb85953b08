"""`make demo` itself: the real CLI (demo/run_demo.py) in a subprocess, short knobs, its own stack.

It must tell the whole story (drift alert firing, retrain decision, summary) and leave no process
behind, KServe's agent included, also when interrupted with Ctrl-C (SIGINT) in the middle of a phase.
The demo starts its own agent: no other may run in this network namespace meanwhile (`no_other_agent`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo.agent import (
    AGENT_BINARY,
    KSERVE_VERSION,
    AgentConfig,
    KServeAgent,
    another_agent_message,
    socket_holders,
)
from demo.processes import free_port

REPO = Path(__file__).resolve().parents[2]
SHORT = [
    "--clean-seconds", "5", "--drift-seconds", "10", "--rate", "60", "--alert-for", "6s",
    "--scrape-interval", "1", "--retrain-sustained-for", "4s", "--retrain-interval", "2",
]  # fmt: skip


def demo(run_dir: Path) -> list[str]:
    return [sys.executable, str(REPO / "demo" / "run_demo.py"), *SHORT, "--run-dir", str(run_dir)]


def processes_using(path: Path) -> list[str]:
    """Command lines of running processes that mention `path` (the demo's run directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def agents_here() -> list[int]:
    """Pids of KServe agents holding the agent socket in this network namespace."""
    pids = []
    for pid in socket_holders():
        try:
            if Path(os.readlink(f"/proc/{pid}/exe")).name == AGENT_BINARY:
                pids.append(pid)
        except OSError:
            continue
    return pids


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


@pytest.fixture(autouse=True)
def no_other_agent():
    holders = socket_holders()
    assert holders == [], f"an agent still holds the socket before the demo starts its own: pids {holders}"


def test_demo_tells_the_whole_story_and_cleans_up(tmp_path):
    run_dir = tmp_path / "run"
    out = subprocess.run(demo(run_dir), capture_output=True, text=True, timeout=240, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "no kubelet and no container images" in text  # what is still not a cluster, and only that
    assert "simulat" not in text.lower() and "stand in" not in text.lower()
    assert f"(KServe's agent {KSERVE_VERSION} in front of the predictor" in text
    # The summary's delivery lines: every call logged twice, every event accepted, nothing lost.
    calls = re.search(r"(\d+) inference calls went through it, (\d+) answered 200 -> (\d+) events", text)
    assert calls and int(calls[1]) == int(calls[2]) > 0 and int(calls[3]) == 2 * int(calls[1]), text[-3000:]
    received = f"received {calls[3]} events: {calls[1]} request and {calls[1]} response events accepted"
    assert received in text and "0 ignored, 0 rejected; 0 never arrived" in text
    assert "KServeModelDataDriftDetected is FIRING" in text
    assert "retrain controller: create retrain-breast-cancer-" in text and "(dry_run)" in text
    assert "would create (dry run)" in text  # the summary table
    for line in ("windows checked", "alerts firing (Prometheus API)", "model quality (feedback)"):
        assert line in text
    for line in ("multivariate drift (PCA)", "accuracy estimated, no labels (CBPE)"):
        assert line in text
    assert (run_dir / "retrainer-jobs.yaml").stat().st_size > 0
    assert processes_using(run_dir) == []


def test_ctrl_c_stops_every_process(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(demo(run_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:  # wait until traffic flows, then press Ctrl-C
        seen.append(line)
        if "phase 1" in line or time.monotonic() > deadline:
            break
    running = processes_using(run_dir)
    assert len(running) >= 3, "".join(seen)  # drift detector, Prometheus, retrain controller (+ reports)
    agents = agents_here()
    assert len(agents) == 1, "".join(seen)  # KServe's agent, which never names the run directory
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest
    assert processes_using(run_dir) == []
    assert gone(agents[0]) and agents_here() == []


def test_demo_refuses_in_one_line_when_another_agent_runs(tmp_path):
    """One agent per network namespace: the demo says so and starts nothing, rather than hang."""
    config = AgentConfig(
        free_port(), free_port(), "http://127.0.0.1:9/", "all", "other", "other", "other-pod"
    )
    other = KServeAgent(config, tmp_path / "other-agent.log", dict(os.environ)).start().wait_ready()
    try:
        out = subprocess.run(demo(tmp_path / "run"), capture_output=True, text=True, timeout=120, check=False)
    finally:
        other.stop()
    assert out.returncode == 1, out.stdout + out.stderr
    refusal = [line for line in out.stdout.splitlines() if "another KServe agent" in line]
    assert refusal == [f"demo failed: {another_agent_message([other.pid])}"]
    assert f"(pid {other.pid})" in refusal[0] and "unshare --net" in refusal[0]
    assert processes_using(tmp_path / "run") == []
