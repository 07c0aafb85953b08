"""Inference through KServe's real agent: logging off, to a null sink, and to the drift detector.

Usage (after `make setup demo-model`): python images/drift-detector/bench/bench_agent.py [--help]

The monitored predictor (build/demo/model) runs behind KServe's own agent (.tools/bin/kserve-agent,
built from github.com/kserve/kserve v0.20.0) in four configurations and a control:
  off       the agent proxies, no --log-url
  null      the agent logs every request and response to a null sink: a bare ASGI app on the drift
            detector's own server stack (uvicorn, uvloop, httptools) that counts and answers 200 with
            no body. What the agent's logging costs by itself, and the floor for the sink's CPU.
  detector  the agent logs to the drift detector with its defaults (fsync `interval`: an event is
            acknowledged once written, fdatasync'ed within 200 ms; reports off, as Evidently runs in its
            own process off the request path)
  always    the same with fsync `always`: every event acknowledged after an fdatasync (the cost of that
            durability, shown beside the default's)
  busy      a control: the null sink spending --busy-us of CPU on each event (a busy loop), what any
            sink with that cost does to inference, whatever it does with the CPU
Placement (--placement): `shared` (the default) lets every process use every CPU, so on a small machine
the sink's CPU comes straight out of inference; `split` runs the model's pod, the predictor and the
agent, on half of the CPUs and the rest (the sinks, the load generator) on the other half, as in a
cluster where the drift detector is a Deployment of its own (on 2 vCPUs it does not isolate them: see
the drift detector README).
Loads: open loop at fixed request rates (latency counted from the scheduled send, so a path that
falls behind shows it), and closed loop with 8 and 32 connections. The agent binds the abstract
socket @/kserve/agent.sock, one per network namespace, so the configurations take turns (the agent
is restarted between them) and the whole bench runs in a network namespace of its own (it re-runs
itself under `unshare --net` as root). Rounds rotate the configurations' order, so every drift in the
shared machine's load hits each alike. Events lost: events the sink counted after the agent drained
vs 2 x the requests answered 200. CPU: each process's user + system time from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
AGENT = REPO / ".tools" / "bin" / "kserve-agent"
MODEL = "demo"
CONFIGS = ("off", "null", "busy", "detector", "always")
DETECTORS = {"detector": [], "always": ["--fsync", "always"]}  # extra flags of each detector config
LABELS = {
    "detector": "detector (defaults)",
    "always": "detector, fsync always",
    "busy": "null + {busy_us:g} us CPU/event",
}
BUSY_NOTE = (
    "null + {busy_us:g} us CPU/event: the null sink spending that CPU on each event first (a control: what "
    "any sink with that cost does to inference). "
)
PLACEMENTS = {
    "split": "the predictor and the agent on half of the CPUs, the sinks and the load on the other half",
    "shared": "every process on every CPU",
}
NETNS_MARK = "BENCH_AGENT_NETNS"
# Targets of issue 12 for the detector path vs the null sink, at every load the null sink sustains.
THROUGHPUT_TARGET, P99_TARGET, CPU_TARGET = 0.9, 1.2, 2.0
SUSTAINED = 0.9  # an open-loop rate is sustained when at least this share of it is served
Cpus = set[int] | None  # the CPUs a process may run on; None: any


# --- the null sink ----------------------------------------------------------------------------------
def serve_null_sink(port: int, busy_us: float = 0.0) -> None:
    """Counts POSTs, answers each 200 with no body; GET /count reads the count. busy_us: CPU spent on
    each POST first (a busy loop on the thread's CPU clock)."""
    import uvicorn

    received = 0

    async def app(scope, receive, send):
        nonlocal received
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = b""
        if scope["method"] == "POST":
            received += 1
            if busy_us:  # the plain null sink reads no clock: its CPU is the baseline
                until = time.thread_time() + busy_us / 1e6
                while time.thread_time() < until:
                    pass
        elif scope["path"] == "/count":
            body = str(received).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(body))],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                log_level="warning", lifespan="off", proxy_headers=False, server_header=False,
                date_header=False)  # fmt: skip


