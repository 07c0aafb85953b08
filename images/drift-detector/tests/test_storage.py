"""Storage faults and bounds against the real service: a small tmpfs that fills and frees under the
write-ahead log, response-only traffic that must not grow the log, and pending joins bounded by bytes.

The disk-full tests mount a tmpfs (root only) and always unmount it; they skip with the reason elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import orjson
import pytest
from conftest import REQUEST, RESPONSE, Server
from drift_detector.state import State, payload_bytes
from test_durability import logged_rows

MIB = 1024 * 1024
ROWS_PER_BATCH = 1000


@pytest.fixture
def tmpfs_data_dir(tmp_path):
    """A 16 MiB tmpfs mounted where make_server's first server keeps its data (tmp_path/s/data)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the disk-full tests run as root in this project's CI")
    mount_point = tmp_path / "s" / "data"
    mount_point.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    yield mount_point
    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)  # a process still holds it


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(mount_point: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free on the tmpfs, once the free space has settled
    (a detector that just started may still be zero-filling its first log chunk)."""
    free, deadline = free_bytes(mount_point), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.2)
        free, before = free_bytes(mount_point), free
        if free == before:
            break
    filler = mount_point / "filler"
    with open(filler, "wb") as fh:
        fh.write(bytes(max(0, free - leave)))
    return filler


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def ingest_batch(server: Server, first: int, n: int = ROWS_PER_BATCH, color: str = "red"):
    """n rows whose f_a values first/1000, (first+1)/1000, ... name them (unique across the test)."""
    rows = [{"f_a": (first + i) / 1000, "f_b": 1.0, "color": color} for i in range(n)]
    return server.client.post("/v1/ingest", json={"rows": rows})


class Traffic:
    """Ingested rows and unanswered request events; remembers what was acknowledged."""

    def __init__(self, server: Server):
        self.server = server
        self.next = 0
        self.acked_ingest = 0
        self.acked_pending = 0
        self.statuses: list[int] = []

    def step(self) -> int:
        first, self.next = self.next, self.next + ROWS_PER_BATCH + 2
        response = ingest_batch(self.server, first)
        self.statuses.append(response.status_code)
        if response.status_code == 200:
            self.acked_ingest += ROWS_PER_BATCH
        else:
            assert response.status_code == 503, response.text
            assert response.json()["reason"] in ("storage_error", "not_ready"), response.text
        instances = [[(first + ROWS_PER_BATCH + i) / 1000, 2.0, "blue"] for i in range(2)]
        event = self.server.post_event(str(uuid.uuid4()), REQUEST, {"instances": instances})
        if event.status_code == 200:
            self.acked_pending += 2
        else:
            assert event.status_code == 503 and event.json()["reason"] == "storage_error", event.text
        return response.status_code


def metric_total(server: Server, name: str) -> float:
    return sum(v for k, v in server.metrics().items() if k.startswith(name + "{"))


def test_disk_full_refuses_keeps_memory_true_and_recovers_without_restart(tmpfs_data_dir, make_server):
    config = {"reports_enabled": False, "pending_ttl_seconds": 3600.0, "compact_bytes": 64 * MIB}
    server = make_server(config, window_size=1_000_000, min_samples=100).start()
    pid = server.proc.pid
    traffic = Traffic(server)
    for _ in range(5):
        assert traffic.step() == 200
    filler = fill(tmpfs_data_dir, leave=3 * MIB)  # less than a 4 MiB chunk + 1 MiB reserve
    free_after_fill = free_bytes(tmpfs_data_dir)

    # The zeroed space left in the segment keeps taking rows; then the log refuses instead of growing.
    saw_no_room = False
    for _ in range(400):
        if traffic.step() == 503:
            break
        ready = server.client.get("/readyz")
        saw_no_room |= ready.status_code == 503 and "no room for the next" in ready.json()["reason"]
    else:
        raise AssertionError("the detector never refused a write on a full disk")
    assert saw_no_room, "/readyz never said there was no room for the next log chunk"
    assert server.metric("drift_detector_storage_errors_total", kind="no_room") >= 1
    assert free_bytes(tmpfs_data_dir) >= free_after_fill - 64 * 1024, "the log took the last free space"

    # While storage fails: every write is a 503 with a JSON reason, /readyz says why, memory stays put.
    ready = server.client.get("/readyz")
    assert ready.status_code == 503 and "storage unavailable" in ready.json()["reason"], ready.text
    assert server.metric("drift_detector_storage_ok") == 0
    assert server.metric("drift_detector_storage_refused_records_total") >= 1
    server.wait_for(  # the state was rebuilt from the log (a one-off copy); now only probes run
        lambda: "probe:" in server.client.get("/readyz").json()["reason"],
        what="the state rebuilt from the log",
    )
    rss_before = rss_bytes(pid)
    refused_before = traffic.statuses.count(503)
    for _ in range(300):  # 300 x 1000 rows (~14 MB of JSON) refused
        assert traffic.step() == 503
    rss_growth = rss_bytes(pid) - rss_before
    assert rss_growth < 16 * MIB, f"RSS grew {rss_growth} bytes while refusing"

    # Space comes back: the detector recovers by itself, same process.
    filler.unlink()
    server.wait_for(lambda: server.client.get("/readyz").status_code == 200, timeout=30, what="recovery")
    assert server.proc.poll() is None and server.proc.pid == pid
    assert server.metric("drift_detector_storage_ok") == 1
    for _ in range(3):
        assert traffic.step() == 200

    # Acknowledged rows == rows in memory == rows in the log (and after a restart).
    window = server.window()
    assert window["rows_total"] == traffic.acked_ingest, (window, traffic.acked_ingest)
    assert window["pending_rows"] == traffic.acked_pending
    server.stop()
    on_disk, state = logged_rows(server.data_dir)
    pending_rows = sum(len(e[2]) for e in state.pending.values() if e[2] is not None)
    assert (state.rows_total, pending_rows) == (traffic.acked_ingest, traffic.acked_pending)
    assert len(on_disk) == traffic.acked_ingest + traffic.acked_pending  # every row is a distinct f_a
    again = make_server(config, window_size=1_000_000, min_samples=100).start()  # same data dir
    assert again.window()["rows_total"] == traffic.acked_ingest
    print(
        f"\ndisk full: {len(traffic.statuses)} ingest batches, {refused_before} refused before the "
        f"RSS probe, {traffic.statuses.count(503)} refused in all, RSS growth while refusing "
        f"{rss_growth} bytes, rows lost 0"
    )


def test_a_batch_larger_than_the_free_space_is_refused_whole(tmpfs_data_dir, make_server):
    """A write that runs out of space half-way: the partial frame is zeroed, nothing of it is applied,
    the next batch that fits is accepted (after the automatic recovery)."""
    config = {"reports_enabled": False, "compact_bytes": 64 * MIB, "max_body_bytes": 16 * MIB}
    server = make_server(config, window_size=1_000_000, min_samples=100).start()
    assert ingest_batch(server, 0).status_code == 200
    fill(tmpfs_data_dir, leave=1 * MIB)
    huge = ingest_batch(server, 10_000, n=50_000, color="c" * 100)  # a ~6 MB record: past the zeroed 4 MiB
    assert huge.status_code == 503 and huge.json()["reason"] == "storage_error", huge.text
    server.wait_for(lambda: server.client.get("/readyz").status_code == 200, timeout=30, what="recovery")
    assert ingest_batch(server, 200_000).status_code == 200
    assert server.window()["rows_total"] == 2 * ROWS_PER_BATCH
    server.stop()
    on_disk, state = logged_rows(server.data_dir)
    assert state.rows_total == 2 * ROWS_PER_BATCH
    assert not [v for v in on_disk if 10 <= v < 200], "rows of the refused batch reached the log"


def test_a_log_that_fills_the_disk_itself_compacts_to_make_room(tmpfs_data_dir, make_server):
    """compact_bytes far above the volume: the log fills the disk, then compacts into a snapshot (small:
    windows close and are checked) instead of refusing for ever; no space is freed from outside."""
    config = {"reports_enabled": False, "compact_bytes": 64 * MIB, "check_queue_size": 2}
    server = make_server(config, window_size=ROWS_PER_BATCH, min_samples=100).start()
    fill(tmpfs_data_dir, leave=3 * MIB)
    traffic = Traffic(server)
    for _ in range(600):  # ~13 MB of log records through a volume with 7 MiB for the log
        traffic.step()
        if traffic.statuses[-1] == 503:  # only while a compaction is under way
            server.wait_for(lambda: server.client.get("/readyz").status_code == 200, what="recovery")
    segments = sorted(p.name for p in (server.data_dir / "wal").glob("wal-*.log"))
    assert int(segments[-1][4:12]) > 1, "the log never compacted"
    assert traffic.statuses.count(200) >= 500, traffic.statuses.count(503)
    assert server.window()["rows_total"] == traffic.acked_ingest
    print(f"\nself-filled disk: {len(traffic.statuses)} batches, {traffic.statuses.count(503)} refused")


def segment_data_bytes(wal_dir: Path) -> int:
    """Bytes of records in the log (the zero-filled space after them does not count)."""
    return sum(len(p.read_bytes().rstrip(b"\0")) for p in wal_dir.glob("wal-*.log"))


def response_batch(first: int, n: int) -> bytes:
    return orjson.dumps(
        [
            {
                "specversion": "1.0",
                "id": f"only-response-{first + i}",
                "type": RESPONSE,
                "source": "test",
                "datacontenttype": "application/json",
                "data": {"predictions": [0.25, 0.5, 0.75]},
            }
            for i in range(n)
        ]
    )


def test_response_only_traffic_keeps_the_log_bounded(make_server):
    """No window ever closes (responses carry no rows), yet the log compacts by its size."""
    compact = 100_000
    config = {"compact_bytes": compact, "pending_max_entries": 200, "prediction_store_size": 300}
    server = make_server(config, window_size=1000, min_samples=100).start()
    headers = {"content-type": "application/cloudevents-batch+json"}
    sent = 0
    for first in range(0, 6000, 200):
        response = server.client.post("/", content=response_batch(first, 200), headers=headers)
        assert response.status_code == 200, response.text
        sent += 200
    wal_dir = server.data_dir / "wal"
    segments = sorted(p.name for p in wal_dir.glob("wal-*.log"))
    logged = segment_data_bytes(wal_dir)
    assert server.window()["rows_total"] == 0  # not one window closed
    # Compacted more than once; the segment before the newest snapshot stays for a snapshot fallback.
    assert int(segments[-1][4:12]) > 2 and len(segments) <= 2, segments
    assert logged < 3 * compact, f"{logged} bytes of log after {sent} response-only events"
    print(f"\nresponse-only: {sent} events, log holds {logged} bytes (compact_bytes {compact})")


def test_pending_joins_and_windows_are_bounded(make_server):
    limit = 20_000
    config = {"pending_max_bytes": limit, "pending_ttl_seconds": 3600.0, "reports_enabled": False}
    server = make_server(config, window_size=100, min_samples=10).start()

    too_many = server.post_event("too-many", REQUEST, {"instances": [[0.1, 1.0, "red"]] * 101})
    assert too_many.status_code == 413 and too_many.json()["reason"] == "too_many_rows", too_many.text
    assert server.metric("drift_detector_events_total", type="request", outcome="too_many_rows") == 1

    heavy = server.post_event("heavy", REQUEST, {"instances": [[0.1, 1.0, "x" * 300]] * 90})
    assert heavy.status_code == 413 and heavy.json()["reason"] == "pending_too_large", heavy.text
    assert "pending_max_bytes" in heavy.json()["error"]
    assert server.metric("drift_detector_events_total", type="request", outcome="pending_too_large") == 1

    # Requests whose responses never come: the oldest are evicted by bytes, into the window.
    for i in range(20):
        body = {"instances": [[0.1, 1.0, "y" * 80]] * 40}  # ~4 KB each
        assert server.post_event(f"waiting-{i}", REQUEST, body).status_code == 200
        assert server.window()["pending_bytes"] <= limit
    assert server.metric("drift_detector_pending_bytes") <= limit
    evicted = server.metric("drift_detector_events_total", type="join", outcome="evicted_request")
    assert evicted >= 10
    assert server.window()["rows_total"] == 40 * evicted

    # One CloudEvents batch of 10 joined pairs (50 rows each): windows close as they fill.
    envelopes = []
    for i in range(10):
        for type_, data in (
            (REQUEST, {"instances": [[0.2, 1.0, "red"]] * 50}),
            (RESPONSE, {"predictions": [0.5] * 50}),
        ):
            envelopes.append(
                {"specversion": "1.0", "id": f"pair-{i}", "type": type_, "source": "t", "data": data}
            )
    response = server.client.post(
        "/", content=orjson.dumps(envelopes), headers={"content-type": "application/cloudevents-batch+json"}
    )
    assert response.status_code == 200, response.text
    server.wait_for(lambda: server.window()["closed_unchecked"] == 0, what="checks")
    time.sleep(0.5)
    windows = server.client.get("/api/v1/drift/history", params={"limit": 100}).json()["results"]
    sizes = [w["window"]["rows"] for w in windows]
    assert sizes and max(sizes) < 2 * 100, sizes


def test_stored_predictions_leave_the_garbage_collectors_walk():
    """The prediction store holds up to prediction_store_size entries for the labels to come. Kept as
    tuples of numbers or labels, the collector stops tracking them, so a full collection (which stalls
    the event loop) does not walk them; lists would stay tracked."""
    import gc

    state = State(store_size=10, performance_window=10)
    state.apply(["q", "a", "ra", 1.0, [[1.0, 2.0, "red"]]], 100)
    state.apply(["p", "a", "ra", 1.1, [0.7]], 5)  # joined: the prediction waits for its label
    state.apply(["i", [[3.0, 1.0, "blue"]], ["yes"], ["rb"], 1.2])  # ingested with an id
    restored = State(store_size=10, performance_window=10)
    restored.apply(["s", state.snapshot()])
    gc.collect()
    for s in (state, restored):
        assert dict(s.store) == {"ra": (0.7,), "rb": ("yes",)}
        assert not any(gc.is_tracked(preds) for preds in s.store.values())


def test_pending_bytes_follow_every_way_an_entry_comes_and_goes():
    """Live entries carry their received size; replayed ones are measured as JSON when first asked."""
    state = State(store_size=10, performance_window=10)
    state.apply(["q", "a", "ra", 1.0, [[1.0, 2.0, "red"]]], 100)
    state.apply(["p", "b", "rb", 1.0, [0.5]])  # as replay applies it: no size
    assert state.pending_bytes == 100 + payload_bytes([0.5])
    state.apply(["p", "a", "ra", 1.1, [0.7]], 5)  # joins a: it leaves the table
    assert state.pending_bytes == payload_bytes([0.5])
    state.apply(["q", "c", "rc", 1.2, [[3.0, 1.0, "blue"]]])
    state.apply(["x", "b"])
    state.apply(["x", "c"])
    assert state.pending_bytes == 0 and not state.pending_sizes
    state.apply(["q", "d", "rd", 1.3, [[4.0, 1.0, "red"]]], 7)
    copy = State(store_size=10, performance_window=10)
    copy.apply(["s", state.snapshot()])
    assert copy.pending_bytes == payload_bytes([[4.0, 1.0, "red"]])
