"""Damage to the write-ahead log on disk: bytes flipped at the tail, in the middle and in a snapshot, and
segments in the old format. Logs are written by the real WriteAheadLog (or the real service) and
damaged on disk; replay must keep every readable record, count what it lost and say so."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import httpx
import orjson
import pytest
from drift_detector.state import State
from drift_detector.wal import WriteAheadLog
from drift_detector.wal_format import FRAME, LogFormatError, SegmentReader, read_header

V1_FIXTURE = Path(__file__).parent / "data" / "wal-v1"  # written by the detector before format 2


def ingest(k: int) -> list:
    """An ingest record whose one row is told apart by its first value."""
    return ["i", [[float(k), 1.0, "red"]], [0.5], [f"id-{k}"], 1.0]


def write_log(wal_dir: Path, records: list, rotate_at: tuple[int, ...] = ()) -> State:
    """Append and commit the records through the real log (rotating after the given counts)."""
    state = State(store_size=100000, performance_window=1000)

    async def run():
        log = WriteAheadLog(wal_dir)
        for rec in log.replay():
            state.apply(rec)
        log.start(asyncio.get_running_loop())
        for n, rec in enumerate(records, 1):
            log.append(rec)
            state.apply(rec)
            if n in rotate_at:
                log.rotate(state.snapshot())
            await log.commit()
        log.close()

    asyncio.run(run())
    return state


def replay(wal_dir: Path) -> tuple[State, WriteAheadLog]:
    state = State(store_size=100000, performance_window=1000)
    log = WriteAheadLog(wal_dir)
    for rec in log.replay():
        state.apply(rec)
    return state, log


def first_values(state: State) -> set[float]:
    return {row[0] for row in state.window.rows}


def frames(path: Path) -> list:
    data = path.read_bytes()
    return [f for f in SegmentReader(data, read_header(data, path.name)) if hasattr(f, "record")]


def flip(path: Path, offset: int, count: int = 3) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flip_in_the_middle_loses_one_record_and_keeps_every_later_one(tmp_path):
    wal_dir = tmp_path / "wal"
    write_log(wal_dir, [ingest(k) for k in range(400)])
    segment = wal_dir / "wal-00000001.log"
    victim = frames(segment)[200]
    assert victim.record == ingest(200)
    flip(segment, victim.start + FRAME.size + 10)  # three bytes inside the record's payload
    damaged = segment.read_bytes()

    state, log = replay(wal_dir)
    assert first_values(state) == {float(k) for k in range(400)} - {200.0}
    report = log.replay_report
    assert (report.corrupt_records, report.corrupt_bytes) == (1, victim.end - victim.start)
    assert report.degraded and report.torn_bytes == 0
    assert segment.read_bytes() == damaged  # nothing rewritten
    assert [Path(p).read_bytes() for p in report.preserved] == [damaged]

    # The log goes on after the last readable record; the damage stays counted, nothing else is lost.
    write_log(wal_dir, [ingest(k) for k in range(400, 410)])
    state, log = replay(wal_dir)
    assert first_values(state) == {float(k) for k in range(410)} - {200.0}
    assert log.replay_report.corrupt_records == 1


def test_damage_across_several_records_counts_each_lost_record(tmp_path):
    wal_dir = tmp_path / "wal"
    write_log(wal_dir, [ingest(k) for k in range(100)])
    segment = wal_dir / "wal-00000001.log"
    found = frames(segment)
    flip(segment, found[40].start + 30, count=found[43].start - found[40].start)  # 40..43 unreadable
    state, log = replay(wal_dir)
    assert first_values(state) == {float(k) for k in range(100)} - {40.0, 41.0, 42.0, 43.0}
    assert log.replay_report.corrupt_records == 4


def test_a_flip_in_the_last_record_is_a_torn_tail_zeroed_and_kept_aside(tmp_path):
    wal_dir = tmp_path / "wal"
    write_log(wal_dir, [ingest(k) for k in range(50)])
    segment = wal_dir / "wal-00000001.log"
    last = frames(segment)[-1]
    flip(segment, last.start + FRAME.size + 5)
    torn = segment.read_bytes()[last.start : last.end]

    state, log = replay(wal_dir)
    assert first_values(state) == {float(k) for k in range(49)}
    report = log.replay_report
    assert not report.degraded and report.torn_bytes == last.end - last.start
    assert segment.read_bytes()[last.start :].strip(b"\0") == b""
    assert (wal_dir / "corrupt" / f"wal-00000001.log.tail-{last.start}").read_bytes() == torn


def test_a_flipped_snapshot_falls_back_to_the_previous_segment_and_loses_nothing(tmp_path):
    wal_dir = tmp_path / "wal"
    expected = write_log(wal_dir, [ingest(k) for k in range(300)], rotate_at=(100, 200))
    assert [p.name for p in WriteAheadLog(wal_dir).segments()] == ["wal-00000002.log", "wal-00000003.log"]
    newest = wal_dir / "wal-00000003.log"
    snapshot = frames(newest)[0]
    assert snapshot.record[0] == "s"
    flip(newest, snapshot.start + FRAME.size + 40, count=1)

    state, log = replay(wal_dir)
    assert state.snapshot() == expected.snapshot()
    report = log.replay_report
    assert report.snapshot_fallback and report.degraded and report.corrupt_records == 0

    # The next rotation keeps the segment the fallback starts from until a readable snapshot follows.
    write_log(wal_dir, [ingest(k) for k in range(300, 310)], rotate_at=(5,))
    names = [p.name for p in WriteAheadLog(wal_dir).segments()]
    assert names == ["wal-00000002.log", "wal-00000003.log", "wal-00000004.log"]
    state, log = replay(wal_dir)
    assert first_values(state) == {float(k) for k in range(310)} and not log.replay_report.degraded


def test_a_flipped_snapshot_with_nothing_to_fall_back_to_refuses_and_changes_no_file(tmp_path):
    wal_dir = tmp_path / "wal"
    write_log(wal_dir, [ingest(k) for k in range(30)], rotate_at=(10, 20))
    (wal_dir / "wal-00000002.log").unlink()  # as if lost with the disk it was on
    newest = wal_dir / "wal-00000003.log"
    flip(newest, frames(newest)[0].start + FRAME.size + 3, count=1)
    before = newest.read_bytes()
    with pytest.raises(LogFormatError, match=r"wal-00000003\.log is corrupt.*To recover"):
        replay(wal_dir)
    assert newest.read_bytes() == before
    assert sorted(p.name for p in wal_dir.glob("wal-*")) == ["wal-00000003.log"]


def test_a_segment_of_a_newer_format_is_refused_by_name(tmp_path):
    wal_dir = tmp_path / "wal"
    write_log(wal_dir, [ingest(1)])
    segment = wal_dir / "wal-00000001.log"
    data = bytearray(segment.read_bytes())
    data[8:12] = struct.pack("<I", 3)
    data[24:28] = struct.pack("<I", zlib.crc32(bytes(data[:24])))
    segment.write_bytes(bytes(data))
    with pytest.raises(LogFormatError, match=r"wal-00000001\.log: format version 3 is newer"):
        replay(wal_dir)


def v1_frame(record: list) -> bytes:
    """The format before version 2: u32 length, u32 crc32, orjson record (the test's own encoder)."""
    payload = orjson.dumps(record)
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def test_an_old_format_log_with_a_flip_in_the_middle_keeps_the_records_after_it(tmp_path):
    wal_dir = tmp_path / "wal"
    wal_dir.mkdir()
    encoded = [v1_frame(ingest(k)) for k in range(60)]
    segment = wal_dir / "wal-00000001.log"
    segment.write_bytes(b"".join(encoded) + bytes(4096))
    flip(segment, sum(map(len, encoded[:30])) + 12)
    state, log = replay(wal_dir)
    assert first_values(state) == {float(k) for k in range(60)} - {30.0}
    assert log.replay_report.old_format and log.replay_report.corrupt_records == 1

    # New records go to a new segment in the current format, after the old one.
    write_log(wal_dir, [ingest(60)])
    assert read_header((wal_dir / "wal-00000002.log").read_bytes(), "").version == 2
    state, _ = replay(wal_dir)
    assert first_values(state) == {float(k) for k in range(61)} - {30.0}


# --- the real service ----------------------------------------------------------------------------


def acked_pairs(server, n: int, start: int = 0) -> list[str]:
    return [server.send_pair([[(start + k) / 1000, 1.0, "red"]], [0.5]) for k in range(n)]


def newest_segment(server) -> Path:
    return WriteAheadLog(server.data_dir / "wal").segments()[-1]


def test_service_after_a_mid_log_flip_keeps_every_other_pair_and_reports_the_damage(make_server):
    config = {"reports_enabled": False}
    server = make_server(config, window_size=100000, min_samples=100).start()
    acked_pairs(server, 600)
    before = server.window()
    server.kill()
    segment = newest_segment(server)
    found = frames(segment)
    assert len(found) == 1200  # a request and a response record per pair
    victim = found[600]
    assert victim.record[0] == "q"
    flip(segment, victim.start + FRAME.size + 12)
    damaged, end = segment.read_bytes(), found[-1].end

    again = make_server(config, window_size=100000, min_samples=100).start()
    after = again.window()
    # The request record is lost: that pair's row; its response waits unjoined. All others are there.
    assert (after["rows"], after["rows_total"]) == (before["rows"] - 1, before["rows_total"] - 1)
    assert after["pending_joins"] == 1 and after["pending_rows"] == 0
    ready = again.client.get("/readyz").json()
    assert ready["status"] == "degraded"
    assert ready["log"]["corrupt_records"] == 1 and ready["log"]["preserved"]
    assert again.metric("drift_detector_wal_corrupt_records_total") == 1
    assert again.metric("drift_detector_wal_corrupt_bytes_total") == victim.end - victim.start
    assert again.metric("drift_detector_wal_replay_degraded") == 1
    assert segment.read_bytes()[:end] == damaged[:end]  # the records after the damage stay on disk
    assert "corrupt bytes at byte" in again.log()


def test_service_after_a_snapshot_flip_replays_the_previous_segment_and_says_so(make_server):
    config = {"reports_enabled": False, "compact_bytes": 20000, "check_queue_size": 1000}
    server = make_server(config, window_size=100, min_samples=10).start()
    acked_pairs(server, 450)
    server.wait_for(lambda: server.window()["closed_unchecked"] == 0, timeout=60, what="checks")
    before = server.window()
    server.kill()
    segment = newest_segment(server)
    assert segment.name != "wal-00000001.log" and len(WriteAheadLog(segment.parent).segments()) == 2
    flip(segment, frames(segment)[0].start + FRAME.size + 20, count=1)

    again = make_server(config, window_size=100, min_samples=10).start()
    after = again.window()
    assert {k: after[k] for k in ("seq", "rows", "pending_rows", "rows_total")} == {
        k: before[k] for k in ("seq", "rows", "pending_rows", "rows_total")
    }
    ready = again.client.get("/readyz").json()
    assert ready["status"] == "degraded" and ready["log"]["snapshot_fallback"] is True
    assert ready["log"]["corrupt_records"] == 0
    assert again.metric("drift_detector_wal_replay_degraded") == 1


def test_service_refuses_to_start_on_an_unprovable_log_and_says_how_to_recover(make_server):
    config = {"reports_enabled": False, "compact_bytes": 20000}
    server = make_server(config, window_size=100, min_samples=10).start()
    acked_pairs(server, 250)
    server.kill()
    wal_dir = server.data_dir / "wal"
    for old in WriteAheadLog(wal_dir).segments()[:-1]:
        old.unlink()
    segment = newest_segment(server)
    flip(segment, frames(segment)[0].start + FRAME.size + 20, count=1)
    before = segment.read_bytes()

    again = make_server(config, window_size=100, min_samples=10)
    with open(again.tmp / "server.log", "ab") as log:  # Server.start waits for a 200 that never comes
        again.proc = subprocess.Popen(
            again.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    ready = again.wait_for(lambda: refusal(again), timeout=60, what="/readyz refusing the log")
    assert "is corrupt" in ready["reason"] and "To recover" in ready["reason"]
    assert again.proc.poll() is None  # still up: /healthz answers, /readyz tells why it is not ready
    assert again.client.post("/v1/ingest", json=[{"f_a": 1.0}]).status_code == 503
    assert segment.read_bytes() == before


def refusal(server) -> dict | None:
    try:
        response = server.client.get("/readyz")
    except httpx.TransportError:
        return None  # not listening yet
    return response.json() if response.status_code == 503 and "corrupt" in response.text else None


def test_service_reads_a_log_written_before_format_2(make_server):
    expected = json.loads((V1_FIXTURE / "expected.json").read_text())
    # The fixture's pending request is old: a TTL that never expires keeps the counts comparable.
    config = {"reports_enabled": False, "compact_bytes": 3000, "pending_ttl_seconds": 1e9}
    server = make_server(config, window_size=40, min_samples=10)
    shutil.copytree(V1_FIXTURE, server.data_dir / "wal", ignore=shutil.ignore_patterns("*.json"))
    server.start()
    window = server.window()
    keys = ("seq", "rows", "pending_joins", "pending_rows", "rows_total")
    assert {k: window[k] for k in keys} == {k: expected["open_window"][k] for k in keys}
    ready = server.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["log"]["old_format"] is True
    # The prediction store came back: the labelled id is gone from it, the others take labels.
    feedback = [{"id": i, "label": 1} for i in [expected["labelled_id"], *expected["unlabelled_ids"][:5]]]
    assert server.client.post("/v1/feedback", json=feedback).json()["matched"] == 5

    acked_pairs(server, 5)
    server.kill()
    assert read_header(newest_segment(server).read_bytes(), "").version == 2
    again = make_server(config, window_size=40, min_samples=10).start()
    assert again.window()["rows_total"] == expected["open_window"]["rows_total"] + 5