# --- the load generator (its own process, kept alive between measurements) --------------------------
def request_bytes(port: int, body: bytes, request_id: str) -> bytes:
    return (
        f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nX-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def exchange(reader, writer, request: bytes) -> bool:
    """One request and its whole response on a keep-alive connection; True on 200."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200")


class Load:
    """Counts, latencies and the clock of one measurement."""

    def __init__(self, port: int, bodies: list[bytes], tag: str):
        self.port, self.bodies, self.tag = port, bodies, tag
        self.sent = self.ok = 0
        self.latencies: list[float] = []
        self.started = self.finished = 0.0

    def next_request(self) -> bytes:
        self.sent += 1
        return request_bytes(self.port, self.bodies[self.sent % len(self.bodies)], f"{self.tag}-{self.sent}")

    async def call(self, reader, writer, since: float) -> None:
        ok = await exchange(reader, writer, self.next_request())
        self.finished = time.perf_counter()
        self.ok += ok
        self.latencies.append(self.finished - since)

    def result(self, connections: int) -> dict:
        return {"sent": self.sent, "ok": self.ok, "seconds": self.finished - self.started,
                "latencies": self.latencies, "connections": connections}  # fmt: skip


async def closed_loop(load: Load, connections: int, seconds: float) -> dict:
    load.started = time.perf_counter()
    deadline = load.started + seconds

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
        while time.perf_counter() < deadline:
            await load.call(reader, writer, time.perf_counter())
        writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return load.result(connections)


async def open_loop(load: Load, rate: float, seconds: float, connections: int = 64) -> dict:
    """`rate` requests/s on a fixed schedule over a pool of connections; latency from the schedule."""
    queue: asyncio.Queue = asyncio.Queue()

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
        while (scheduled := await queue.get()) is not None:
            await load.call(reader, writer, scheduled)
        writer.close()

    clients = [asyncio.create_task(client()) for _ in range(connections)]
    load.started = time.perf_counter()
    for i in range(round(rate * seconds)):
        scheduled = load.started + i / rate
        if (delay := scheduled - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(scheduled)
    for _ in clients:
        queue.put_nowait(None)
    await asyncio.gather(*clients)
    return load.result(connections)


def run_load_process() -> None:
    """One measurement per stdin line: `<port> <bodies file> <tag> <rate or 0> <connections> <seconds>`."""
    import uvloop

    for line in sys.stdin:
        port, bodies_file, tag, rate, connections, seconds = line.split()
        bodies = json.loads(Path(bodies_file).read_text())
        load = Load(int(port), [b.encode() for b in bodies], tag)
        if float(rate) > 0:
            result = uvloop.run(open_loop(load, float(rate), float(seconds)))
        else:
            result = uvloop.run(closed_loop(load, int(connections), float(seconds)))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class LoadClient:
    def __init__(self, cpus: Cpus):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--load"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            preexec_fn=pinned(cpus),
        )  # fmt: skip

    def run(self, port: int, bodies: Path, tag: str, rate: float, connections: int, seconds: float) -> dict:
        self.proc.stdin.write(f"{port} {bodies} {tag} {rate} {connections} {seconds}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# --- processes --------------------------------------------------------------------------------------
def placement(name: str) -> dict[str, Cpus]:
    """The CPUs of the model's pod (predictor, agent) and of the rest (sinks, load); None: any CPU."""
    if name == "shared":
        return {"model": None, "rest": None}
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise SystemExit("bench: --placement split needs at least 2 CPUs (use --placement shared)")
    half = len(allowed) // 2
    return {"model": set(allowed[:half]), "rest": set(allowed[half:])}


def pinned(cpus: Cpus):
    """A preexec_fn that pins the child to cpus before it starts any thread (None: no pinning)."""
    return None if cpus is None else lambda: os.sched_setaffinity(0, cpus)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tcp_active_opens() -> int:
    """Connections opened in this network namespace (ours alone: the bench runs in its own)."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Tcp:")
    ]
    return int(lines[1][lines[0].index("ActiveOpens")])


def http_get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


class Process:
    """A child process in its own process group, its output in a log file."""

    def __init__(self, name: str, command: list[str], log_dir: Path, cpus: Cpus, env=None):
        self.name = name
        with open(log_dir / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=pinned(cpus),
            )  # fmt: skip

    def wait_until(self, ready, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: {self.name} exited with {self.proc.returncode} (see its log)")
            if ready():
                return
            time.sleep(0.1)
        raise SystemExit(f"bench: {self.name} not {what} after {timeout:.0f}s")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Sinks:
    """The predictor, the null sinks and the drift detectors: started once, shared by every round."""

    def __init__(self, args: argparse.Namespace, out: Path, cpus: dict[str, Cpus]):
        detectors = [name for name in DETECTORS if name in args.configs]
        nulls = {"null": 0.0, **({"busy": args.busy_us} if "busy" in args.configs else {})}
        self.ports = {name: free_port() for name in ("predictor", *nulls, *detectors)}
        p = self.ports
        predictor = [
            sys.executable, "-m", "monitored_predictor", "--model_name", MODEL, "--model_dir", args.model_dir,
            "--http_host", "127.0.0.1", "--http_port", str(p["predictor"]), "--enable_grpc", "false",
            "--workers", "1",
        ]  # fmt: skip
        (out / "detector.yaml").write_text(json.dumps({"http_host": "127.0.0.1", "reports_enabled": False}))
        self.procs = {"predictor": Process("predictor", predictor, out, cpus["model"])}
        for name, busy_us in nulls.items():
            sink = [sys.executable, __file__, "--null-sink", str(p[name]), str(busy_us)]
            self.procs[name] = Process(f"{name}-sink", sink, out, cpus["rest"])
        for name in detectors:
            shutil.rmtree(out / f"{name}-data", ignore_errors=True)
            detector = [
                sys.executable, "-m", "drift_detector", "--reference", args.reference, "--model-name", MODEL,
                "--http-port", str(p[name]), "--data-dir", str(out / f"{name}-data"),
                "--reports-dir", str(out / f"{name}-reports"), "--config", str(out / "detector.yaml"),
                *DETECTORS[name],
            ]  # fmt: skip
            self.procs[name] = Process(f"drift-{name}", detector, out, cpus["rest"])
        ready = {"predictor": f"/v2/models/{MODEL}/ready", **{name: "/count" for name in nulls}}
        for name, proc in self.procs.items():
            url = f"http://127.0.0.1:{p[name]}{ready.get(name, '/readyz')}"
            proc.wait_until(lambda url=url: http_get(url)[0] == 200, "ready")

    def events(self, config: str) -> float:
        """Events the sink took: a null sink's count, the detector's accepted requests and responses."""
        if config not in DETECTORS:
            return float(http_get(f"http://127.0.0.1:{self.ports[config]}/count")[1] or "nan")
        status, text = http_get(f"http://127.0.0.1:{self.ports[config]}/metrics")
        total = 0.0
        for line in text.splitlines():
            accepted = line.startswith("drift_detector_events_total{") and 'outcome="accepted"' in line
            if accepted and ('type="request"' in line or 'type="response"' in line):
                total += float(line.rsplit(" ", 1)[1])
        return total if status == 200 else float("nan")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


class Agent:
    """KServe's agent in front of the predictor, logging to `sink_port` (None: logging off)."""

    def __init__(self, predictor_port: int, sink_port: int | None, out: Path, tag: str, cpus: Cpus):
        self.port = free_port()
        command = [str(AGENT), "--port", str(self.port), "--component-port", str(predictor_port)]
        if sink_port is not None:
            command += [
                "--log-url", f"http://127.0.0.1:{sink_port}/", "--log-mode", "all",
                "--inference-service", MODEL, "--namespace", "bench", "--endpoint", "default",
                "--component", "predictor", "--metadata-headers", "X-Request-Id",
            ]  # fmt: skip
        env = {**os.environ, "SERVING_READINESS_PROBE": ""}
        self.process = Process(f"agent-{tag}", command, out, cpus, env)
        self.process.wait_until(lambda: port_open(self.port), "listening", timeout=30)

    def stop(self) -> None:
        """SIGKILL: its queue is drained by now, and SIGTERM would sleep 30 s (Knative drain)."""
        self.process.stop(signal.SIGKILL)


def wait_drained(sinks: Sinks, config: str, expected: float, timeout: float) -> float:
    """The sink's count once it reached `expected` or stopped moving for 2 s."""
    deadline = time.monotonic() + timeout
    last, moved = sinks.events(config), time.monotonic()
    while last < expected and time.monotonic() < deadline and time.monotonic() - moved < 2:
        time.sleep(0.1)
        now = sinks.events(config)
        if now != last:
            last, moved = now, time.monotonic()
    return last


# --- one measurement --------------------------------------------------------------------------------
def measure(client, sinks, agent, config, bodies, load, args) -> dict:
    rate, connections = load
    sink = None if config == "off" else sinks.procs[config]
    procs = {"agent": agent.process, "predictor": sinks.procs["predictor"], "sink": sink}
    before_cpu = {name: p.cpu() for name, p in procs.items() if p}
    before_events = sinks.events(config) if sink else 0.0
    before_opens = tcp_active_opens()
    tag = f"{config}-{rate:g}-{connections}-{time.monotonic_ns()}"
    result = client.run(agent.port, bodies, tag, rate, connections, args.seconds)
    if sink:
        expected = before_events + 2 * result["ok"]
        result["events"] = wait_drained(sinks, config, expected, args.drain_timeout) - before_events
        result["lost"] = 2 * result["ok"] - result["events"]
    result["cpu"] = {name: p.cpu() - before_cpu[name] for name, p in procs.items() if p}
    result["opens"] = tcp_active_opens() - before_opens - result["connections"]
    return result


def loads_of(args: argparse.Namespace) -> list[tuple[float, int]]:
    """(rate, 0) open loop at `rate` requests/s; (0, n) closed loop with n connections."""
    return [(float(r), 0) for r in args.rates.split(",")] + [(0.0, int(c)) for c in args.closed.split(",")]


def run_rounds(args: argparse.Namespace, out: Path, bodies: Path) -> dict:
    cells: dict = {}
    cpus = placement(args.placement)
    sinks = Sinks(args, out, cpus)
    client = LoadClient(cpus["rest"])
    try:
        for rnd in range(args.rounds):
            configs = args.configs
            shift = rnd % len(configs)
            for config in configs[shift:] + configs[:shift]:
                print(f"bench: round {rnd + 1}/{args.rounds}: {config}", file=sys.stderr, flush=True)
                sink_port = None if config == "off" else sinks.ports[config]
                agent = Agent(sinks.ports["predictor"], sink_port, out, config, cpus["model"])
                try:
                    client.run(agent.port, bodies, f"warm-{config}", 0, 4, 1.0)  # warm-up, drained below
                    if config != "off":
                        wait_drained(sinks, config, float("inf"), args.drain_timeout)
                    for load in loads_of(args):
                        cell = measure(client, sinks, agent, config, bodies, load, args)
                        cells.setdefault((load, config), []).append(cell)
                finally:
                    agent.stop()
    finally:
        client.close()
        sinks.stop()
    return cells


# --- the table --------------------------------------------------------------------------------------
def write_rounds(path: Path, cells: dict) -> None:
    """Every measurement, one per round, without its latencies: to read the rounds' spread later."""
    rows = [
        {"load": load_label(load), "config": config, "round": n + 1,
         "p50_ms": percentile(t["latencies"], 0.5) * 1e3, "p99_ms": percentile(t["latencies"], 0.99) * 1e3,
         **{key: value for key, value in t.items() if key != "latencies"}}
        for (load, config), trials in cells.items() for n, t in enumerate(trials)
    ]  # fmt: skip
    path.write_text(json.dumps(rows, indent=1))
    print(f"bench: every round's measurements in {path}", file=sys.stderr)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summarize(trials: list[dict]) -> dict:
    """Pooled over rounds: throughput, latency percentiles, lost events, CPU per request and event."""
    ok = sum(t["ok"] for t in trials)
    latencies = [x for t in trials for x in t["latencies"]]
    per_round = sorted(t["ok"] / t["seconds"] for t in trials)
    events = sum(t.get("events", 0) for t in trials)
    sink_cpu = sum(t["cpu"].get("sink", 0.0) for t in trials)
    return {
        "rps": ok / sum(t["seconds"] for t in trials),
        "rps_range": (per_round[0], per_round[-1]),
        "p50": percentile(latencies, 0.5) * 1e3,
        "p99": percentile(latencies, 0.99) * 1e3,
        "failed": sum(t["sent"] - t["ok"] for t in trials),
        "lost": sum(t.get("lost", 0) for t in trials),
        "sink_us_per_event": sink_cpu / events * 1e6 if events else float("nan"),
        "agent_us_per_request": sum(t["cpu"]["agent"] for t in trials) / ok * 1e6,
        "opens_per_request": sum(t["opens"] for t in trials) / ok,
        "offered": trials[0]["sent"] / (trials[0]["seconds"] or 1),
    }


def ratio(s: dict, null: dict, key: str) -> str:
    return f"{s[key] / null[key]:.2f}x"


def load_label(load: tuple[float, int]) -> str:
    rate, connections = load
    return f"open {rate:g}/s" if rate else f"closed {connections} conn."


def verdicts(load: tuple[float, int], s: dict, null: dict) -> tuple[str, bool | None]:
    """The detector row's verdict against the null sink's, or why no target applies."""
    rate, _ = load
    if rate and null["rps"] < SUSTAINED * rate:
        return "n/a: the null-sink path does not sustain this rate", None
    checks = {
        f"rps >= {THROUGHPUT_TARGET}x": s["rps"] >= THROUGHPUT_TARGET * null["rps"],
        f"p99 <= {P99_TARGET}x": s["p99"] <= P99_TARGET * null["p99"],
        "0 lost": s["lost"] == 0 and s["failed"] == 0,
        f"CPU/event <= {CPU_TARGET}x": s["sink_us_per_event"] <= CPU_TARGET * null["sink_us_per_event"],
    }
    missed = [name for name, ok in checks.items() if not ok]
    return ("met" if not missed else "MISSED: " + ", ".join(missed)), not missed


def print_table(cells: dict, args: argparse.Namespace) -> None:
    print(
        f"\nInference through KServe's agent (v0.20.0): monitored predictor, v1 JSON, batch 1; {args.rounds} "
        f"rounds of {args.seconds:g} s per load and configuration, configurations interleaved; "
        f"placement {args.placement}: {PLACEMENTS[args.placement]}\n"
    )
    print(
        "| load | logging | req/s (rounds) | vs null | p50 ms | p99 ms | p99 vs null | events lost "
        "| sink CPU us/event | vs null | agent CPU us/req | new TCP conn./req | detector target |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for load in loads_of(args):
        summary = {config: summarize(cells[(load, config)]) for config in args.configs}
        null = summary["null"]
        for config in args.configs:
            s = summary[config]
            lo, hi = s["rps_range"]
            logging = config != "off"
            lost = f"{s['lost']:.0f}" if logging else ""
            sink = f"{s['sink_us_per_event']:.0f}" if logging else ""
            verdict = verdicts(load, s, null)[0] if config in DETECTORS else ""
            label = LABELS.get(config, config).format(busy_us=args.busy_us)
            print(
                f"| {load_label(load)} | {label} | {s['rps']:.0f} ({lo:.0f}-{hi:.0f}) "
                f"| {ratio(s, null, 'rps')} | {s['p50']:.1f} | {s['p99']:.1f} | {ratio(s, null, 'p99')} "
                f"| {lost} | {sink} | {ratio(s, null, 'sink_us_per_event') if logging else ''} "
                f"| {s['agent_us_per_request']:.0f} | {s['opens_per_request']:.3f} | {verdict} |"
            )
    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        "\nnull: a bare ASGI app on the detector's server stack answering 200 with no body (the agent's own "
        "logging cost, and the floor for the sink's CPU per event). "
        + (BUSY_NOTE.format(busy_us=args.busy_us) if "busy" in args.configs else "")
        + "Events lost: 2 x requests answered 200 "
        "minus events the sink took once the agent had drained. New TCP connections: opened in the "
        "bench's own network namespace per request, the load client's excluded. Latency of open loads "
        "counts from the scheduled send. A target applies where the null-sink path serves at least "
        f"{SUSTAINED:.0%} of the offered rate. Load average after the run: {load_average} on "
        f"{os.cpu_count()} cores."
    )


# --- main ---------------------------------------------------------------------------------------------
def in_own_netns(argv: list[str]) -> int | None:
    """Re-run this bench in a fresh network namespace (root), so its agent has the socket to itself."""
    if os.environ.get(NETNS_MARK) == "1":
        return None
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        print("bench: needs root with unshare and ip (one agent per network namespace)", file=sys.stderr)
        return 1
    script = 'ip link set lo up && exec "$@"'
    command = ["unshare", "--net", "sh", "-c", script, "sh", sys.executable, __file__, *argv]
    return subprocess.run(command, env={**os.environ, NETNS_MARK: "1"}).returncode


def write_bodies(out: Path, holdout: str) -> Path:
    import orjson
    import pandas as pd

    rows = pd.read_parquet(holdout).drop(columns="target").to_numpy().tolist()
    path = out / "agent-bodies.json"
    path.write_text(json.dumps([orjson.dumps({"instances": [row]}).decode() for row in rows]))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Inference through KServe's agent: logging off, null sink, two drift detectors."
    )
    parser.add_argument("--model_dir", default=str(REPO / "build/demo/model"))
    parser.add_argument("--reference", default=str(REPO / "build/demo/reference.parquet"))
    parser.add_argument("--holdout", default=str(REPO / "build/demo/holdout.parquet"))
    parser.add_argument("--rates", default="50,100,200", help="open-loop request rates, comma-separated")
    parser.add_argument("--closed", default="8,32", help="closed-loop connection counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every configuration once")
    parser.add_argument(
        "--placement", choices=sorted(PLACEMENTS), default="shared", help="CPUs of the model pod vs the rest"
    )
    parser.add_argument("--busy-us", type=float, default=80.0, help="CPU the busy null sink spends per event")
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        type=lambda text: tuple(text.split(",")),
        help=f"configurations, comma-separated, null among them (the baseline): {', '.join(CONFIGS)}",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=60.0, help="longest wait for the agent's queue"
    )
    args = parser.parse_args()
    if "null" not in args.configs or not set(args.configs) <= set(CONFIGS):
        parser.error(f"--configs: a comma-separated subset of {', '.join(CONFIGS)} with null among them")
    for path in (AGENT, Path(args.model_dir) / "model.joblib", Path(args.reference), Path(args.holdout)):
        if not path.exists():
            print(f"bench: {path} missing: run `make setup demo-model` first", file=sys.stderr)
            return 1
    if (code := in_own_netns(sys.argv[1:])) is not None:
        return code
    out = REPO / "build/bench"
    out.mkdir(parents=True, exist_ok=True)
    print(f"bench: logs in {out}", file=sys.stderr)
    cells = run_rounds(args, out, write_bodies(out, args.holdout))
    write_rounds(out / "agent-rounds.json", cells)
    print_table(cells, args)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--null-sink"]:
        serve_null_sink(int(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1:2] == ["--load"]:
        run_load_process()
    else:
        sys.exit(main())
