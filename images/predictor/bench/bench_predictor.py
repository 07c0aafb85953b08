"""Benchmark: the demo model served bare (a plain kserve.Model) and monitored, side by side.

Usage (after `make demo-model`): python images/predictor/bench/bench_predictor.py [--help]

Both servers run at once on loopback ports with KServe's default logging. One separate load process
(a small keep-alive HTTP/1.1 client) drives both at the same time with a fixed number of connections
each, in short slices, so every change in the machine's load (it is shared) hits both alike. Server
CPU time is read from /proc/<pid>/stat (user + system, all threads) around each slice; the ratio is
monitored/bare CPU per request over all slices. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BATCHES = (1, 32)
TARGETS = {1: 1.05, 32: 1.10}  # monitored CPU per request / bare CPU per request
SERVERS = ("bare", "monitored")


# --- the bare server: what a plain KServe custom model does with the same estimator -----------------
def serve_bare(model_dir: str, port: int) -> None:
    import joblib
    import numpy as np
    from kserve import Model

    # MonitoredModelServer only adds binding to 127.0.0.1 instead of 0.0.0.0
    from monitored_predictor.__main__ import MonitoredModelServer

    class BareModel(Model):
        def load(self) -> bool:
            self.estimator = joblib.load(Path(model_dir) / "model.joblib")
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            features = np.asarray(payload["instances"], dtype=np.float64)
            return {"predictions": self.estimator.predict_proba(features)[:, 1].tolist()}

    model = BareModel("demo")
    model.load()
    MonitoredModelServer(http_host="127.0.0.1", http_port=port, enable_grpc=False).start([model])


# --- the load generator (its own process, kept alive between slices) ---------------------------------
async def _connection(port: int, request: bytes, deadline: float, latencies: list, failures: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 200"):
                failures.append(head.split(b"\r\n", 1)[0].decode())
    finally:
        writer.close()


async def _load(ports: list[int], body: bytes, concurrency: int, seconds: float) -> dict:
    """Drive every port at once, `concurrency` connections each; per port: latencies and failures."""
    deadline = time.perf_counter() + seconds
    results, connections = {}, []
    for port in ports:
        request = (
            f"POST /v1/models/demo:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        results[port] = {"latencies": [], "failures": []}
        for _ in range(concurrency):
            connections.append(
                _connection(port, request, deadline, results[port]["latencies"], results[port]["failures"])
            )
    await asyncio.gather(*connections)
    return results


def run_load_process() -> None:
    """Answer one measurement per stdin line `<body file> <concurrency> <seconds> <port>...`."""
    for line in sys.stdin:
        body_file, concurrency, seconds, *ports = line.split()
        body = Path(body_file).read_bytes()
        result = asyncio.run(_load([int(p) for p in ports], body, int(concurrency), float(seconds)))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class LoadClient:
    """The load generator process, kept alive across slices."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--load"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def measure(self, targets: dict[str, tuple[int, int]], body_file: Path, concurrency: int, seconds: float):
        """Load all targets (name -> (pid, port)) together; per name: latencies, failures, CPU seconds."""
        before = {name: cpu_seconds(pid) for name, (pid, _) in targets.items()}
        ports = " ".join(str(port) for _, port in targets.values())
        self.proc.stdin.write(f"{body_file} {concurrency} {seconds} {ports}\n")
        self.proc.stdin.flush()
        by_port = json.loads(self.proc.stdout.readline())
        results = {}
        for name, (pid, port) in targets.items():
            results[name] = by_port[str(port)]
            results[name]["cpu"] = cpu_seconds(pid) - before[name]
        return results

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# --- the driver ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: server on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"bench: server on port {port} not ready after {timeout}s")


def write_bodies(out_dir: Path, holdout: Path) -> dict[int, Path]:
    import orjson
    import pandas as pd

    rows = pd.read_parquet(holdout).drop(columns="target").to_numpy().tolist()
    files = {}
    for batch in BATCHES:
        files[batch] = out_dir / f"body-{batch}.json"
        files[batch].write_bytes(orjson.dumps({"instances": rows[:batch]}))
    return files


