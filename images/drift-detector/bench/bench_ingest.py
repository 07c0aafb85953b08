"""Ingest benchmark of the drift detector service (real processes, real HTTP on loopback).

(2) KServe payload-logger traffic: request+response CloudEvent pairs (binary mode, KServe's headers,
    one 30-feature instance each) at a fixed concurrency from a separate load process; events/s, ack
    latency and the server's CPU per event, with the default fsync policy (interval), against baselines
    measured in the same run: the same service with fsync never and always, and a bare ASGI app
    answering 200 with no body on the same uvicorn/uvloop/httptools.
(3) Memory: peak RSS (VmHWM) of the service after 10,000 rows and after 1,000,000 rows posted to
    /v1/ingest in large batches (window 1000: the windows close and are checked all along).

Usage: python bench_ingest.py [--duration 8] [--concurrency 32] [--rows 1000000]
Prints markdown tables. Targets: >= 5000 events/s, p99 < 20 ms, CPU per event <= 2x bare,
RSS growth < 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

N_FEATURES = 30
REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_reference(path: Path, n: int = 5000) -> list[str]:
    rng = np.random.default_rng(0)
    names = [f"feature_{i:02d}" for i in range(N_FEATURES)]
    df = pd.DataFrame(rng.normal(size=(n, N_FEATURES)), columns=names)
    df["prediction"] = 1 / (1 + np.exp(-df[names[0]]))
    df["target"] = (rng.uniform(size=n) < df["prediction"]).astype(int)
    df.to_parquet(path)
    return names


# --- processes ------------------------------------------------------------------------------------
class Proc:
    def __init__(self, args: list[str], port: int, log: Path):
        self.port = port
        self.log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90) -> None:
        import http.client

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited {self.proc.returncode}, see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("not ready in time")

    def rss_peak_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def start_service(tmp: Path, name: str, reference: Path, config: dict, window: int = 1000) -> Proc:
    port = free_port()
    work = tmp / name
    work.mkdir()
    (work / "config.yaml").write_text(
        json.dumps({"http_host": "127.0.0.1", "reports_enabled": False, **config})
    )
    args = [
        sys.executable, "-m", "drift_detector", "--reference", str(reference), "--http-port", str(port),
        "--data-dir", str(work / "data"), "--reports-dir", str(work / "reports"),
        "--window-size", str(window), "--min-samples", "100", "--config", str(work / "config.yaml"),
    ]  # fmt: skip
    return Proc(args, port, work / "server.log")


def start_bare(tmp: Path) -> Proc:
    port = free_port()
    return Proc([sys.executable, __file__, "bare", "--port", str(port)], port, tmp / "bare.log")


async def bare_app(scope, receive, send):
    """The floor: read the body, answer 200 with no body (as the detector answers an event)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning", lifespan="off", proxy_headers=False, server_header=False,
                date_header=False)  # fmt: skip


