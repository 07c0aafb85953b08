"""Reads one drift value per model from Prometheus.

Three instant queries, all evaluated at the same timestamp:
  current    <query>                                         what the model looks like now
  sustained  min_over_time((<query>)[<sustainedFor>:<step>])  lowest value over the period
  coverage   count_over_time((<query>)[<sustainedFor>:<step>]) how many steps had data
Drift is sustained when the minimum is over the threshold and enough steps had data
(a series that appeared five minutes ago has no fifteen-minute history yet).

Every query has a total deadline (the query timeout + 2 s), not only requests' per-read timeout: a
server that trickles its answer a byte at a time would otherwise hold the pass for ever. An answer
that is not an instant vector as the HTTP API documents it is a PrometheusError, never a traceback.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import threading
from dataclasses import dataclass

import requests
import urllib3
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from retrain_controller.config import ConfigError, Settings

CLIENT_GRACE_SECONDS = 2  # the client waits this much longer than the server-side query timeout


class PrometheusError(RuntimeError):
    """Prometheus could not answer: unreachable, timed out or rejected the query."""


@dataclass(frozen=True)
class Observation:
    """What Prometheus says about one model at decision time."""

    model_name: str
    model_namespace: str
    value: float | None  # sustained minimum (instant value when sustainedFor is 0); None: no series
    current: float | None  # the instant value; None when the series is absent now
    samples: int  # steps of the sustained window that had data
    expected_samples: int


@dataclass(frozen=True)
class Queries:
    current: str
    sustained: str | None
    coverage: str | None
    expected_samples: int


def build_queries(settings: Settings) -> Queries:
    base = settings.query
    if settings.sustained_for_seconds == 0:
        return Queries(current=base, sustained=None, coverage=None, expected_samples=1)
    window = f"[{settings.sustained_for_seconds}s:{settings.evaluation_step_seconds}s]"
    expected = max(1, settings.sustained_for_seconds // settings.evaluation_step_seconds)
    return Queries(
        current=base,
        sustained=f"min_over_time(({base}){window})",
        coverage=f"count_over_time(({base}){window})",
        expected_samples=expected,
    )


def _sample_value(raw: str | None) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


class DriftSource:
    """Runs the drift queries through prometheus-api-client with timeouts and TLS settings."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self.ignored_series = 0  # series of the last pass without the model label (cannot be acted on)
        prom = settings.prometheus
        session = requests.Session()
        if prom.ca_file and not os.path.isfile(prom.ca_file):
            raise ConfigError("prometheus.caFile", f"{prom.ca_file} does not exist")
        session.verify = prom.ca_file or not prom.insecure_skip_verify
        if prom.bearer_token_file:
            _read_token(prom.bearer_token_file)  # fail early, as a config error, when unreadable
        # Connection errors get two quick retries; HTTP errors are answers and are not retried
        # (a query timeout answered with 503 must not turn into three timeouts).
        retry = Retry(total=2, connect=2, read=0, status=0, backoff_factor=0.2, raise_on_status=False)
        self._client = PrometheusConnect(
            url=prom.url,
            headers={},
            retry=retry,
            session=session,
            # The server gets the query timeout; the client waits a little longer for its answer.
            timeout=prom.timeout_seconds + CLIENT_GRACE_SECONDS,
        )

    def close(self) -> None:
        self._client.close()

    def query(self, promql: str, at: float) -> list[dict]:
        """The instant vector of promql at time `at`; every failure becomes a one-line PrometheusError."""
        prom = self._settings.prometheus
        params = {"time": f"{at:.3f}", "timeout": f"{prom.timeout_seconds:.6f}"}
        if prom.bearer_token_file:
            # Re-read on every query: projected ServiceAccount tokens rotate under a long `watch`.
            self._client.headers["Authorization"] = f"Bearer {_read_token(prom.bearer_token_file)}"
        timed_out = f"timed out querying {prom.url} after {prom.timeout_seconds:g}s"
        try:
            result = self._query_within_deadline(promql, params, prom.timeout_seconds + CLIENT_GRACE_SECONDS)
        except requests.exceptions.Timeout as err:
            raise PrometheusError(timed_out) from err
        except requests.exceptions.SSLError as err:
            raise PrometheusError(f"TLS error talking to {prom.url}: {_first_line(err)}") from err
        except requests.exceptions.ConnectionError as err:
            if _caused_by_timeout(err):  # urllib3 reports a read timeout after retries this way
                raise PrometheusError(timed_out) from err
            raise PrometheusError(f"cannot reach Prometheus at {prom.url}: {_root_cause(err)}") from err
        except requests.exceptions.RequestException as err:
            raise PrometheusError(f"request to {prom.url} failed: {_first_line(err)}") from err
        except PrometheusApiClientException as err:
            raise PrometheusError(f"Prometheus rejected the query {promql!r}: {_api_error(err)}") from err
        except (ValueError, KeyError, TypeError) as err:  # the body is not {"data": {"result": ...}}
            raise PrometheusError(
                f"{prom.url} did not answer like a Prometheus API: {_first_line(err)}"
            ) from err
        if not isinstance(result, list):
            raise PrometheusError(f"the query {promql!r} must return an instant vector (one value per model)")
        for index, series in enumerate(result):
            problem = _sample_problem(series)
            if problem:  # a scalar, a range vector or a body no Prometheus sends
                raise PrometheusError(
                    f"{prom.url} answered {promql!r} with a malformed sample {index} ({problem}): "
                    "the query must return an instant vector (one value per model)"
                )
        return result

    def _query_within_deadline(self, promql: str, params: dict, deadline: float) -> list:
        """custom_query in a daemon thread, given up on at the deadline (requests can only bound each
        read). `check` exits right after; in `watch` the abandoned read ends when the server stops."""
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["result"] = self._client.custom_query(promql, params=params)
            except Exception as err:  # handed to the caller, which maps every kind to a one-line error
                outcome["error"] = err

        worker = threading.Thread(target=run, name="prometheus-query", daemon=True)
        worker.start()
        worker.join(deadline)
        if worker.is_alive():
            self._client._session.close()  # the stuck connection is never reused
            raise requests.exceptions.Timeout(f"no complete answer within {deadline:g}s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def observe(self, at: float) -> tuple[list[Observation], Queries]:
        """One Observation per (namespace, model) seen by any of the queries."""
        queries = build_queries(self._settings)
        result = self.query(queries.current, at)
        self.ignored_series = sum(
            1 for r in result if not r.get("metric", {}).get(self._settings.model_label)
        )
        current = self._by_model(result)
        if queries.sustained is None:
            sustained, coverage = current, {key: 1.0 for key in current}
        else:
            sustained = self._by_model(self.query(queries.sustained, at))
            coverage = self._by_model(self.query(queries.coverage or "", at))
        observations = []
        for key in sorted(set(current) | set(sustained)):
            samples = coverage.get(key, 0.0)
            observations.append(
                Observation(
                    model_namespace=key[0],
                    model_name=key[1],
                    value=sustained.get(key),
                    current=current.get(key),
                    samples=int(samples) if math.isfinite(samples) else 0,
                    expected_samples=queries.expected_samples,
                )
            )
        return observations, queries

    def _by_model(self, result: list[dict]) -> dict[tuple[str, str], float]:
        """Keyed by (namespace, model); a series without the model label cannot be acted on."""
        values: dict[tuple[str, str], float] = {}
        for series in result:
            labels = series.get("metric", {})
            model = labels.get(self._settings.model_label)
            if not model:
                continue
            key = (labels.get(self._settings.namespace_label, ""), model)
            value = _sample_value(series.get("value", [None, None])[1])
            # Several series per model (a query without aggregation): keep the highest.
            if key not in values or math.isnan(values[key]) or value > values[key]:
                values[key] = value
        return values


def _sample_problem(series: object) -> str | None:
    """What is wrong with one instant-vector sample, or None: the API documents
    `{"metric": {"<label>": "<value>", ...}, "value": [<unix time>, "<number>"]}`."""
    if not isinstance(series, dict):
        return f"not an object: {_short(series)}"
    metric = series.get("metric", {})
    if not isinstance(metric, dict):
        return f"'metric' is not an object of labels: {_short(metric)}"
    for name, value in metric.items():
        if not isinstance(value, str):
            return f"label {name!r} is not a string: {_short(value)}"
    value = series.get("value")
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str | int | float)):
        return f"'value' is not [<time>, \"<number>\"]: {_short(value)}"
    return None


