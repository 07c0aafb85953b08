"""Command line: `check` (one pass, for the CronJob) and `watch` (repeat, for the local demo).

The flags come from the settings table (config.TABLE): each has an environment variable and a config
key; precedence is flag > environment > config file > default.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

from retrain_controller import __version__
from retrain_controller.config import TABLE, ConfigError, Settings, settings_from
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
WATCH_ONLY = ("watch_interval", "watch_passes")


def _add_options(parser: argparse.ArgumentParser, watch: bool = False) -> None:
    group = parser.add_argument_group("options (flag > environment variable > config file > default)")
    TABLE.add_flags(group, [s.name for s in TABLE.settings if watch or s.name not in WATCH_ONLY])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m retrain_controller",
        description="Turns sustained model drift in Prometheus into one Kubernetes retraining Job per model.",
        allow_abbrev=False,
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
        allow_abbrev=False,
    )
    _add_options(check)
    watch = commands.add_parser(
        "watch",
        help="repeat the pass every --interval seconds (local demo)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_options(watch, watch=True)
    return parser


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
    stderr_log = EventLog(sys.stderr)
    try:
        args, loaded = TABLE.parse(parser, argv, os.environ)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_CONFIG
        settings = settings_from(loaded)
        run = loaded.values
        dry_run, kubeconfig = run["dry_run"], run["kubeconfig"] or None
        passes = 1 if args.command == "check" else run["watch_passes"]
        # In a dry run stdout carries the manifests (pipe it to kubectl), the decision log moves to stderr.
        log = stderr_log if dry_run else EventLog(sys.stdout)
        source = DriftSource(settings)
        store = LazyJobStore(lambda: _job_store(settings, kubeconfig, dry_run, log))
    except ConfigError as err:
        sys.stderr.write(f"retrain-controller: {err}\n")
        return EXIT_CONFIG
    try:
        return _loop(
            settings,
            source,
            store,
            log,
            dry_run=dry_run,
            at=run["at"],
            interval=run["watch_interval"],
            passes=passes,
        )
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