def start_servers(model_dir: str, out_dir: Path) -> tuple[dict, dict]:
    ports = {name: free_port() for name in SERVERS}
    commands = {
        "bare": [sys.executable, __file__, "--serve-bare", model_dir, str(ports["bare"])],
        "monitored": [
            sys.executable, "-m", "monitored_predictor", "--model_dir", model_dir, "--model_name", "demo",
            "--http_host", "127.0.0.1", "--http_port", str(ports["monitored"]), "--enable_grpc", "false",
        ],
    }  # fmt: skip
    servers = {}
    for name, command in commands.items():
        with open(out_dir / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            servers[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return servers, ports


def run(args: argparse.Namespace, bodies: dict[int, Path], servers: dict, ports: dict) -> dict:
    """Load bare and monitored at the same time, slice by slice, so both see the same machine."""
    targets = {name: (servers[name].pid, ports[name]) for name in SERVERS}
    totals = {(b, n): {"latencies": [], "failures": [], "cpu": 0.0} for b in BATCHES for n in SERVERS}
    slice_ratios: dict[int, list[float]] = {b: [] for b in BATCHES}
    load = LoadClient()
    try:
        for batch in BATCHES:  # warm-up: the first requests pay for lazy imports and caches
            load.measure(targets, bodies[batch], args.concurrency, 1.0)
        for batch in BATCHES:
            for _ in range(args.slices):
                results = load.measure(targets, bodies[batch], args.concurrency, args.seconds)
                per_request = {}
                for name, r in results.items():
                    cell = totals[(batch, name)]
                    cell["latencies"] += r["latencies"]
                    cell["failures"] += r["failures"]
                    cell["cpu"] += r["cpu"]
                    per_request[name] = r["cpu"] / max(1, len(r["latencies"]))
                slice_ratios[batch].append(per_request["monitored"] / per_request["bare"])
            print(f"bench: batch {batch} measured", file=sys.stderr)
    finally:
        load.close()
    return {"cells": totals, "slice_ratios": slice_ratios}


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def print_table(result: dict, args: argparse.Namespace) -> None:
    print(
        f"\nPredictor: bare kserve.Model vs monitored, loaded together, v1 JSON, {args.concurrency} "
        f"connections each, {args.slices} slices of {args.seconds:g}s per batch size\n"
    )
    print("| batch | server | requests/s | p50 ms | p99 ms | server CPU ms/request | CPU ratio | target |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    wall = args.slices * args.seconds
    for batch in BATCHES:
        slices = sorted(result["slice_ratios"][batch])
        cpu = {}
        for name in SERVERS:
            cell = result["cells"][(batch, name)]
            lat = sorted(cell["latencies"])
            cpu[name] = cell["cpu"] / len(lat)
            ratio = cpu[name] / cpu["bare"]
            if name == "bare":
                shown, verdict = "1.000x", "baseline"
            else:
                shown = f"{ratio:.3f}x (slices {slices[0]:.2f}-{slices[-1]:.2f})"
                verdict = f"<= {TARGETS[batch]:.2f}x {'met' if ratio <= TARGETS[batch] else 'MISSED'}"
            print(
                f"| {batch} | {name} | {len(lat) / wall:.0f} | {percentile(lat, 0.5) * 1e3:.2f} "
                f"| {percentile(lat, 0.99) * 1e3:.2f} | {cpu[name] * 1e3:.3f} | {shown} | {verdict} |"
            )
    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        "\nCPU ratio: monitored/bare server CPU per request over all slices (both loaded at the same time; "
        "the range of single slices shows the noise of the shared machine); "
        f"load average after the run: {load_average} on {os.cpu_count()} shared cores."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Bare vs monitored KServe predictor: speed and CPU.")
    parser.add_argument("--model_dir", default=str(REPO / "build/demo/model"))
    parser.add_argument("--holdout", default=str(REPO / "build/demo/holdout.parquet"))
    parser.add_argument("--concurrency", type=int, default=4, help="keep-alive connections per server")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measured slice")
    parser.add_argument("--slices", type=int, default=11, help="measured slices per batch size")
    args = parser.parse_args()
    if not (Path(args.model_dir) / "model.joblib").is_file() or not Path(args.holdout).is_file():
        print("bench: demo model or holdout data missing: run `make demo-model` first", file=sys.stderr)
        return 1
    out_dir = REPO / "build/bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    bodies = write_bodies(out_dir, Path(args.holdout))
    servers, ports = start_servers(args.model_dir, out_dir)
    try:
        for name, proc in servers.items():
            wait_ready(ports[name], proc)
        print(f"bench: servers ready (logs in {out_dir})", file=sys.stderr)
        result = run(args, bodies, servers, ports)
    finally:
        for proc in servers.values():
            proc.terminate()
        for proc in servers.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    failures = [f for cell in result["cells"].values() for f in cell["failures"]]
    if failures:
        print(f"bench: {len(failures)} non-200 responses, e.g. {failures[0]}", file=sys.stderr)
        return 1
    print_table(result, args)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-bare"]:
        serve_bare(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--load"]:
        run_load_process()
    else:
        sys.exit(main())
