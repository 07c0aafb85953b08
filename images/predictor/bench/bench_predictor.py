"""Benchmark: the demo model served bare (a plain kserve.Model) and monitored, side by side.

Usage (after `make demo-model`): python images/predictor/bench/bench_predictor.py [--help]

Both servers run at once on loopback ports with KServe's default logging; one separate load process
(a small keep-alive HTTP/1.1 client) drives them in short rounds, two loads per batch size:
  * equal rate: both get the same fixed number of requests per second on one shared schedule, so the
    CPU ratio compares equal work (a closed loop on a busy 2-core machine lets the faster server take
    more of the CPU, and CPU per request shifts with the request rate);
  * capacity: each server alone in turn, closed loop with a fixed number of connections.
Rounds alternate between the servers, so every change in the machine's load (it is shared) hits both
alike. Server CPU time is read from /proc/<pid>/stat (user + system, all threads) around each round;
the ratio is monitored/bare CPU per request over all rounds. Prints a markdown table.
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
LOADS = ("rate", "capacity")  # both servers at one fixed rate together; each alone, closed loop


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


# --- the load generator (its own process, kept alive between rounds) ---------------------------------
def _request_bytes(port: int, body: bytes) -> bytes:
    return (
        f"POST /v1/models/demo:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _exchange(reader, writer, request: bytes, failures: list) -> None:
    """One request and its whole response on a keep-alive connection."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        failures.append(head.split(b"\r\n", 1)[0].decode())


async def _closed_loop(port, request, connections, seconds, result) -> None:
    """`connections` clients, each sending its next request as soon as the last is answered."""
    deadline = time.perf_counter() + seconds

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                await _exchange(reader, writer, request, result["failures"])
                result["latencies"].append(time.perf_counter() - start)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))


async def _fixed_rate(ports, requests, connections, seconds, rate, results) -> None:
    """Every port gets the same `rate` requests/s on one shared schedule, over `connections` each.

    Latency counts from the scheduled send time, so a server that falls behind shows it (no
    coordinated omission). Both servers thus do the same work at the same moments.
    """
    queues = {port: asyncio.Queue() for port in ports}

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (scheduled := await queues[port].get()) is not None:
                await _exchange(reader, writer, requests[port], results[port]["failures"])
                results[port]["latencies"].append(time.perf_counter() - scheduled)
        finally:
            writer.close()

    clients = [asyncio.create_task(client(port)) for port in ports for _ in range(connections)]
    start = time.perf_counter()
    for i in range(round(rate * seconds)):
        scheduled = start + i / rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        for port in ports if i % 2 else ports[::-1]:  # neither server is always first
            queues[port].put_nowait(scheduled)
    for port in ports:
        for _ in range(connections):
            queues[port].put_nowait(None)
    await asyncio.gather(*clients)


async def _load(ports: list[int], body: bytes, connections: int, seconds: float, rate: float) -> dict:
    """Drive every port at once (rate 0: closed loop); per port: latencies and failures."""
    results = {port: {"latencies": [], "failures": []} for port in ports}
    requests = {port: _request_bytes(port, body) for port in ports}
    if rate > 0:
        await _fixed_rate(ports, requests, connections, seconds, rate, results)
    else:
        await asyncio.gather(
            *(_closed_loop(port, requests[port], connections, seconds, results[port]) for port in ports)
        )
    return results


