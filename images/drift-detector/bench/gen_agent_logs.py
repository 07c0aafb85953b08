"""Synthetic payload logs exactly as KServe's agent writes them to blob storage, for the batch benchmark.

What the agent writes (kserve v0.20.0, pkg/logger): one object per batch of --log-batch-size records,
keyed `<prefix>/<namespace>/<isvc>/<component>/<first record's id>-<request|response>.parquet`
(store.go); each record a row of 14 required columns (marshaller_record.go, parquet-go's defaults:
plain strings, no compression, data page v2) with the payload base64-encoded in `bytes`, metadata as
JSON ({} without --metadata-headers). Parquet records carry no event time: the batch job takes the
object's modification time, so objects get increasing mtimes at a nominal request rate.

Payloads are the demo predictor's: v1 `{"instances": [[30 features]]}` / `{"predictions": [score]}`
or v2 tensors (a share of the traffic), features resampled from the demo reference with jitter and
scored by the demo model. Every third block of --drift-block inferences is drifted: feature i shifted
by a graded 0.02 * (i + 1) reference standard deviations, so some columns sit near the 0.1 Wasserstein
threshold and verdicts vary across windows. Responses follow their request after a few other records
(FIFO, as a handful of concurrent clients would), so rows join in request order.

Also written: `reference.parquet` (clean rows, features + prediction, for both engines) and
`rows.parquet` (the decoded rows in join order with their request id: the windows Evidently checks).
Output goes to build/bench/agent-logs/<parameters>/ and is reused when complete (a `done.json`
marker written last); progress lines go to stderr.

    python images/drift-detector/bench/gen_agent_logs.py --events 10000000
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "build" / "demo"
REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
# The 14 columns of the agent's logRecord, in its field order; parquet-go writes them all required.
RECORD_COLUMNS = (
    "url", "bytes", "contentType", "reqType", "id", "sourceUri", "inferenceService", "namespace",
    "component", "endpoint", "metadata", "annotations", "certName",
)  # fmt: skip
RECORD_SCHEMA = pa.schema(
    [pa.field(name, pa.string(), nullable=False) for name in RECORD_COLUMNS]
    + [pa.field("tlsSkipVerify", pa.bool_(), nullable=False)]
)
CONCURRENCY = 4  # requests in flight: a response is logged after up to this many other records
CHUNK = 50_000  # inferences generated per numpy chunk


@dataclass(frozen=True)
class Params:
    events: int  # logged records: one request and one response per inference
    batch_size: int  # the agent's --log-batch-size
    rate: float  # nominal inferences per second: spaces the objects' mtimes
    reference_rows: int
    drift_block: int  # inferences per clean/drifted block
    v2_share: float  # share of requests in the Open Inference Protocol v2
    seed: int
    namespace: str = "default"
    model_name: str = "bench-model"
    component: str = "predictor"
    prefix: str = "agent"

    @property
    def inferences(self) -> int:
        return self.events // 2

    def key(self) -> str:
        return (
            f"ev{self.events}-b{self.batch_size}-r{self.reference_rows}-d{self.drift_block}"
            f"-v{self.v2_share:g}-s{self.seed}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=10_000_000,
        help="logged records (request + response per inference; default 10,000,000: 4.7 GB, "
        "generated in 372 s on this shared machine at load average 9)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=1000, help="records per object (--log-batch-size)")
    parser.add_argument("--rate", type=float, default=1000.0, help="nominal inferences per second (mtimes)")
    parser.add_argument("--reference-rows", type=int, default=5000, help="rows of the benchmark reference")
    parser.add_argument("--drift-block", type=int, default=25_000, help="inferences per clean/drifted block")
    parser.add_argument("--v2-share", type=float, default=0.25, help="share of v2 requests")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "agent-logs")
    return parser.parse_args(argv)


class FeatureSource:
    """Rows resampled from the demo reference, jittered by 5% of each column's std, 6 significant digits."""

    def __init__(self, demo_reference: pd.DataFrame, features: list[str], model):
        self.base = demo_reference[features].to_numpy(np.float64)
        self.std = self.base.std(axis=0)
        self.features = features
        self.model = model
        self.shift = 0.02 * (np.arange(len(features)) + 1) * self.std  # graded drift per feature

    def draw(self, rng: np.random.Generator, n: int, drifted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = self.base[rng.integers(0, len(self.base), n)]
        rows = rows + rng.normal(0.0, 0.05, rows.shape) * self.std
        rows = np.where(drifted[:, None], rows + self.shift, rows)
        rows = np.abs(rows)  # the demo's features are all non-negative measurements
        rows = significant(rows, 6)
        return rows, self.model.predict_proba(rows)[:, 1]  # fitted on arrays, without names


def significant(values: np.ndarray, digits: int) -> np.ndarray:
    """Round to `digits` significant digits, so JSON bodies carry numbers as a client would send them."""
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log10(np.abs(values)))
    exponent = np.where(np.isfinite(exponent), exponent, 0)
    scale = 10.0 ** (digits - 1 - exponent)
    return np.round(values * scale) / scale