def _short(value: object) -> str:
    text = json.dumps(value) if isinstance(value, dict | list | str | int | float | None) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _read_token(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as err:
        raise ConfigError("prometheus.bearerTokenFile", f"cannot read {path}: {err.strerror or err}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _chain(err: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (urllib3 keeps the cause in `.reason`)."""
    seen: list[BaseException] = []
    inner: object = err
    while isinstance(inner, BaseException) and inner not in seen:
        seen.append(inner)
        inner = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
    return seen


def _caused_by_timeout(err: BaseException) -> bool:
    # urllib3 derives NewConnectionError (refused, no route) from ConnectTimeoutError: not a timeout.
    return any(
        isinstance(e, TimeoutError | urllib3.exceptions.TimeoutError)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in _chain(err)
    )


def _root_cause(err: BaseException) -> str:
    """requests wraps urllib3 wraps socket errors; the innermost one says what actually happened."""
    text = _first_line(_chain(err)[-1])
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text


def _api_error(err: PrometheusApiClientException) -> str:
    """The client's message is `HTTP Status Code <n> (<bytes repr of the body>)`; Prometheus's JSON
    body carries errorType and error."""
    text = str(err)
    match = re.fullmatch(r"HTTP Status Code (\d+) \((b'.*'|b\".*\")\)", text, re.S)
    if match:
        try:
            body = json.loads(ast.literal_eval(match.group(2)))
            return f"HTTP {match.group(1)} {body.get('errorType', 'error')}: {body.get('error', '')}".strip()
        except (ValueError, SyntaxError, AttributeError):
            return f"HTTP {match.group(1)}"
    return _first_line(err)
