"""`make demo`: the whole monitoring loop on this machine, no cluster.

Starts the monitored predictor, the drift detector, Prometheus (with the alert rules rendered from the
chart by helm) and the retrain controller on loopback ports; sends clean traffic, then drifted traffic,
with ground-truth labels for part of it; prints each drift window as it closes and ends with a summary
read back from the services. KServe's own agent (its payload logger) sits in front of the predictor and
sends every request and response to the drift detector (demo/agent.py, demo/README.md). Every process
stops on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (`python demo/run_demo.py`): make `demo` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import yaml

from demo.agent import KSERVE_VERSION, expected_events
from demo.console import Console, table
from demo.processes import ProcessFailed, install_signal_handlers
from demo.scenario import (
    DRIFT_ALERT,
    PhaseRecord,
    Timeout,
    WindowWatcher,
    drifted_features,
    model_performance,
    report_paths,
    retrainer_decisions,
    retrainer_passes,
    wait_until,
)
from demo.stack import BUILD, Stack, StackSettings
from demo.traffic import DemoData, TrafficSender

# (flag, type, default, help); each flag's environment twin is DEMO_<FLAG_IN_CAPS>.
OPTIONS: list[tuple[str, type, object, str]] = [
    ("--clean-seconds", float, 30.0, "seconds of clean traffic (phase 1)"),
    ("--drift-seconds", float, 45.0, "seconds of drifted traffic (phase 2)"),
    ("--rate", float, 40.0, "inference requests per second (one row each)"),
    ("--window-size", int, 100, "rows per drift window"),
    ("--min-samples", int, 50, "rows a window needs before it is checked"),
    ("--label-share", float, 0.5, "share of requests whose ground-truth label is sent to /v1/feedback"),
    ("--alert-for", str, "15s", "`for` of every alert, set through the chart's values"),
    ("--scrape-interval", int, 2, "Prometheus scrape and rule evaluation interval, seconds"),
    ("--retrain-sustained-for", str, "15s", "the retrain controller's sustainedFor"),
    ("--retrain-interval", int, 5, "seconds between the retrain controller's passes (watch mode)"),
    ("--malignant-share", float, 0.8, "share of malignant cases in the drifted phase (held-out: ~37%%)"),
    ("--concurrency", int, 4, "client threads sending traffic"),
    ("--seed", int, 7, "random seed of the traffic"),
    ("--run-dir", Path, BUILD / "run", "logs, drift detector data, reports, Prometheus data"),
    (
        "--kubeconfig",
        str,
        None,
        "a real Kubernetes API: the retrain controller creates the Job (default: dry run)",
    ),
]


def env_name(flag: str) -> str:
    return "DEMO_" + flag.lstrip("-").replace("-", "_").upper()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make demo (python demo/run_demo.py)",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for flag, kind, default, text in OPTIONS:
        env = env_name(flag)
        value = os.environ.get(env)
        parser.add_argument(
            flag, type=kind, default=kind(value) if value else default, help=f"{text} [env {env}]"
        )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        default=os.environ.get("DEMO_KEEP_RUNNING", "") in ("1", "true", "yes"),
        help="leave the stack up after the summary until Ctrl-C, to explore Prometheus and the reports "
        "[env DEMO_KEEP_RUNNING]",
    )
    args = parser.parse_args(argv)
    for name in ("rate", "clean_seconds", "drift_seconds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.label_share <= 1 or not 0 <= args.malignant_share <= 1:
        parser.error("--label-share and --malignant-share must be between 0 and 1")
    return args


def seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(duration[:-1]) * units[duration[-1]] if duration[-1] in units else float(duration)


def rows_for(secs: float, rate: float, window: int) -> int:
    """Whole windows only, so that no window mixes two phases."""
    return max(1, round(secs * rate / window)) * window


class Demo:
    def __init__(self, args: argparse.Namespace, console: Console):
        self.args = args
        self.console = console
        self.data = DemoData.load(BUILD)
        self.rng = np.random.default_rng(args.seed)
        self.phase: PhaseRecord | None = None
        self.phases: list[PhaseRecord] = []
        self.problems: list[str] = []
        clean_rows = rows_for(args.clean_seconds, args.rate, args.window_size)
        self.settings = StackSettings(
            run_dir=args.run_dir,
            window_size=args.window_size,
            min_samples=args.min_samples,
            scrape_interval_seconds=args.scrape_interval,
            alert_for=args.alert_for,
            retrain_interval_seconds=args.retrain_interval,
            retrain_sustained_for=args.retrain_sustained_for,
            kubeconfig=args.kubeconfig,
            # Quality per phase: the rolling set of labelled predictions holds about one phase's labels.
            drift_config={
                "performance_window": max(50, int(clean_rows * args.label_share * 0.8)),
                "report_every_n_windows": 4,
                "pending_ttl_seconds": 10,
            },
        )

    # --- output -----------------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.console.line(text)

    def problem(self, text: str) -> None:
        """Something the demo should have shown did not happen: said now, and the exit code is 1."""
        self.problems.append(text)
        self.say(f"  PROBLEM: {text}")

    def on_window(self, result: dict) -> None:
        if self.phase is not None:
            self.phase.windows.append(result)
        w = result["window"]
        names = drifted_features(result)
        flag = "DATASET DRIFT" if result.get("dataset_drift") else "no dataset drift"
        shown = ", ".join(names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else "")
        total = len(result.get("columns", [])) or "?"
        self.say(
            f"  window {w['seq']:>3} closed ({w['rows']} rows): drift share {result['drift_share']:.2f} "
            f"({result['n_drifted']}/{total} features)  {flag}" + (f"  [{shown}]" if names else "")
        )

    # --- the run ----------------------------------------------------------------------------------
    def run(self) -> int:
        a = self.args
        self.say("kserve-model-monitoring demo: the whole monitoring loop on this machine, no cluster")
        self.say(
            "NOTE: not a cluster: no kubelet and no container images; every component runs as a process\n"
            "      from this checkout, on local ports."
        )
        started = time.monotonic()
        with Stack(self.settings, on_step=lambda text: self.say(f"- {text}")) as stack:
            self.stack = stack
            self.say(f"stack up in {time.monotonic() - started:.0f}s (logs: {stack.logs})")
            self.say(
                f"  inference:   {stack.agent_url}/v1/models/{stack.model_name}:predict  (KServe's agent "
                f"{KSERVE_VERSION} in front of the predictor, logging to {stack.agent_config().log_url})"
            )
            self.say(f"  drift API:   {stack.drift_url}/api/v1/drift   reports: {stack.drift_url}/reports/")
            self.say(
                f"  Prometheus:  {stack.prometheus_url}/alerts   "
                f"({len(stack.alerts)} alert rules rendered from the chart)"
            )
            mode = (
                "creates Jobs via " + a.kubeconfig
                if a.kubeconfig
                else "dry run: prints the Job it would create"
            )
            self.say(f"  retrain controller: watch mode every {a.retrain_interval}s, {mode}")
            watcher = WindowWatcher(stack, self.on_window).start()
            sender = self.sender = TrafficSender(
                stack.agent_url, stack.drift_url, stack.model_name, self.data.features, a.concurrency
            )
            try:
                self.run_phase(
                    stack,
                    watcher,
                    sender,
                    "clean",
                    "held-out rows, sampled with replacement",
                    self.data.clean(rows_for(a.clean_seconds, a.rate, a.window_size), self.rng),
                )
                self.settle_clean(stack)
                self.run_phase(
                    stack,
                    watcher,
                    sender,
                    "drifted",
                    self.data.drift_description(),
                    self.data.drifted(
                        rows_for(a.drift_seconds, a.rate, a.window_size), self.rng, a.malignant_share
                    ),
                )
                self.await_drift_response(stack)
            finally:
                watcher.stop()
            self.print_summary(stack, time.monotonic() - started)
            if a.keep_running:
                self.say("stack still running (--keep-running): press Ctrl-C to stop every process")
                while True:
                    time.sleep(3600)
        if self.problems:
            self.say(f"demo incomplete: {len(self.problems)} problem(s), see PROBLEM lines and the logs")
            return 1
        return 0

    def run_phase(self, stack, watcher, sender, name, description, frame) -> PhaseRecord:
        a = self.args
        phase = PhaseRecord(name=name, description=description, rows=len(frame), started=time.time())
        self.phase = phase
        self.phases.append(phase)
        first_seq = watcher.last_seq()
        self.say(
            f"\nphase {len(self.phases)}: {name} traffic ({description}), {len(frame)} rows at {a.rate:g}/s"
        )
        bar = self.console.progress(f"{name:8}", len(frame))
        result = sender.send(frame, a.rate, a.label_share, self.rng, on_progress=bar.advance)
        bar.finish()
        phase.failed_requests = result.failed_requests
        phase.labels_matched = result.labels_accepted
        self.say(
            f"  sent {result.ok_requests} requests ({result.failed_requests} failed); "
            f"ground truth for {result.labels_sent}, matched to logged predictions: {result.labels_accepted}"
        )
        if result.failed_requests:
            self.problem(f"{result.failed_requests} requests failed, first errors: {result.errors[:2]}")
        stack.wait_agent_delivered(self.expected_events(stack))
        expected = len(frame) // a.window_size
        try:
            wait_until(
                lambda: watcher.poll() is not None and watcher.last_seq() - first_seq >= expected,
                timeout=60,
                what=f"{expected} drift checks of the {name} phase",
            )
        except Timeout as err:
            self.problem(str(err))
        return phase

    def settle_clean(self, stack) -> None:
        """Give a false positive every chance to fire: wait out `for` after the last clean window."""
        a, phase = self.args, self.phase
        hold = seconds(a.alert_for) + 2 * a.scrape_interval
        already = time.time() - phase.started
        if already < hold:
            time.sleep(hold - already)
        time.sleep(2 * a.scrape_interval)  # labels scraped, rules evaluated
        self.close_phase(stack)

    def await_drift_response(self, stack) -> None:
        """Drift: wait for the alert to fire and the retrain controller to decide (both read back)."""
        a = self.args
        budget = seconds(a.alert_for) + 6 * a.scrape_interval + 30
        try:
            wait_until(
                lambda: DRIFT_ALERT in stack.alerts_by_state()["firing"], budget, f"{DRIFT_ALERT} to fire"
            )
            self.say(f"  Prometheus: {DRIFT_ALERT} is FIRING")
        except Timeout as err:
            self.problem(str(err))
        since = self.phase.started
        budget = seconds(a.retrain_sustained_for) + 3 * a.retrain_interval + 30
        try:
            wait_until(
                lambda: any(d["action"] == "create" for d in retrainer_decisions(stack, since)),
                budget,
                "the retrain controller's decision",
            )
            decision = next(d for d in retrainer_decisions(stack, since) if d["action"] == "create")
            self.say(
                f"  retrain controller: create {decision['job']} "
                f"({decision.get('outcome')}): {decision['reason']}"
            )
        except Timeout as err:
            self.problem(str(err))
        time.sleep(2 * a.scrape_interval)
        self.close_phase(stack)

    def close_phase(self, stack) -> None:
        phase = self.phase
        phase.ended = time.time()
        states = stack.alerts_by_state()
        phase.alerts_firing = sorted(states.get("firing", ()))
        phase.alerts_pending = sorted(states.get("pending", ()))
        phase.decisions = retrainer_decisions(stack, phase.started, phase.ended)
        phase.passes = len(retrainer_passes(stack, phase.started))
        phase.performance = model_performance(stack)

    # --- summary ----------------------------------------------------------------------------------
    def print_summary(self, stack, elapsed: float) -> None:
        for phase in self.phases:  # reports are made in the background: look as late as possible
            phase.reports = report_paths(stack, phase.windows)
        rows = [
            ["traffic", *[f"{p.rows} rows: {p.description}" for p in self.phases]],
            ["windows checked", *[str(len(p.windows)) for p in self.phases]],
            ["drift share (last / max)", *[share_cell(p) for p in self.phases]],
            [
                "dataset drift windows",
                *[
                    f"{sum(bool(w['dataset_drift']) for w in p.windows)} of {len(p.windows)}"
                    for p in self.phases
                ],
            ],
            ["drifted features (last window)", *[features_cell(p) for p in self.phases]],
            ["multivariate drift (PCA)", *[multivariate_cell(p) for p in self.phases]],
            ["alerts firing (Prometheus API)", *[", ".join(p.alerts_firing) or "none" for p in self.phases]],
            ["retrain controller", *[decision_cell(p, stack) for p in self.phases]],
            ["accuracy estimated, no labels (CBPE)", *[estimated_accuracy_cell(p) for p in self.phases]],
            ["model quality (feedback)", *[quality_cell(p) for p in self.phases]],
            ["Evidently reports", *[reports_cell(p) for p in self.phases]],
        ]
        self.say("\nsummary")
        self.say(table(["", *[f"phase {i + 1}: {p.name}" for i, p in enumerate(self.phases)]], rows))
        self.say("")
        for line in self.delivery_lines(stack):
            self.say(line)
        job = first_manifest(stack.retrainer_jobs)
        if job:
            container = job["spec"]["template"]["spec"]["containers"][0]
            self.say(
                f"the Job the retrain controller would create: {job['metadata']['namespace']}/"
                f"{job['metadata']['name']} (image {container.get('image')})\n"
                f"  manifests: {stack.retrainer_jobs}"
            )
        self.say(
            f"Evidently reports in {stack.reports_dir} (served at {stack.drift_url}/reports/ while running)"
        )
        self.say(f"logs: {stack.logs}")
        self.say(f"demo finished in {elapsed:.0f}s")

    def expected_events(self, stack) -> int:
        """Events the agent should have logged for the calls sent so far (its mode, 200s or not)."""
        calls = self.sender.calls
        return expected_events(stack.deployment.logger_mode, calls.answered, calls.answered_200)

    def delivery_lines(self, stack) -> list[str]:
        """What went through KServe's agent and what the drift detector made of it, each counted where
        it is known: the calls by the traffic client, the events by the detector (the agent counts none)."""
        calls, mode = self.sender.calls, stack.deployment.logger_mode
        expected = expected_events(mode, calls.answered, calls.answered_200)
        counts = stack.detector_events()
        received = stack.events_received(counts)
        accepted = {kind: counts.get((kind, "accepted"), 0) for kind in ("request", "response")}
        ignored = sum(counts.get((kind, "ignored"), 0) for kind in ("request", "response"))
        rejected = received - sum(accepted.values()) - ignored
        if received != expected or rejected:
            self.problem(f"{expected} events to log, the detector received {received} ({rejected} rejected)")
        missing = max(expected - received, 0)
        return [
            f"KServe's agent {KSERVE_VERSION} (payload logger, log mode {mode}), counted by the client:",
            f"  {calls.answered} inference calls went through it, {calls.answered_200} answered 200 -> "
            f"{expected} events to log",
            "  (the agent itself exports no count: it has no metrics endpoint and its log is sampled)",
            "drift detector, from its drift_detector_events_total:",
            f"  received {received} events: {accepted['request']} request and {accepted['response']} "
            f"response events accepted, {ignored} ignored, {rejected} rejected; {missing} never arrived",
        ]


def first_manifest(path: Path) -> dict | None:
    """The first Job manifest of the retrain controller's dry-run output, if any."""
    try:
        return next((doc for doc in yaml.safe_load_all(path.read_text()) if doc), None)
    except (OSError, yaml.YAMLError):
        return None