def request_body(row: np.ndarray, v2: bool) -> bytes:
    if v2:
        tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": [row.tolist()]}
        return orjson.dumps({"inputs": [tensor]})
    return orjson.dumps({"instances": [row.tolist()]})


def response_body(score: float, v2: bool, model_name: str, event_id: str) -> bytes:
    if v2:
        output = {"name": "predictions", "shape": [1], "datatype": "FP64", "data": [score]}
        return orjson.dumps({"model_name": model_name, "model_version": None, "id": event_id,
                             "parameters": None, "outputs": [output]})  # fmt: skip
    return orjson.dumps({"predictions": [score]})


class ObjectWriter:
    """Buffers records and writes one parquet object per batch, as the agent's BlobStore does."""

    def __init__(self, params: Params, logs_dir: Path, start_time: float):
        self.p = params
        self.dir = logs_dir / params.prefix / params.namespace / params.model_name / params.component
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url = f"s3://bench-logs/{params.prefix}"
        self.start_time = start_time
        self.columns: dict[str, list] = {"bytes": [], "reqType": [], "id": []}
        self.objects = 0
        self.bytes_written = 0

    def add(self, req_type: str, event_id: str, body: bytes) -> None:
        self.columns["bytes"].append(base64.b64encode(body).decode("ascii"))
        self.columns["reqType"].append(req_type)
        self.columns["id"].append(event_id)
        if len(self.columns["id"]) == self.p.batch_size:
            self.flush()

    def flush(self) -> None:
        n = len(self.columns["id"])
        if not n:
            return
        constant = {
            "url": self.url, "contentType": "application/json", "sourceUri": "http://localhost:9081/",
            "inferenceService": self.p.model_name, "namespace": self.p.namespace,
            "component": self.p.component, "endpoint": "", "metadata": "{}", "annotations": "",
            "certName": "",
        }  # fmt: skip
        arrays = {name: pa.array([value] * n, pa.string()) for name, value in constant.items()}
        arrays.update({name: pa.array(values, pa.string()) for name, values in self.columns.items()})
        arrays["tlsSkipVerify"] = pa.array([False] * n, pa.bool_())
        table = pa.Table.from_arrays([arrays[f.name] for f in RECORD_SCHEMA], schema=RECORD_SCHEMA)
        kind = self.columns["reqType"][0].rsplit(".", 1)[1]
        path = self.dir / f"{self.columns['id'][0]}-{kind}.parquet"
        pq.write_table(table, path, compression="none", use_dictionary=False, data_page_version="2.0")
        # The object's time: when its last record would have been logged at the nominal rate.
        mtime = self.start_time + (self.objects + 1) * self.p.batch_size / (2 * self.p.rate)
        os.utime(path, ns=(int(mtime * 1e9), int(mtime * 1e9)))
        self.objects += 1
        self.bytes_written += path.stat().st_size
        self.columns = {"bytes": [], "reqType": [], "id": []}


def event_ids(rng: np.random.Generator, n: int) -> list[str]:
    """Random version-4 UUIDs, as the agent makes when a request has no X-Request-Id."""
    raw = rng.integers(0, 2**63, (n, 2), dtype=np.int64).astype(np.uint64)
    return [str(uuid.UUID(int=(int(hi) << 64 | int(lo)), version=4)) for hi, lo in raw]


