"""The batch benchmark's synthetic logs: laid out as KServe's agent writes them, and read back by the batch
job into the windows and verdicts the generator planted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
from gen_agent_logs import RECORD_SCHEMA, REQUEST_TYPE, RESPONSE_TYPE, Params, ensure_logs  # noqa: E402

KEY = re.compile(r"agent/default/bench-model/predictor/([0-9a-f-]{36})-(request|response)\.parquet")
PARAMS = Params(
    events=12_000, batch_size=500, rate=1000.0, reference_rows=2000, drift_block=1000, v2_share=0.25, seed=3
)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    out, _ = ensure_logs(PARAMS, tmp_path_factory.mktemp("agent-logs"))
    return out


def objects_in_time_order(logs: Path) -> list[Path]:
    return sorted((logs / "logs").rglob("*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name))


def test_objects_are_keyed_and_shaped_like_the_agents_batches(logs):
    objects = objects_in_time_order(logs)
    assert len(objects) == PARAMS.events // PARAMS.batch_size
    mtimes = [p.stat().st_mtime_ns for p in objects]
    assert mtimes == sorted(set(mtimes)), "every object is newer than the one written before it"
    for path in objects:
        match = KEY.fullmatch(path.relative_to(logs / "logs").as_posix())
        assert match, path
        table = pq.read_table(path)
        assert table.schema.equals(RECORD_SCHEMA), "the agent's 14 required columns, in its field order"
        assert table.num_rows == PARAMS.batch_size
        first = table.slice(0, 1).to_pylist()[0]
        assert (first["id"], first["reqType"].rsplit(".", 1)[1]) == match.groups()
        assert set(table.column("reqType").to_pylist()) <= {REQUEST_TYPE, RESPONSE_TYPE}
        assert set(table.column("metadata").to_pylist()) == {"{}"}


def test_every_request_has_one_response_logged_after_it(logs):
    seen: dict[str, str] = {}
    for path in objects_in_time_order(logs):
        for record in pq.read_table(path, columns=["id", "reqType"]).to_pylist():
            kind = record["reqType"].rsplit(".", 1)[1]
            assert (seen.get(record["id"]), kind) in {(None, "request"), ("request", "response")}
            seen[record["id"]] = kind
    assert len(seen) == PARAMS.inferences and set(seen.values()) == {"response"}


def test_batch_job_finds_the_planted_drift_window_by_window(logs, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "drift_detector", "batch", "--logs", str(logs / "logs"),
        "--reference", str(logs / "reference.parquet"), "--model-name", "bench-model",
        "--window-size", str(PARAMS.drift_block), "--engine", "local", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=300)
    summary = json.loads((out / "summary.json").read_text())
    accepted = {(e["type"], e["outcome"]): e["count"] for e in summary["events"]}
    assert accepted[("request", "accepted")] == accepted[("response", "accepted")] == PARAMS.inferences
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # Windows line up with the generator's blocks: every third one is the drifted block.
    assert [r["window"]["rows"] for r in results] == [PARAMS.drift_block] * (
        PARAMS.inferences // PARAMS.drift_block
    )
    assert [r["dataset_drift"] for r in results] == [i % 3 == 2 for i in range(len(results))]
    assert {c["stattest"] for r in results for c in r["columns"]} == {"wasserstein"}