def run_load_process() -> None:
    """Answer one measurement per stdin line `<body file> <connections> <seconds> <rate> <port>...`."""
    for line in sys.stdin:
        body_file, connections, seconds, rate, *ports = line.split()
        body = Path(body_file).read_bytes()
        ports = [int(p) for p in ports]
        result = asyncio.run(_load(ports, body, int(connections), float(seconds), float(rate)))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class LoadClient:
    """The load generator process, kept alive across rounds."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--load"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def measure(
        self,
        targets: dict[str, tuple[int, int]],
        body_file: Path,
        connections: int,
        seconds: float,
        rate: float = 0.0,
    ):
        """Load all targets (name -> (pid, port)) together; per name: latencies, failures, CPU seconds."""
        before = {name: cpu_seconds(pid) for name, (pid, _) in targets.items()}
        ports = " ".join(str(port) for _, port in targets.values())
        self.proc.stdin.write(f"{body_file} {connections} {seconds} {rate} {ports}\n")
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


def stop_servers(servers: dict) -> None:
    for proc in servers.values():
        proc.terminate()
    for proc in servers.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def new_cells() -> dict:
    return {name: {"latencies": [], "failures": [], "cpu": 0.0, "seconds": 0.0} for name in SERVERS}


def measure_rounds(
    client: LoadClient, groups, body: Path, args: argparse.Namespace, rate: float, cells
) -> None:
    """`args.rounds` rounds; in round i every group of `groups(i)` is loaded once, its servers together.

    Adds each server's latencies, failures, CPU seconds and loaded seconds to `cells`.
    """
    for i in range(args.rounds):
        round_groups = groups(i)
        seconds = args.seconds / len(round_groups)  # a round lasts args.seconds whatever the grouping
        for group in round_groups:
            for name, r in client.measure(group, body, args.concurrency, seconds, rate).items():
                cell = cells[name]
                cell["latencies"] += r["latencies"]
                cell["failures"] += r["failures"]
                cell["cpu"] += r["cpu"]
                cell["seconds"] += seconds


def run_trial(args: argparse.Namespace, bodies: dict[int, Path], out_dir: Path) -> dict:
    """Fresh servers; per batch size: both at one fixed rate together, then each alone at full speed.

    A new pair of processes per trial, so one process's luck (memory layout, core, caches) stays in
    its trial instead of biasing the whole run.
    """
    servers, ports = start_servers(args.model_dir, out_dir)
    targets = {name: (servers[name].pid, ports[name]) for name in SERVERS}

    def together(i):
        return [targets]

    def one_at_a_time(i):  # alternate who goes first, so drifts in the machine's load cancel
        order = SERVERS if i % 2 else SERVERS[::-1]
        return [{name: targets[name]} for name in order]

    cells = {(load, batch): new_cells() for load in LOADS for batch in BATCHES}
    client = None
    try:
        for name, proc in servers.items():
            wait_ready(ports[name], proc)
        client = LoadClient()
        for batch in BATCHES:  # warm-up: the first requests pay for lazy imports and caches
            client.measure(targets, bodies[batch], args.concurrency, 1.0)
        for batch in BATCHES:
            measure_rounds(client, together, bodies[batch], args, args.rate, cells[("rate", batch)])
            measure_rounds(client, one_at_a_time, bodies[batch], args, 0.0, cells[("capacity", batch)])
    finally:
        if client:
            client.close()
        stop_servers(servers)
    return cells


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def cpu_per_request(cell: dict) -> float:
    return cell["cpu"] / len(cell["latencies"])


def cpu_ratio(cells: dict) -> float:
    """Monitored over bare CPU per request."""
    return cpu_per_request(cells["monitored"]) / cpu_per_request(cells["bare"])


def merge(trials: list[dict]) -> dict:
    merged = {key: new_cells() for key in trials[0]}
    for trial in trials:
        for key, cells in trial.items():
            for name, cell in cells.items():
                for field, value in cell.items():
                    merged[key][name][field] += value
    return merged


def print_table(trials: list[dict], args: argparse.Namespace) -> None:
    labels = {"rate": f"{args.rate:g}/s each, together", "capacity": f"closed loop, {args.concurrency} conn."}
    merged = merge(trials)
    print(
        f"\nPredictor: bare kserve.Model vs monitored, v1 JSON; {len(trials)} trials (fresh servers each) "
        f"x {args.rounds} rounds of {args.seconds:g}s per batch size and load\n"
    )
    print("| batch | load | server | requests/s | p50 ms | p99 ms | server CPU ms/req | CPU ratio | target |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---|")
    for batch in BATCHES:
        for load, label in labels.items():
            cells = merged[(load, batch)]
            ratio = cpu_ratio(cells)
            per_trial = sorted(cpu_ratio(t[(load, batch)]) for t in trials)
            for name in SERVERS:
                cell = cells[name]
                lat = sorted(cell["latencies"])
                if name == "bare":
                    shown, verdict = "1.000x", "baseline"
                else:
                    shown = f"{ratio:.3f}x (trials {per_trial[0]:.2f}-{per_trial[-1]:.2f})"
                    verdict = f"<= {TARGETS[batch]:.2f}x {'met' if ratio <= TARGETS[batch] else 'MISSED'}"
                print(
                    f"| {batch} | {label} | {name} | {len(lat) / cell['seconds']:.0f} "
                    f"| {percentile(lat, 0.5) * 1e3:.2f} | {percentile(lat, 0.99) * 1e3:.2f} "
                    f"| {cpu_per_request(cell) * 1e3:.3f} | {shown} | {verdict} |"
                )
    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        "\nCPU ratio: monitored/bare server CPU per request over all trials. Equal rate: both servers get "
        "the same requests at the same moments (latency counted from the scheduled send), so the ratio "
        "compares equal work. Closed loop: each server alone in turn at full speed, for its capacity. "
        f"The range of single trials shows the noise of the shared machine; load average after the run: "
        f"{load_average} on {os.cpu_count()} cores."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Bare vs monitored KServe predictor: speed and CPU.")
    parser.add_argument("--model_dir", default=str(REPO / "build/demo/model"))
    parser.add_argument("--holdout", default=str(REPO / "build/demo/holdout.parquet"))
    parser.add_argument("--concurrency", type=int, default=4, help="keep-alive connections per server")
    parser.add_argument("--rate", type=float, default=400.0, help="requests/s per server at equal rate")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per trial, batch size and load")
    parser.add_argument("--trials", type=int, default=3, help="fresh pairs of servers, one after another")
    args = parser.parse_args()
    if not (Path(args.model_dir) / "model.joblib").is_file() or not Path(args.holdout).is_file():
        print("bench: demo model or holdout data missing: run `make demo-model` first", file=sys.stderr)
        return 1
    out_dir = REPO / "build/bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    bodies = write_bodies(out_dir, Path(args.holdout))
    trials = []
    for trial in range(1, args.trials + 1):
        print(f"bench: trial {trial}/{args.trials} (server logs in {out_dir})", file=sys.stderr)
        trials.append(run_trial(args, bodies, out_dir))
    failures = [
        f for t in trials for cells in t.values() for cell in cells.values() for f in cell["failures"]
    ]
    if failures:
        print(f"bench: {len(failures)} non-200 responses, e.g. {failures[0]}", file=sys.stderr)
        return 1
    print_table(trials, args)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-bare"]:
        serve_bare(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--load"]:
        run_load_process()
    else:
        sys.exit(main())