def drifted_mask(start: int, n: int, block: int) -> np.ndarray:
    index = np.arange(start, start + n)
    return (index // block) % 3 == 2


def write_reference(source: FeatureSource, params: Params, path: Path) -> None:
    rng = np.random.default_rng(params.seed + 1)
    rows, scores = source.draw(rng, params.reference_rows, np.zeros(params.reference_rows, bool))
    frame = pd.DataFrame(rows, columns=source.features)
    frame["prediction"] = scores
    frame.to_parquet(path, index=False)


def generate(params: Params, out: Path) -> dict:
    """Writes logs/, reference.parquet and rows.parquet into out; returns the summary."""
    model = joblib.load(DEMO / "model" / "model.joblib")
    schema = json.loads((DEMO / "model" / "schema.json").read_text())
    features = [f["name"] for f in schema["features"]]
    source = FeatureSource(pd.read_parquet(DEMO / "reference.parquet"), features, model)
    write_reference(source, params, out / "reference.parquet")

    rng = np.random.default_rng(params.seed)
    writer = ObjectWriter(params, out / "logs", start_time=1_780_000_000.0)
    rows_writer = None
    in_flight: deque[tuple[str, float, bool]] = deque()
    started, done = time.monotonic(), 0
    while done < params.inferences:
        n = min(CHUNK, params.inferences - done)
        drifted = drifted_mask(done, n, params.drift_block)
        rows, scores = source.draw(rng, n, drifted)
        ids, v2 = event_ids(rng, n), rng.random(n) < params.v2_share
        for i in range(n):
            writer.add(REQUEST_TYPE, ids[i], request_body(rows[i], v2[i]))
            in_flight.append((ids[i], float(scores[i]), bool(v2[i])))
            if len(in_flight) > rng.integers(0, CONCURRENCY + 1):
                event_id, score, is_v2 = in_flight.popleft()
                writer.add(RESPONSE_TYPE, event_id, response_body(score, is_v2, params.model_name, event_id))
        chunk = pd.DataFrame(rows, columns=features)
        chunk = chunk.assign(prediction=scores, drifted=drifted, request_id=ids)
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        rows_writer = rows_writer or pq.ParquetWriter(out / "rows.parquet", table.schema)
        rows_writer.write_table(table)
        done += n
        rate = done * 2 / (time.monotonic() - started)
        print(
            f"gen_agent_logs: {done * 2:,}/{params.events:,} events, {writer.objects:,} objects, "
            f"{writer.bytes_written / 2**30:.2f} GiB, {rate:,.0f} events/s",
            file=sys.stderr,
            flush=True,
        )
    while in_flight:
        event_id, score, is_v2 = in_flight.popleft()
        writer.add(RESPONSE_TYPE, event_id, response_body(score, is_v2, params.model_name, event_id))
    writer.flush()
    if rows_writer:
        rows_writer.close()
    return {
        "params": asdict(params),
        "objects": writer.objects,
        "log_bytes": writer.bytes_written,
        "seconds": round(time.monotonic() - started, 1),
        "features": features,
    }


def ensure_logs(params: Params, root: Path) -> tuple[Path, dict]:
    """The cached data set for params, generated first when missing or incomplete."""
    out = root / params.key()
    marker = out / "done.json"
    if marker.exists():
        print(f"gen_agent_logs: reusing {out}", file=sys.stderr)
        return out, json.loads(marker.read_text())
    if out.exists():
        shutil.rmtree(out)  # an interrupted run: start over
    out.mkdir(parents=True)
    print(f"gen_agent_logs: writing {params.events:,} events to {out}", file=sys.stderr)
    summary = generate(params, out)
    marker.write_text(json.dumps(summary, indent=1))
    return out, summary


def params_from(args: argparse.Namespace) -> Params:
    return Params(
        events=args.events,
        batch_size=args.batch_size,
        rate=args.rate,
        reference_rows=args.reference_rows,
        drift_block=args.drift_block,
        v2_share=args.v2_share,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.events < 2 or args.batch_size < 1 or not DEMO.joinpath("reference.parquet").exists():
        print("gen_agent_logs: needs --events >= 2, --batch-size >= 1 and `make demo-model`", file=sys.stderr)
        return 2
    out, summary = ensure_logs(params_from(args), args.out)
    print(json.dumps({"dir": str(out), **{k: v for k, v in summary.items() if k != "features"}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
