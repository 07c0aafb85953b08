"""The local engine: one process reads, decodes, sequences and checks, holding only the open window
and the pending joins (payloads leave memory once their window is checked)."""

from __future__ import annotations

from collections.abc import Iterator

from drift_detector.batch.check import check, materialize
from drift_detector.batch.events import Decoded, decode_record, position
from drift_detector.batch.logs import LogObject, read_records
from drift_detector.batch.sequence import Sequencer


def run(job, objects: list[LogObject]) -> Iterator[dict]:
    payloads: dict[int, list] = {}

    def decoded() -> Iterator[Decoded]:
        for obj in objects:
            job.progress(obj)
            for index, record in enumerate(read_records(job.filesystem, obj)):
                ev = decode_record(record, position(obj.rank, index), job.evaluator.engine, job.settings)
                if ev.payload is not None:
                    payloads[ev.pos] = ev.payload
                yield ev.meta()
                if not sequencer.accepted:  # refused or ignored: no window will ask for it
                    payloads.pop(ev.pos, None)

    sequencer = job.sequencer = Sequencer(job.settings)
    for window in sequencer.run(decoded()):
        result = check(job.evaluator, materialize(window, payloads.__getitem__))
        _forget(window, payloads)
        if result is not None:
            yield result


def _forget(window, payloads: dict[int, list]) -> None:
    for refs in (window.rows, window.preds):
        for ref in refs:
            if ref is not None:
                payloads.pop(ref[0], None)