def share_cell(p: PhaseRecord) -> str:
    if not p.windows:
        return "no window checked"
    shares = [w["drift_share"] for w in p.windows]
    return f"{shares[-1]:.2f} / {max(shares):.2f}"


def features_cell(p: PhaseRecord) -> str:
    if not p.windows:
        return "-"
    last = p.windows[-1]
    names = drifted_features(last)
    total = len(last.get("columns", []))
    if not names:
        return f"0 of {total}"
    shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return f"{len(names)} of {total}: {shown}"


def multivariate_cell(p: PhaseRecord) -> str:
    """Windows whose reconstruction error left the reference band, and the last error against it."""
    checked = [w["multivariate"] for w in p.windows if w.get("multivariate")]
    if not checked:
        return "off"
    last = checked[-1]
    drifted = sum(bool(m["drift_detected"]) for m in checked)
    band = f"{last['lower_threshold']:.2f}-{last['upper_threshold']:.2f}"
    return f"{drifted} of {len(checked)} windows; last error {last['value']:.2f} (band {band})"


def estimated_accuracy_cell(p: PhaseRecord) -> str:
    """The last window's label-free accuracy estimate; the row below it has the accuracy from feedback.

    The result's own `realized` value is left out: it covers the labels that had arrived when the window
    was checked, which in the demo trail the traffic by about a window.
    """
    estimates = [w["estimated_performance"] for w in p.windows if w.get("estimated_performance")]
    if not estimates:
        return "off"
    accuracy = estimates[-1]["metrics"]["accuracy"]
    text = f"{accuracy['value']:.3f} (last window)"
    if accuracy["alert"]:
        text += f", below the reference band ({accuracy['lower_threshold']:.3f})"
    return text


