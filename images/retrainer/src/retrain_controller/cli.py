"""Command line: `check` (one pass, for the CronJob) and `watch` (repeat, for the local demo).

Every flag has an environment-variable twin; precedence is flag > environment > config file > default.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from retrain_controller import __version__
from retrain_controller.config import ConfigError, Settings, load_settings
from retrain_controller.controller import (
    EXIT_CONFIG,
    EventLog,
    one_pass_exit_code,
    run_pass,
)
from retrain_controller.jobstore import (
    EmptyJobStore,
    JobStore,
    JobStoreError,
    KubeJobStore,
    LazyJobStore,
    load_kube_client_config,
)
from retrain_controller.prometheus import DriftSource

ENV_PREFIX = "RETRAINER_"


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    help: str
    key: str | None = None  # the config key it overrides; None for CLI-only options
    is_bool: bool = False


OPTIONS = [
    Option("--config", "RETRAINER_CONFIG", "YAML config file (the chart mounts it from a ConfigMap)"),
    Option("--prometheus-url", "RETRAINER_PROMETHEUS_URL", "Prometheus base URL", "prometheus.url"),
    Option(
        "--bearer-token-file",
        "RETRAINER_BEARER_TOKEN_FILE",
        "file holding a bearer token for Prometheus",
        "prometheus.bearerTokenFile",
    ),
    Option(
        "--ca-file",
        "RETRAINER_CA_FILE",
        "CA bundle to verify Prometheus's TLS certificate",
        "prometheus.caFile",
    ),
    Option(
        "--insecure-skip-verify",
        "RETRAINER_INSECURE_SKIP_VERIFY",
        "do not verify Prometheus's TLS certificate",
        "prometheus.insecureSkipVerify",
        is_bool=True,
    ),
    Option(
        "--prometheus-timeout",
        "RETRAINER_PROMETHEUS_TIMEOUT",
        "query timeout, e.g. 30s",
        "prometheus.timeout",
    ),
    Option("--query", "RETRAINER_QUERY", "PromQL giving one drift value per model", "query"),
    Option("--threshold", "RETRAINER_THRESHOLD", "retrain when drift >= this value", "threshold"),
    Option(
        "--sustained-for",
        "RETRAINER_SUSTAINED_FOR",
        "drift must stay over the threshold this long, e.g. 15m (0: latest value only)",
        "sustainedFor",
    ),
    Option(
        "--evaluation-step",
        "RETRAINER_EVALUATION_STEP",
        "resolution of the sustained window",
        "evaluationStep",
    ),
    Option(
        "--min-coverage",
        "RETRAINER_MIN_COVERAGE",
        "share of window steps that must have data (0-1]",
        "minCoverage",
    ),
    Option(
        "--cooldown", "RETRAINER_COOLDOWN", "no new retrain of a model this long after the last", "cooldown"
    ),
    Option(
        "--max-concurrent", "RETRAINER_MAX_CONCURRENT", "most retrain Jobs active at once", "maxConcurrent"
    ),
    Option(
        "--training-namespace",
        "RETRAINER_TRAINING_NAMESPACE",
        "namespace the Jobs are created in",
        "trainingNamespace",
    ),
    Option(
        "--release", "RETRAINER_RELEASE", "Helm release name (app.kubernetes.io/instance label)", "release"
    ),
    Option("--job-image", "RETRAINER_JOB_IMAGE", "training image of the Job template", "job.image"),
    Option(
        "--drift-report-url",
        "RETRAINER_DRIFT_REPORT_URL",
        "drift detector report URL; {model_name} and {namespace} are filled in",
        "driftReportUrl",
    ),
    Option("--kubeconfig", "KUBECONFIG", "kubeconfig when not running in a cluster"),
    Option(
        "--dry-run",
        "RETRAINER_DRY_RUN",
        "print the Job manifests as YAML on stdout, create nothing (decision log goes to stderr)",
        is_bool=True,
    ),
    Option(
        "--at",
        "RETRAINER_AT",
        "evaluate as of this time (unix seconds or ISO 8601) instead of now: replays and tests",
    ),
]

EPILOG = """exit codes:
  0  pass done (also: no model over the threshold)
  1  invalid configuration (the message names the key)
  2  Prometheus unreachable, timed out or rejected the query (nothing created)
  3  Kubernetes answered Forbidden (the message names verb, resource and namespace)
  4  other Kubernetes API error (unreachable, invalid Job)"""

WATCH_EPILOG = """watch options (python -m retrain_controller watch --help):
  --interval SECONDS  seconds between passes, default 60 [env RETRAINER_WATCH_INTERVAL]
  --passes N          stop after N passes, 0 = until SIGTERM/SIGINT [env RETRAINER_WATCH_PASSES]

