"""The batch job's command line refusals and the import path into a running service
(POST /api/v1/drift/import, python -m drift_detector import). Parity with the online detector on logs
the real agent wrote is tested in tests/batch."""

from __future__ import annotations

import subprocess
import sys

import orjson
from conftest import sample_rows
from drift_detector.__main__ import main

MODEL = "demo-model"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drift_detector", *args], capture_output=True, text=True, timeout=120
    )


def checked_results(server, windows: int) -> list[dict]:
    """Real results: traffic through a live service until `windows` windows are checked."""
    rows = sample_rows(windows * 40, seed=3, shift=0.8)
    for i in range(0, len(rows), 4):
        chunk = rows[i : i + 4]
        server.send_pair([[r["f_a"], r["f_b"], r["color"]] for r in chunk], [0.5] * len(chunk))
    server.wait_for(
        lambda: len(server.client.get("/api/v1/drift/history?limit=100").json()["results"]) >= windows,
        what=f"{windows} checked windows",
    )
    return server.client.get("/api/v1/drift/history?limit=100").json()["results"][::-1]


def test_import_keeps_results_and_sets_gauges(make_server, tmp_path):
    source = make_server(subdir="source", window_size=40, min_samples=20).start()
    results = checked_results(source, 3)
    target = make_server(subdir="target", window_size=40, min_samples=20).start()
    path = tmp_path / "results.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in results))

    done = run_cli("import", "--results", str(path), "--url", target.url, "--chunk", "2")
    assert done.returncode == 0, done.stderr
    assert "3 imported, 0 already known" in done.stderr
    assert target.client.get("/api/v1/drift/history?limit=100").json()["results"][::-1] == results
    assert target.metric("model_drift_score") == results[-1]["drift_share"]
    assert target.metric("model_drift_detected") == float(results[-1]["dataset_drift"])

    again = run_cli("import", "--results", str(path), "--url", target.url)
    assert again.returncode == 0 and "0 imported, 3 already known" in again.stderr
    assert len(target.client.get("/api/v1/drift/history?limit=100").json()["results"]) == 3
    assert target.metric("drift_detector_events_total", type="import", outcome="duplicate") == 3


def test_import_refuses_whole_requests(make_server):
    server = make_server(window_size=40, min_samples=20).start()
    good = checked_results(server, 1)[0]
    before = server.client.get("/api/v1/drift/history?limit=100").json()["results"]
    cases = {
        "model_mismatch": [{**good, "checked_at": 1.0}, {**good, "model_name": "other"}],
        "invalid_result": [{**good, "checked_at": 2.0}, {**good, "drift_share": "high"}],
        "invalid_body": [],
    }
    for reason, results in cases.items():
        answer = server.client.post("/api/v1/drift/import", json={"results": results})
        assert answer.status_code == 400 and answer.json()["reason"] == reason, answer.text
    assert server.client.get("/api/v1/drift/history?limit=100").json()["results"] == before
    assert server.metric("drift_detector_events_total", type="import", outcome="model_mismatch") == 1


def test_batch_refusals_are_one_line(tmp_path, reference_path, capsys):
    out = str(tmp_path / "out")
    base = [
        "batch",
        "--reference",
        str(reference_path),
        "--window-size",
        "50",
        "--min-samples",
        "20",
        "--out",
        out,
    ]
    corrupt = tmp_path / "logs" / "ns" / "isvc" / "predictor" / "payloads"
    corrupt.mkdir(parents=True)
    (corrupt / "0a-request.parquet").write_bytes(b"not parquet")
    cases = {
        "cannot list": [*base, "--logs", str(tmp_path / "missing")],
        "no bucket": [*base, "--logs", "s3://"],
        "0a-request.parquet": [*base, "--logs", str(tmp_path / "logs")],
        "--reference": ["batch", "--logs", str(tmp_path), "--out", str(tmp_path / "out")],
    }
    for needle, argv in cases.items():
        assert main(argv) == 2, argv
        stderr = capsys.readouterr().err
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("drift_detector batch:") and needle in last, stderr
    assert not (tmp_path / "out" / "results.jsonl").exists()
