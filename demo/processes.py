"""Child processes that never outlive the demo: own process group, log file, parent-death signal.

Every process is started in a new session (its own process group), so stopping it also stops
whatever it forked (uvicorn workers, KServe's model server). On Linux the kernel additionally
signals the child if the demo itself dies without running its cleanup (SIGKILL, OOM): SIGTERM, or
SIGKILL for a child that would linger on SIGTERM (KServe's agent sleeps 30 s).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_LIVE: list[ManagedProcess] = []
_LIVE_LOCK = threading.Lock()


def free_port() -> int:
    """A port the OS just handed out on 127.0.0.1 (bind to 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent(sig: int) -> Callable[[], None]:
    """preexec_fn: send `sig` to this child when the process that started it dies (Linux only)."""

    def preexec() -> None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig)

    return preexec


class ProcessFailed(RuntimeError):
    """A child exited or never became ready; the message ends with the tail of its log."""


class ManagedProcess:
    """One child process with its log file; start, wait until ready, stop, kill, restart."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        stdout_path: Path | None = None,
        parent_death_signal: int = signal.SIGTERM,
    ):
        self.name = name
        self.cmd = cmd
        self.log_path = log_path  # stderr, and stdout unless stdout_path is given
        self.stdout_path = stdout_path
        self.env = env
        self.parent_death_signal = parent_death_signal
        self.popen: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(self.log_path, "ab"))
            out = files.enter_context(open(self.stdout_path, "ab")) if self.stdout_path else log
            self.popen = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent(self.parent_death_signal) if sys.platform == "linux" else None,
            )
        with _LIVE_LOCK:
            _LIVE.append(self)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        """Poll `check` until it returns True; fail early (with the log tail) when the child exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise ProcessFailed(
                    f"{self.name} exited with code {code} before it was {what}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if check():
                    return
            time.sleep(0.2)
        raise ProcessFailed(
            f"{self.name} not {what} after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole process group and reap it."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def stop(self, grace: float = 8.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds."""
        if self.popen is None:
            return
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
        # Children of a process that exited on SIGTERM may linger in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with _LIVE_LOCK:
            if self in _LIVE:
                _LIVE.remove(self)


def stop_all() -> None:
    """Stop every process still running (atexit and signal handlers call this)."""
    with _LIVE_LOCK:
        live = list(reversed(_LIVE))
    for proc in live:
        proc.stop(grace=5.0)


atexit.register(stop_all)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP behave like Ctrl-C: unwind through every `finally`, then stop children."""

    def _raise(signum, _frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)
    # A shell starting the demo in the background sets SIGINT to "ignore"; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET url answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError):
        return False