def decision_cell(p: PhaseRecord, stack: Stack) -> str:
    creates = [d for d in p.decisions if d.get("action") == "create"]
    if creates:
        d = creates[0]
        verb = "would create (dry run)" if d.get("outcome") == "dry_run" else d.get("outcome", "created")
        text = f"{verb} Job {d['job']} in namespace training: {d['reason']}"
        later = [x["reason"] for x in p.decisions[p.decisions.index(d) + 1 :] if x.get("action") != "create"]
        if later:  # only a real Kubernetes API remembers the Job: the next passes hold back
            text += f"; then {len(later)} passes skipped it ({', '.join(sorted(set(later)))})"
        return text
    skips = [d for d in p.decisions if d.get("action") != "create"]
    if skips:
        return f"skip: {skips[-1]['reason']} ({p.passes} passes)"
    return f"no retrain: no model over the threshold ({p.passes} passes)"


def quality_cell(p: PhaseRecord) -> str:
    if not p.performance:
        return f"no data ({p.labels_matched} labels matched)"
    keys = [k for k in ("accuracy", "f1", "roc_auc") if k in p.performance]
    return ", ".join(f"{k} {p.performance[k]:.3f}" for k in keys) + f" ({p.labels_matched} labels)"


def reports_cell(p: PhaseRecord) -> str:
    if not p.reports:
        return "none yet (made in the background)"
    shown = [r.name for r in p.reports[-2:]]
    return "\n".join(shown) + (f"\n(+{len(p.reports) - 2} more)" if len(p.reports) > 2 else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    console = Console()
    try:
        return Demo(args, console).run()
    except KeyboardInterrupt:
        console.line("\ninterrupted: every process the demo started has been stopped")
        return 130
    except (ProcessFailed, FileNotFoundError, RuntimeError) as err:
        console.line(f"\ndemo failed: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