"""

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def _add_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("options (flag > environment variable > config file > default)")
    for opt in OPTIONS:
        text = f"{opt.help} [env {opt.env}]" + (f" (config: {opt.key})" if opt.key else "")
        if opt.is_bool:
            group.add_argument(opt.flag, action="store_true", default=argparse.SUPPRESS, help=text)
        else:
            group.add_argument(opt.flag, metavar="VALUE", default=argparse.SUPPRESS, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m retrain_controller",
        description="Turns sustained model drift in Prometheus into one Kubernetes retraining Job per model.",
        epilog=WATCH_EPILOG + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="{check,watch}")
    check = commands.add_parser(
        "check",
        help="one decision pass, then exit (the CronJob)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(check)
    watch = commands.add_parser(
        "watch",
        help="repeat the pass every --interval seconds (local demo)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(watch)
    watch.add_argument(
        "--interval",
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help="seconds between passes, default 60 [env RETRAINER_WATCH_INTERVAL]",
    )
    watch.add_argument(
        "--passes",
        metavar="N",
        default=argparse.SUPPRESS,
        help="stop after N passes, 0 = until SIGTERM/SIGINT, default 0 [env RETRAINER_WATCH_PASSES]",
    )
    return parser


def _resolve(args: argparse.Namespace, flag: str, env: str) -> Any:
    attr = flag.lstrip("-").replace("-", "_")
    if hasattr(args, attr):
        return getattr(args, attr)
    return os.environ.get(env) or None


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise ConfigError(name, f"expected true or false, got {value!r}")


def _parse_at(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as err:
        raise ConfigError("--at", f"expected unix seconds or ISO 8601, got {value!r}") from err


def _positive_int(value: Any, name: str, minimum: int) -> int:
    try:
        number = int(str(value))
    except ValueError as err:
        raise ConfigError(name, f"expected an integer, got {value!r}") from err
    if number < minimum:
        raise ConfigError(name, f"must be >= {minimum}, got {number}")
    return number


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for opt in OPTIONS:
        if opt.key is None:
            continue
        value = _resolve(args, opt.flag, opt.env)
        if value is None:
            continue
        overrides[opt.key] = _as_bool(value, opt.key) if opt.is_bool else value
    return overrides


def _job_store(settings: Settings, kubeconfig: str | None, dry_run: bool, log: EventLog) -> JobStore:
    try:
        return KubeJobStore(load_kube_client_config(kubeconfig))
    except JobStoreError as err:
        if not dry_run:
            raise
        log.emit("warning", message=f"dry run without a cluster, guards see no existing Jobs: {err}")
        return EmptyJobStore()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    stderr_log = EventLog(sys.stderr)
    try:
        dry_run = _as_bool(_resolve(args, "--dry-run", "RETRAINER_DRY_RUN") or False, "--dry-run")
        at = _parse_at(_resolve(args, "--at", "RETRAINER_AT"))
        settings = load_settings(_resolve(args, "--config", "RETRAINER_CONFIG"), _overrides(args))
        interval = _positive_int(
            _resolve(args, "--interval", "RETRAINER_WATCH_INTERVAL") or 60, "--interval", 1
        )
        passes = _positive_int(_resolve(args, "--passes", "RETRAINER_WATCH_PASSES") or 0, "--passes", 0)
        if args.command == "check":
            passes = 1
        # In a dry run stdout carries the manifests (pipe it to kubectl), the decision log moves to stderr.
        log = stderr_log if dry_run else EventLog(sys.stdout)
        source = DriftSource(settings)
        kubeconfig = _resolve(args, "--kubeconfig", "KUBECONFIG")
        store = LazyJobStore(lambda: _job_store(settings, kubeconfig, dry_run, log))
    except ConfigError as err:
        sys.stderr.write(f"retrain-controller: {err}\n")
        return EXIT_CONFIG
    try:
        return _loop(settings, source, store, log, dry_run=dry_run, at=at, interval=interval, passes=passes)
    finally:
        source.close()


def _loop(
    settings: Settings,
    source: DriftSource,
    store: JobStore,
    log: EventLog,
    *,
    dry_run: bool,
    at: float | None,
    interval: int,
    passes: int,
) -> int:
    stop = threading.Event()
    if passes != 1:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    code = 0
    done = 0
    while not stop.is_set():
        now = at if at is not None else time.time()
        code = one_pass_exit_code(
            lambda now=now: run_pass(settings, source, store, now=now, dry_run=dry_run, log=log),
            log,
            sys.stderr,
        )
        done += 1
        if passes and done >= passes:
            break
        stop.wait(interval)
    return code
