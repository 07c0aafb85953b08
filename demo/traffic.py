"""Inference traffic for the demo: clean rows from the held-out set, drifted rows, ground-truth labels.

Drift is made the way it shows up in production, not by adding noise everywhere:
- a changed population mix: malignant cases (target 0 in scikit-learn's breast cancer data) are
  oversampled, which moves every size and shape feature at once;
- sensor offsets: a few measurements read high by a fixed fraction of their reference spread, as after
  a recalibrated instrument (texture and smoothness features, which the mix alone barely moves).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

MALIGNANT = 0  # scikit-learn's breast cancer target: 0 = malignant, 1 = benign
# feature -> offset in reference standard deviations (a miscalibrated sensor reads high)
SENSOR_OFFSETS = {
    "mean_texture": 1.0,
    "worst_texture": 1.0,
    "texture_error": 0.8,
    "mean_smoothness": 0.8,
    "worst_smoothness": 0.8,
    "smoothness_error": 0.8,
}


@dataclass
class DemoData:
    features: list[str]
    holdout: pd.DataFrame  # features + target
    reference: pd.DataFrame  # features + prediction + target

    @classmethod
    def load(cls, build_dir: Path) -> DemoData:
        schema_path = build_dir / "model" / "schema.json"
        holdout = pd.read_parquet(build_dir / "holdout.parquet")
        reference = pd.read_parquet(build_dir / "reference.parquet")
        if schema_path.exists():
            features = [f["name"] for f in json.loads(schema_path.read_text())["features"]]
        else:
            features = [c for c in holdout.columns if c not in ("target", "prediction")]
        missing = [f for f in features if f not in holdout.columns]
        if missing or "target" not in holdout.columns:
            raise ValueError(f"{build_dir}/holdout.parquet lacks columns: {missing or ['target']}")
        return cls(features, holdout.reset_index(drop=True), reference)

    def clean(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """n held-out rows sampled with replacement: the population the model was trained on."""
        return self.holdout.iloc[rng.integers(0, len(self.holdout), n)].reset_index(drop=True)

    def drifted(self, n: int, rng: np.random.Generator, malignant_share: float = 0.8) -> pd.DataFrame:
        """n rows with a shifted population mix and miscalibrated sensors (see the module docstring)."""
        malignant = self.holdout[self.holdout["target"] == MALIGNANT]
        benign = self.holdout[self.holdout["target"] != MALIGNANT]
        n_mal = int(rng.binomial(n, malignant_share))
        rows = pd.concat(
            [
                malignant.iloc[rng.integers(0, len(malignant), n_mal)],
                benign.iloc[rng.integers(0, len(benign), n - n_mal)],
            ]
        )
        rows = rows.iloc[rng.permutation(len(rows))].reset_index(drop=True).copy()
        for feature, sigmas in SENSOR_OFFSETS.items():
            if feature in rows.columns:
                rows[feature] = rows[feature] + sigmas * float(self.reference[feature].std())
        return rows

    @staticmethod
    def drift_description() -> str:
        shifted = ", ".join(f"{f} +{s:g} sd" for f, s in SENSOR_OFFSETS.items())
        return f"80% malignant cases (held-out set: ~37%), sensor offsets: {shifted}"


@dataclass
class TrafficResult:
    sent_rows: int = 0
    ok_requests: int = 0
    failed_requests: int = 0
    labels_sent: int = 0
    labels_accepted: int = 0
    errors: list[str] = field(default_factory=list)
    labelled: list[tuple[str, int]] = field(default_factory=list)  # (x-request-id, true label)


class _Connections(threading.local):
    def __init__(self):
        self.pool: dict[tuple[str, int], http.client.HTTPConnection] = {}


class Client:
    """Keep-alive HTTP/1.1 JSON client, one connection per thread and host."""

    def __init__(self, timeout: float = 30.0):
        self.timeout = timeout
        self._local = _Connections()

    def post(self, url: str, body: bytes, headers: dict[str, str] | None = None):
        """(status, headers, body) of a JSON POST."""
        return self.request("POST", url, body, {"Content-Type": "application/json", **(headers or {})})

    def get(self, url: str, headers: dict[str, str] | None = None):
        return self.request("GET", url, None, headers or {})

    def request(self, method: str, url: str, body: bytes | None, hdrs: dict[str, str]):
        parts = urlsplit(url)
        key = (parts.hostname, parts.port)
        for attempt in (0, 1):
            conn = self._local.pool.get(key)
            if conn is None or attempt:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
                self._local.pool[key] = conn
            try:
                conn.request(method, parts.path or "/", body=body, headers=hdrs)
                resp = conn.getresponse()
                return resp.status, dict(resp.getheaders()), resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.pool.pop(key, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def v1_body(rows: list[list[float]]) -> bytes:
    return json.dumps({"instances": rows}).encode()


def v2_body(rows: list[list[float]]) -> bytes:
    tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}
    return json.dumps({"inputs": [tensor]}).encode()


@dataclass
class CallCounts:
    """Inference calls KServe's agent answered (whatever the status) and those answered with HTTP 200."""

    answered: int = 0
    answered_200: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: int) -> None:
        with self.lock:
            self.answered += 1
            self.answered_200 += status == 200


