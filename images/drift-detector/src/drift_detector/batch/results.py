"""The batch job's output: the service's history JSON per window, as JSON lines and as parquet.

results.jsonl  one result per line, in window order, exactly as GET /api/v1/drift/history returns them
results.parquet  one row per window: the headline numbers as columns, plus the whole result as JSON
summary.json   what the run read, refused and left open (like drift_detector_events_total), and the
               data-quality violations of the accepted rows (drift_detector_data_quality_violations_total)
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

RESULTS_JSONL = "results.jsonl"
RESULTS_PARQUET = "results.parquet"
SUMMARY = "summary.json"

PARQUET_SCHEMA = pa.schema(
    [
        ("model_name", pa.string()),
        ("seq", pa.int64()),
        ("opened_at", pa.float64()),
        ("closed_at", pa.float64()),
        ("rows", pa.int64()),
        ("predictions", pa.int64()),
        ("drift_share", pa.float64()),
        ("n_drifted", pa.int64()),
        ("dataset_drift", pa.bool_()),
        ("prediction_drift_score", pa.float64()),
        ("prediction_drifted", pa.bool_()),
        ("multivariate_drift_detected", pa.bool_()),
        ("checked_at", pa.float64()),
        ("result", pa.string()),  # the whole result, as results.jsonl has it
    ]
)


def dumps(result: dict) -> bytes:
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)


class ResultsWriter:
    """Appends results as they come (window order) and writes the parquet file at the end."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._tmp = out / (RESULTS_JSONL + ".tmp")
        self._jsonl = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish()
        self._rows: list[dict] = []

    def add(self, result: dict) -> None:
        line = dumps(result)
        self._jsonl.write(line + b"\n")
        self._rows.append(_row(result, line))

    def finish(self, summary: dict) -> None:
        """Both files appear whole or not at all: written aside, then renamed."""
        self._jsonl.close()
        table = pa.Table.from_pylist(self._rows, schema=PARQUET_SCHEMA)
        pq.write_table(table, self.out / (RESULTS_PARQUET + ".tmp"))
        os.replace(self.out / (RESULTS_PARQUET + ".tmp"), self.out / RESULTS_PARQUET)
        os.replace(self._tmp, self.out / RESULTS_JSONL)
        (self.out / SUMMARY).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")

    def abort(self) -> None:
        """A failed run leaves no partial file behind."""
        self._jsonl.close()
        self._tmp.unlink(missing_ok=True)

    @property
    def count(self) -> int:
        return len(self._rows)


def _row(result: dict, line: bytes) -> dict:
    window = result["window"]
    prediction = result.get("prediction_drift") or {}
    multivariate = result.get("multivariate") or {}
    return {
        "model_name": result["model_name"],
        "seq": window["seq"],
        "opened_at": window["opened_at"],
        "closed_at": window["closed_at"],
        "rows": window["rows"],
        "predictions": window["predictions"],
        "drift_share": result["drift_share"],
        "n_drifted": result["n_drifted"],
        "dataset_drift": result["dataset_drift"],
        "prediction_drift_score": prediction.get("score"),
        "prediction_drifted": prediction.get("drifted"),
        "multivariate_drift_detected": multivariate.get("drift_detected"),
        "checked_at": result["checked_at"],
        "result": line.decode(),
    }


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
