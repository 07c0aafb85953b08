"""The Spark engine: executors read and decode the log objects and check the windows; the driver only
sequences small metadata (ids, kinds, counts) through the service's state machine.

  1. objects -> executors: read, decode (the payloads stay there, cached)
  2. driver: join and window the records' metadata in order (sequence.Sequencer), giving each closed
     window as blocks of (request pos, response pos, place in the window)
  3. executors: payloads joined to their window by pos, grouped per window, checked with the
     prepared Evaluator, broadcast once (the reference profile and the fitted models)
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Iterator

from pyspark import StorageLevel
from pyspark.errors import PythonException
from pyspark.sql import SparkSession

from drift_detector.batch import logs as blob
from drift_detector.batch.check import blocks, check
from drift_detector.batch.events import Decoded, decode_record, position
from drift_detector.batch.sequence import Sequencer
from drift_detector.state import Window

ROWS, PREDS = 0, 1
CHUNK = 100_000  # window assignments per task of step 3's input
_filesystems: dict = {}  # per Python worker: one client per --logs


def session(master: str) -> tuple[SparkSession, bool]:
    """The active session (tests share one) or a new one; True when this call created it."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run this interpreter
    builder = SparkSession.builder.master(master).appName("drift-detector-batch")
    builder = builder.config("spark.ui.enabled", "false")
    if master.startswith("local"):  # no network but loopback needed
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    return builder.getOrCreate(), True


def run(job, objects: list[blob.LogObject]) -> Iterator[dict]:
    spark, created = session(job.spark_master)
    try:
        yield from _run(spark.sparkContext, job, objects)
    finally:
        if created:
            spark.stop()


def _run(sc, job, objects: list[blob.LogObject]) -> Iterator[dict]:
    parallelism = job.partitions or sc.defaultParallelism
    evaluator = sc.broadcast(job.evaluator)
    logs = job.logs
    decoded = (
        sc.parallelize(objects, max(1, min(len(objects), parallelism)))
        .flatMap(lambda obj: _decode_object(obj, logs, evaluator.value))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    total = _count(decoded)  # decodes every partition at once; the iterator below reads the cache
    print(f"batch: spark decoded {total} records from {len(objects)} objects", file=sys.stderr, flush=True)
    job.sequencer = Sequencer(job.settings)
    assignments, windows = _sequence(job.sequencer, decoded.map(Decoded.meta).toLocalIterator())
    print(f"batch: spark checking {len(windows)} windows", file=sys.stderr, flush=True)
    if windows:
        shape = sc.broadcast(windows)
        payloads = decoded.filter(lambda d: d.payload is not None).map(lambda d: (d.pos, d.payload))
        placed = sc.parallelize(assignments, max(1, len(assignments))).flatMap(_placements)
        results = (
            payloads.join(placed)
            .map(lambda kv: (kv[1][1][0], (kv[1][1][1], kv[1][1][2], kv[1][0])))
            .groupByKey(max(1, min(len(windows), parallelism)))
            .map(lambda kv: check(evaluator.value, _window(kv[0], kv[1], shape.value[kv[0]])))
            .filter(lambda r: r is not None)
            .collect()
        )
        yield from sorted(results, key=lambda r: r["window"]["seq"])
        shape.unpersist()
    decoded.unpersist()
    evaluator.unpersist()


def _count(decoded) -> int:
    """The decoded records' count; an object an executor could not read ends the run as locally."""
    try:
        return decoded.count()
    except PythonException as exc:
        reason = str(exc).strip().splitlines()
        found = [line for line in reason if "LogsError:" in line]
        if not found:
            raise
        raise blob.LogsError(found[-1].split("LogsError:", 1)[1].strip()) from None


def _decode_object(obj: blob.LogObject, logs: str, evaluator) -> Iterator[Decoded]:
    filesystem = _filesystems.get(logs)
    if filesystem is None:
        filesystem = _filesystems[logs] = blob.filesystem(logs)[0]
    for index, record in enumerate(blob.read_records(filesystem, obj)):
        yield decode_record(record, position(obj.rank, index), evaluator.engine, evaluator.settings)


def _sequence(sequencer: Sequencer, metas) -> tuple[list, dict]:
    """Runs the state machine; each closed window leaves its placements (compact arrays, in chunks)
    and its shape (opened_at, closed_at, rows)."""
    pos, seq, start, side = array("q"), array("q"), array("q"), array("b")
    chunks, windows = [], {}
    for window in sequencer.run(metas):
        windows[window.seq] = (window.opened_at, window.closed_at, len(window.rows))
        for request_pos, first, _, response_pos in blocks(window):
            for p, s in ((request_pos, ROWS), (response_pos, PREDS)):
                if p is not None:
                    pos.append(p), seq.append(window.seq), start.append(first), side.append(s)
        if len(pos) >= CHUNK:
            chunks.append((pos, seq, start, side))
            pos, seq, start, side = array("q"), array("q"), array("q"), array("b")
    if pos:
        chunks.append((pos, seq, start, side))
    return chunks, windows


def _placements(chunk: tuple) -> Iterator[tuple]:
    pos, seq, start, side = chunk
    for i in range(len(pos)):
        yield pos[i], (seq[i], start[i], side[i])


def _window(seq: int, parts, shape: tuple) -> Window:
    opened_at, closed_at, n = shape
    rows: list = [None] * n
    preds: list = [None] * n
    for first, side, payload in parts:
        target = rows if side == ROWS else preds
        target[first : first + len(payload)] = payload
    return Window(seq, rows, preds, opened_at, closed_at)