class TrafficSender:
    """Sends rows to KServe's agent in front of the predictor (v1 mostly, every `v2_every`-th request
    v2) and labels afterwards; counts every call in `calls`, for the events the agent should log."""

    def __init__(
        self,
        agent_url: str,
        drift_url: str,
        model_name: str,
        features: list[str],
        concurrency: int = 4,
        v2_every: int = 5,
    ):
        self.agent_url = agent_url.rstrip("/")
        self.drift_url = drift_url.rstrip("/")
        self.model_name = model_name
        self.features = features
        self.concurrency = concurrency
        self.v2_every = v2_every
        self.client = Client()
        self.calls = CallCounts()

    def _infer(self, index: int, row: list[float]) -> str:
        """One request; returns its X-Request-Id once the predictor answered 200."""
        if self.v2_every and index % self.v2_every == self.v2_every - 1:
            url, body = f"{self.agent_url}/v2/models/{self.model_name}/infer", v2_body([row])
        else:
            url, body = f"{self.agent_url}/v1/models/{self.model_name}:predict", v1_body([row])
        # In a cluster the ingress gateway (Istio, Envoy) gives every call an X-Request-Id; KServe's agent
        # copies it into Ce-Metadata, the key ground-truth feedback joins on. Here the client is the edge.
        request_id = str(uuid.uuid4())
        status, _, _ = self.client.post(url, body, {"X-Request-Id": request_id})
        self.calls.record(status)
        if status != 200:
            raise RuntimeError(f"predictor answered {status} to {url}")
        return request_id

    def send(
        self,
        frame: pd.DataFrame,
        rate: float,
        label_share: float,
        rng: np.random.Generator,
        on_progress: Callable[[int], None] = lambda n: None,
        stop: threading.Event | None = None,
        send_labels: bool = True,
    ) -> TrafficResult:
        """Send every row of `frame` at about `rate` requests/s, then POST labels for a share of them
        (`send_labels=False`: only collect them in result.labelled, for the caller to send later)."""
        result = TrafficResult()
        matrix = frame[self.features].to_numpy(dtype=float).tolist()
        targets = frame["target"].tolist()
        labelled = result.labelled
        lock = threading.Lock()
        start = time.monotonic()

        def one(i: int) -> None:
            if stop is not None and stop.is_set():
                return
            pause = start + i / rate - time.monotonic() if rate > 0 else 0
            if pause > 0:
                time.sleep(pause)
            try:
                rid = self._infer(i, matrix[i])
            except Exception as err:  # counted and reported, the run goes on
                with lock:
                    result.failed_requests += 1
                    if len(result.errors) < 5:
                        result.errors.append(str(err))
                return
            with lock:
                result.ok_requests += 1
                result.sent_rows += 1
                if rid and rng.random() < label_share:
                    labelled.append((rid, int(targets[i])))
            on_progress(1)

        stop = stop or threading.Event()
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            list(pool.map(one, range(len(matrix))))
        except BaseException:  # Ctrl-C: drop the queued requests instead of sending them all first
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        if send_labels:
            result.labels_sent, result.labels_accepted = self.send_labels(labelled)
        return result

    def send_labels(self, labelled: list[tuple[str, int]], batch: int = 200) -> tuple[int, int]:
        """POST /v1/feedback in batches; returns (sent, accepted per the detector's answer)."""
        sent = accepted = 0
        for start in range(0, len(labelled), batch):
            chunk = labelled[start : start + batch]
            body = json.dumps({"feedback": [{"id": rid, "label": label} for rid, label in chunk]}).encode()
            status, _, raw = self.client.post(f"{self.drift_url}/v1/feedback", body)
            sent += len(chunk)
            if status == 200:
                accepted += feedback_accepted(raw, len(chunk))
        return sent, accepted


def feedback_accepted(raw: bytes, default: int) -> int:
    """How many labels the detector matched to a logged prediction (its answer: {"matched", "unknown"})."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return default
    return int(doc.get("matched", default)) if isinstance(doc, dict) else default
