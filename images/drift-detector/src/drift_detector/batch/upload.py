"""python -m drift_detector import: posts a batch run's results.jsonl to a running drift detector
(POST /api/v1/drift/import), in window order, a few hundred results per request."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from drift_detector.batch.results import read_jsonl

ENDPOINT = "/api/v1/drift/import"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m drift_detector import",
        description="Send batch results to the drift detector of the same model (dashboards and alerts).",
    )
    parser.add_argument("--results", required=True, type=Path, help="results.jsonl of a batch run")
    parser.add_argument(
        "--url", required=True, help="the drift detector's base URL, e.g. http://detector:8080"
    )
    parser.add_argument("--chunk", type=int, default=200, help="results per request (default 200)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    return parser


def post(url: str, results: list[dict], timeout: float) -> dict:
    request = urllib.request.Request(
        url.rstrip("/") + ENDPOINT,
        data=orjson.dumps({"results": results}),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return orjson.loads(answer.read())


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        results = read_jsonl(args.results)
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"drift_detector import: cannot read {args.results}: {exc}", file=sys.stderr)
        return 2
    imported = duplicates = 0
    for start in range(0, len(results), max(1, args.chunk)):
        chunk = results[start : start + max(1, args.chunk)]
        try:
            answer = post(args.url, chunk, args.timeout)
        except urllib.error.HTTPError as exc:
            print(
                f"drift_detector import: HTTP {exc.code}: {exc.read()[:300].decode(errors='replace')}",
                file=sys.stderr,
            )
            return 1
        except (urllib.error.URLError, OSError) as exc:
            print(f"drift_detector import: {args.url}: {exc}", file=sys.stderr)
            return 1
        imported += answer.get("imported", 0)
        duplicates += answer.get("duplicates", 0)
        print(f"import: {start + len(chunk)}/{len(results)} results sent", file=sys.stderr, flush=True)
    print(f"import: {imported} imported, {duplicates} already known", file=sys.stderr)
    return 0