# --- load generator (runs in its own process) ----------------------------------------------------
def build_event(event_id: str, event_type: str, body: bytes) -> bytes:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    headers = [
        "POST / HTTP/1.1", "Host: 127.0.0.1", "Ce-Specversion: 1.0", f"Ce-Id: {event_id}",
        f"Ce-Type: {event_type}", "Ce-Source: http://localhost:9081/", f"Ce-Time: {now}",
        f"Ce-Recordedtime: {now}", "Ce-Inferenceservicename: bench-model", "Ce-Namespace: models",
        "Ce-Component: predictor", "Ce-Endpoint: ", "Ce-Metadata: {}", "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]  # fmt: skip
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


class Connection(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive client: one request in flight, Content-Length responses."""

    def __init__(self):
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].lower()
        i = head.find(b"content-length:")
        length = (
            int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
        )
        if len(self.buf) >= end + 4 + length:
            status = int(self.buf[9:12])
            self.buf = self.buf[end + 4 + length :]
            if self.waiter and not self.waiter.done():
                self.waiter.set_result(status)

    def connection_lost(self, exc):
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def call(self, data: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


async def load(port: int, concurrency: int, duration: float, warmup: float) -> dict:
    # Bodies are made up front: the load process must not be the bottleneck it measures.
    rng = np.random.default_rng(1)
    instances = [
        json.dumps({"instances": [row]}).encode()
        for row in rng.normal(size=(512, N_FEATURES)).round(6).tolist()
    ]
    predictions = [json.dumps({"predictions": [p]}).encode() for p in rng.uniform(size=512).round(6).tolist()]
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    events = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    answered = 0  # warm-up included: the server's CPU is read around the whole load

    async def client(k: int) -> None:
        nonlocal errors, events, answered
        _, conn = await loop.create_connection(Connection, "127.0.0.1", port)
        i = k
        while True:
            i += 1
            event_id = f"{k}-{i}-{uuid.uuid4().hex[:8]}"
            pair = (
                build_event(event_id, REQUEST, instances[i % 512]),
                build_event(event_id, RESPONSE, predictions[i % 512]),
            )
            for data in pair:
                t0 = time.perf_counter()
                status = await conn.call(data)
                t1 = time.perf_counter()
                answered += 1
                if t0 >= measure_from:
                    if t1 > stop_at:
                        conn.transport.close()
                        return
                    events += 1
                    latencies.append(t1 - t0)
                    errors += status != 200

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    lat = np.array(latencies) * 1000
    return {
        "events": events,
        "all_events": answered,
        "errors": errors,
        "events_per_s": events / duration,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
    }


def run_load(port: int, concurrency: int, duration: float, warmup: float) -> dict:
    """The load generator in a separate process, so it does not share the server's interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "load", "--port", str(port), "--concurrency", str(concurrency),
         "--duration", str(duration), "--warmup", str(warmup)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def fsync_probe(directory: Path, n: int = 100) -> str:
    """The disk's own fdatasync latency: the floor of any acknowledge-after-fsync design."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    times = []
    for _ in range(n):
        os.write(fd, b"x" * 700)
        t0 = time.perf_counter()
        os.fdatasync(fd)
        times.append((time.perf_counter() - t0) * 1000)
    os.close(fd)
    path.unlink()
    times.sort()
    return f"p50 {times[n // 2]:.2f} ms, p90 {times[int(n * 0.9)]:.2f} ms, max {times[-1]:.2f} ms"


# --- memory -------------------------------------------------------------------------------------------
def ingest_batches(port: int, names: list[str], total_rows: int, batch: int) -> None:
    import http.client

    rng = np.random.default_rng(2)
    values = rng.normal(size=(batch, len(names))).round(6)
    body = json.dumps({"rows": [dict(zip(names, row, strict=True)) for row in values.tolist()]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    sent = 0
    while sent < total_rows:
        conn.request("POST", "/v1/ingest", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"ingest failed: {resp.status}")
        sent += batch


# --- main -----------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "load", "bare"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.mode == "load":
        import uvloop

        print(json.dumps(uvloop.run(load(args.port, args.concurrency, args.duration, args.warmup))))
        return 0
    if args.mode == "bare":
        run_bare(args.port)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        reference = tmp / "reference.parquet"
        names = make_reference(reference)
        rows = []
        setups = [
            ("bare ASGI 200 (floor)", lambda: start_bare(tmp)),
            (
                "drift detector, fsync never",
                lambda: start_service(tmp, f"nofsync{c}", reference, {"fsync": "never"}),
            ),
            (
                "drift detector, fsync interval (default)",
                lambda: start_service(tmp, f"interval{c}", reference, {}),
            ),
            (
                "drift detector, fsync always",
                lambda: start_service(tmp, f"fsync{c}", reference, {"fsync": "always"}),
            ),
        ]
        for c in (args.concurrency, args.concurrency * 2):
            for label, start in setups:
                print(f"bench: {label}: {c} connections, {args.duration:.0f}s ...", file=sys.stderr)
                proc = start()
                try:
                    cpu = cpu_seconds(proc.proc.pid)
                    result = run_load(proc.port, c, args.duration, args.warmup)
                    # CPU over warm-up and measurement alike, per event answered in both
                    result["cpu_us"] = (cpu_seconds(proc.proc.pid) - cpu) / result["all_events"] * 1e6
                    rows.append((label, c, result))
                finally:
                    proc.stop()
        print("\n### Ingest: KServe CloudEvent pairs over HTTP, one 30-feature instance per request\n")
        print(
            "| setup | conns | events/s | vs bare | p50 ack ms | p99 ack ms | max ms | errors "
            "| CPU us/event | CPU vs bare | target |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        floors = {c: r for label, c, r in rows if label.startswith("bare")}
        for label, c, r in rows:
            target = ""
            cpu_ratio = r["cpu_us"] / floors[c]["cpu_us"]
            speed = r["events_per_s"] / floors[c]["events_per_s"]
            if "default" in label:
                ok = r["events_per_s"] >= 5000 and r["p99_ms"] < 20 and cpu_ratio <= 2
                target = f"{'met' if ok else 'MISSED'} (>= 5000/s, p99 < 20 ms, CPU <= 2x bare)"
            print(
                f"| {label} | {c} | {r['events_per_s']:.0f} | {speed:.2f}x "
                f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['errors']} "
                f"| {r['cpu_us']:.0f} | {cpu_ratio:.2f}x | {target} |"
            )
        print(f"\nfdatasync on this disk, 700-byte appends: {fsync_probe(tmp)}")

        print(f"bench: memory: {args.rows:,} rows via /v1/ingest ...", file=sys.stderr)
        proc = start_service(tmp, "memory", reference, {})
        try:
            batch = 5000
            t0 = time.perf_counter()
            ingest_batches(proc.port, names, 10_000, batch)
            small = proc.rss_peak_kib()
            ingest_batches(proc.port, names, args.rows - 10_000, batch)
            elapsed = time.perf_counter() - t0
            large = proc.rss_peak_kib()
        finally:
            proc.stop()
        growth = (large - small) / small * 100
        print("\n### Memory: peak RSS of the service (window 1000, 30 features, batches of 5000 rows)\n")
        print("| rows ingested | peak RSS MiB | growth | rows/s | target |")
        print("|---:|---:|---:|---:|---|")
        print(f"| 10,000 | {small / 1024:.1f} | baseline | | |")
        ok = "met" if growth < 10 else "MISSED"
        print(
            f"| {args.rows:,} | {large / 1024:.1f} | {growth:+.1f}% | {args.rows / elapsed:,.0f} "
            f"| {ok} (< 10% growth) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
