"""The batch job's sequencer closes windows record by record, as the service does."""

from __future__ import annotations

from drift_detector.batch.events import OK, Decoded
from drift_detector.batch.sequence import Sequencer
from drift_detector.config import Settings


def request(pos: int, size: int) -> Decoded:
    return Decoded(pos, float(pos), f"id-{pos}", True, f"id-{pos}", OK, None, count=1, size=size)


def test_joins_evicted_by_one_event_fill_windows_one_record_at_a_time():
    """Service._log closes a window after every record that fills it: when one heavy request evicts
    four waiting one-row requests by bytes, the rows go two and two into windows of window_size 2,
    not four into one window."""
    settings = Settings(window_size=2, min_samples=1, pending_max_bytes=400)
    sequencer = Sequencer(settings)
    waiting = [request(pos, 100) for pos in range(4)]  # 400 bytes pending: the table is full
    assert list(sequencer.run(waiting)) == []
    closed = list(sequencer.run([request(4, 400)]))  # room for it: all four go, oldest first
    assert [w.rows for w in closed] == [[(0, 0), (1, 0)], [(2, 0), (3, 0)]]
    assert sequencer.outcomes[("join", "evicted_request")] == 4
    opened = sequencer.open_window()
    assert (opened["rows"], opened["pending_joins"], opened["pending_bytes"]) == (0, 1, 400)
