"""`make demo` itself: the real CLI (demo/run_demo.py) in a subprocess, short knobs, its own stack.

It must tell the whole story (drift alert firing, retrain decision, summary) and leave no process
behind, also when interrupted with Ctrl-C (SIGINT) in the middle of a phase.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def test_demo_tells_the_whole_story_and_cleans_up(tmp_path):
    run_dir = tmp_path / "run"
    out = subprocess.run(demo(run_dir), capture_output=True, text=True, timeout=240, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "relay (demo/relay.py) stands in" in text  # the simulation is said plainly
    assert "KServeModelDataDriftDetected is FIRING" in text
    assert "retrain controller: create retrain-breast-cancer-" in text and "(dry_run)" in text
    assert "would create (dry run)" in text  # the summary table
    for line in ("windows checked", "alerts firing (Prometheus API)", "model quality (feedback)"):
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
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest
    assert processes_using(run_dir) == []
