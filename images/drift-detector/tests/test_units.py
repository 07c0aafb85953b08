"""Unit tests: body decoding, model quality metrics, the WAL's group commit."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from conftest import make_reference
from drift_detector import decode, performance, wal_format
from drift_detector import wal as wal_module
from drift_detector.config import Settings
from drift_detector.schema import BadInput, build_schema
from drift_detector.wal import WriteAheadLog


@pytest.fixture(scope="module")
def schema():
    return build_schema(make_reference(), Settings())[0]


def test_schema_excludes_prediction_and_target_and_keeps_reference_order(schema):
    assert schema.names == ["f_a", "f_b", "color"]
    assert [c.kind for c in schema.columns] == ["numeric", "numeric", "categorical"]


def test_window_frames_keep_missing_values_as_nan_with_and_without_text_columns(schema):
    """All-numeric schemas take one numpy conversion, mixed ones a column at a time: same frame."""
    numeric = build_schema(make_reference().drop(columns=["color"]), Settings())[0]
    rows = [[1.0, None, "red"], [None, None, "blue"], [3.5, None, None]]
    mixed = schema.frame(rows)
    fast = numeric.frame([row[:2] for row in rows])
    pd.testing.assert_frame_equal(fast, mixed[["f_a", "f_b"]])
    assert list(fast.dtypes) == ["float64", "float64"] and fast["f_b"].isna().all()
    assert fast["f_a"].isna().tolist() == [False, True, False] and fast["f_a"][2] == 3.5


def test_v2_flat_and_nested_tensors_decode_to_the_same_rows(schema):
    flat = {
        "inputs": [
            {"name": "x", "shape": [2, 3], "datatype": "BYTES", "data": ["1", "2", "red", "3", "4", "blue"]}
        ]
    }
    nested = {
        "inputs": [
            {
                "name": "x",
                "shape": [2, 3],
                "datatype": "BYTES",
                "data": [["1", "2", "red"], ["3", "4", "blue"]],
            }
        ]
    }
    want = [[1.0, 2.0, "red"], [3.0, 4.0, "blue"]]
    assert decode.decode_request(schema, flat, Counter()) == want
    assert decode.decode_request(schema, nested, Counter()) == want


def test_fp_tensor_refuses_strings_and_counts_bool_and_int(schema):
    dq = Counter()
    assert decode.decode_request(schema, {"instances": [[True, 2, "red"]]}, dq) == [[1.0, 2.0, "red"]]
    with pytest.raises(BadInput) as err:
        decode.decode_request(schema, {"instances": [["1.5", 2, "red"]]}, Counter())
    assert err.value.outcome == "non_numeric" and "f_a" in str(err.value)


def test_response_decoding_v1_v2_and_class_scores():
    assert decode.decode_response({"predictions": [0.2, [0.1, 0.9]]}, "predictions", -1) == [0.2, 0.9]
    scores = {"name": "predictions", "shape": [2, 2], "datatype": "FP64", "data": [0.3, 0.7, 0.6, 0.4]}
    v2 = {"outputs": [{"name": "other", "shape": [1], "datatype": "FP32", "data": [5]}, scores]}
    assert decode.decode_response(v2, "predictions", 1) == [0.7, 0.4]
    with pytest.raises(BadInput):
        decode.decode_response({"predictions": [{"a": 1}]}, "predictions", -1)


def test_classification_and_regression_metrics_match_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(3)
    scores = rng.uniform(size=200).round(2)  # ties on purpose
    labels = (rng.uniform(size=200) < scores).astype(int)
    got = performance.classification([[s, int(y)] for s, y in zip(scores, labels, strict=True)], 1, 0.5)
    pred = (scores >= 0.5).astype(int)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, scores), rel=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(labels, pred), rel=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred), rel=1e-12)
    y = rng.normal(size=100)
    p = y + rng.normal(scale=0.3, size=100)
    reg = performance.regression([[a, b] for a, b in zip(p, y, strict=True)])
    assert reg["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert reg["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert reg["r2"] == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    only_one_class = performance.classification([[0.9, 1], [0.2, 1]], 1, 0.5)
    assert "roc_auc" not in only_one_class


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
def test_group_commit_acknowledges_everything_in_order(tmp_path, policy):
    async def run():
        wal = WriteAheadLog(tmp_path / "wal", policy)
        list(wal.replay())
        wal.start(asyncio.get_running_loop())

        async def writer(k):
            for i in range(50):
                wal.append(["i", k, i])
                await wal.commit()

        await asyncio.gather(*(writer(k) for k in range(8)))
        wal.append(["i", "last", 0])
        pending = wal.commit()
        await asyncio.sleep(0)  # its write happened; under `always` its fsync is in flight now
        wal.rotate({"n": 401})  # the snapshot covers everything appended so far
        wal.append(["d", 1])
        await wal.commit()
        await pending
        wal.close()

    asyncio.run(run())
    records = list(WriteAheadLog(tmp_path / "wal").replay())
    assert records == [["s", {"n": 401}], ["d", 1]]  # the snapshot replaced the 401 records
    # The segment before the snapshot stays, for a fallback if the snapshot cannot be read.
    assert len(list((tmp_path / "wal").glob("wal-*.log"))) == 2


def test_always_acknowledges_only_after_an_fdatasync_that_covers_the_record(tmp_path, monkeypatch):
    """fsync always: every commit resolves after an fdatasync that began once its record was
    written, and concurrent commits share fsyncs (group commit) instead of one each."""
    wal = WriteAheadLog(tmp_path / "wal", "always")
    synced_up_to = record_fdatasyncs(wal, monkeypatch)

    async def run():
        list(wal.replay())
        wal.start(asyncio.get_running_loop())

        async def writer(k):
            for i in range(50):
                wal.append(["i", k, i])
                end = wal.bytes_in_segment
                await wal.commit()
                assert synced_up_to and max(synced_up_to) >= end

        await asyncio.gather(*(writer(k) for k in range(8)))
        wal.close()

    asyncio.run(run())
    assert len(synced_up_to) <= 100  # 8 writers x 50 commits: about one fsync per round, not 400
    assert [r[2] for r in WriteAheadLog(tmp_path / "wal").replay() if r[1] == 0] == list(range(50))


def counting_pwrites(monkeypatch) -> list[int]:
    """The real pwrite, recording the size of each write of records (frames start with the marker; the
    helper thread's zero-fills, which may run at any moment, start with a zero byte)."""
    sizes: list[int] = []
    real_pwrite = wal_module.os.pwrite

    def counting_pwrite(fd, data, offset):
        if bytes(data[:1]) == wal_format.MARKER[:1]:
            sizes.append(len(data))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(wal_module.os, "pwrite", counting_pwrite)
    return sizes


async def started(wal: WriteAheadLog) -> WriteAheadLog:
    """A log replayed and started, its first chunk zero-filled (mapped, when it maps)."""
    list(wal.replay())
    wal.start(asyncio.get_running_loop())
    while wal._extending:
        await asyncio.sleep(0.005)
    return wal


def replayed_copy(directory, tmp_path) -> list[list]:
    """What a restarted process would read: a copy of the files as they are now (no close, no fsync)."""
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    return list(WriteAheadLog(copy).replay())


@pytest.mark.parametrize("mapped", [True, False])
def test_records_reach_the_file_at_commit_through_the_map_or_pwrite(tmp_path, monkeypatch, mapped):
    """wal_write mmap: commits copy records into the map, no system call each; pwrite: one per commit.
    Either way the file holds every acknowledged record at once (a killed process loses none)."""
    wal = WriteAheadLog(tmp_path / "wal", "interval", fsync_interval_ms=60_000, mapped=mapped)
    records = [["i", i, "x" * (i * 37 % 500)] for i in range(200)]

    async def run():
        await started(wal)
        pwrites = counting_pwrites(monkeypatch)
        for record in records:
            wal.append(record)
            await wal.commit()
        assert len(pwrites) == (0 if mapped else len(records))
        assert replayed_copy(tmp_path / "wal", tmp_path) == records
        wal.close()

    asyncio.run(run())


def test_a_write_past_the_mapped_space_goes_through_pwrite_and_the_map_follows(tmp_path, monkeypatch):
    """A commit larger than the zeroed room left is written with pwrite (a full disk refuses it there);
    once the next chunk is zeroed, the map covers it and commits copy into it again."""
    wal = WriteAheadLog(tmp_path / "wal", "interval", fsync_interval_ms=60_000)
    big = ["i", "big", "y" * (wal_module.CHUNK + 1000)]

    async def run():
        await started(wal)
        pwrites = counting_pwrites(monkeypatch)
        wal.append(["i", "small", 0])
        await wal.commit()
        wal.append(big)
        await wal.commit()
        assert len(pwrites) == 1 and pwrites[0] > wal_module.CHUNK  # the big one
        while wal._extending:  # the next chunk is zeroed and mapped
            await asyncio.sleep(0.005)
        wal.append(["i", "after", 1])
        await wal.commit()
        assert len(pwrites) == 1  # in the new map
        assert replayed_copy(tmp_path / "wal", tmp_path) == [["i", "small", 0], big, ["i", "after", 1]]
        wal.close()

    asyncio.run(run())


def record_fdatasyncs(wal: WriteAheadLog, monkeypatch) -> list[int]:
    """The real fdatasync, recording the written end of the log when each one began (once it is done)."""
    synced_up_to: list[int] = []
    real_fdatasync = wal_module.os.fdatasync

    def recording_fdatasync(fd):
        written = wal._offset
        real_fdatasync(fd)
        synced_up_to.append(written)

    monkeypatch.setattr(wal_module.os, "fdatasync", recording_fdatasync)
    return synced_up_to


def test_interval_acknowledges_logger_records_once_written_and_syncs_them_within_the_interval(
    tmp_path, monkeypatch
):
    """The default policy: a logger event's commit resolves after the write, before any fdatasync covers
    it; with no traffic after it, an fdatasync still covers it within fsync_interval_ms."""
    wal = WriteAheadLog(tmp_path / "wal", "interval", fsync_interval_ms=300)
    synced_up_to = record_fdatasyncs(wal, monkeypatch)

    async def covered(end: int) -> float:
        """Seconds until an fdatasync covers the log up to end."""
        start = time.monotonic()
        while not any(written >= end for written in synced_up_to):
            assert time.monotonic() - start < 5, "no fdatasync ever covered the record"
            await asyncio.sleep(0.005)
        return time.monotonic() - start

    async def run():
        list(wal.replay())
        wal.start(asyncio.get_running_loop())
        for i in range(2):  # the second one is written well within the interval of the first's fsync
            wal.append(["i", i, 0])
            end = wal.bytes_in_segment
            await wal.commit()
            if i == 1:  # the first one's fdatasync starts at once (none for an interval): it may be done
                assert not any(written >= end for written in synced_up_to)  # acknowledged before it
            waited = await covered(end)
        wal.close()
        return waited

    assert 0.1 < asyncio.run(run()) < 2  # the timer's fdatasync, not one at once nor at close()


def test_interval_acknowledges_a_durable_commit_only_after_an_fdatasync_that_covers_it(tmp_path, monkeypatch):
    """Ingest and feedback (callers that retry) are acknowledged as under `always`, at once, not after
    the interval; logger commits that share the write are not held back by it."""
    wal = WriteAheadLog(tmp_path / "wal", "interval", fsync_interval_ms=60_000)
    synced_up_to = record_fdatasyncs(wal, monkeypatch)

    async def run():
        list(wal.replay())
        wal.start(asyncio.get_running_loop())
        await asyncio.sleep(0.3)
        wal.append(["i", 0, 0])
        logger = wal.commit()
        wal.append(["f", [["a", 1]]])
        end = wal.bytes_in_segment
        durable = wal.commit(durable=True)
        await logger
        assert not durable.done()  # its fdatasync is in flight
        await asyncio.wait_for(durable, 5)  # long before the 60 s interval
        assert max(synced_up_to) >= end
        wal.close()

    asyncio.run(run())


def test_out_of_range_allows_the_configured_share_of_the_reference_range():
    """f_b spans [lo, hi] in the reference; 10% of that range either side is still in range."""
    reference = make_reference()
    lo, hi = reference["f_b"].min(), reference["f_b"].max()
    width = hi - lo

    def out_of_range(settings: Settings, value: float) -> int:
        schema = build_schema(reference, settings)[0]
        dq = Counter()
        schema.row([0.0, value, "red"], dq)
        return dq[("f_b", "out_of_range")]

    default = Settings()
    assert default.range_tolerance == 0.1
    assert out_of_range(default, hi + 0.09 * width) == 0
    assert out_of_range(default, lo - 0.09 * width) == 0
    assert out_of_range(default, hi + 0.11 * width) == 1
    assert out_of_range(default, lo - 0.11 * width) == 1
    exact = Settings(range_tolerance=0.0)
    assert out_of_range(exact, hi) == 0
    assert out_of_range(exact, hi + 1e-9 * width) == 1


def test_bool_and_categorical_int_columns_store_the_reference_values():
    """Window values must be the reference's own categories, or every window drifts."""
    import pandas as pd

    reference = pd.DataFrame(
        {"flag": [True, False, False], "grade": pd.Categorical([1, 2, 3]), "x": [0.0, 1.0, 2.0]}
    )
    schema = build_schema(reference, Settings())[0]
    v2 = {
        "inputs": [
            {"name": "flag", "shape": [3], "datatype": "BOOL", "data": [True, False, True]},
            {"name": "grade", "shape": [3], "datatype": "INT64", "data": [3, 1, 2]},
            {"name": "x", "shape": [3], "datatype": "FP64", "data": [0.5, 1.5, 1.0]},
        ]
    }
    dq = Counter()
    rows = decode.decode_request(schema, v2, dq)
    assert rows == [[True, 3, 0.5], [False, 1, 1.5], [True, 2, 1.0]] and not dq
    assert all(type(r[0]) is bool and type(r[1]) is int for r in rows)
    # BYTES tensors carry text: no wrong type; a number for a bool is one, but still the category.
    dq = Counter()
    assert schema.row(["true", "2", 1.0], dq, parse_strings=True) == [True, 2, 1.0] and not dq
    assert schema.row([1, 2.0, 1.0], dq) == [True, 2, 1.0]
    assert dq == Counter({("flag", "wrong_type"): 1})
    dq = Counter()
    assert schema.row(["maybe", 7, 1.0], dq) == ["maybe", 7, 1.0]
    assert dq == Counter(
        {("flag", "wrong_type"): 1, ("flag", "unseen_category"): 1, ("grade", "unseen_category"): 1}
    )
    frame = schema.frame(rows)
    assert frame["flag"].value_counts().to_dict() == {True: 2, False: 1}


def test_the_service_freezes_what_it_loaded_before_it_serves(tmp_path, reference_path, monkeypatch):
    """Modules and start-up objects (~110,000 the collector tracks) live as long as the process:
    main() freezes them before serving, so a full collection no longer walks them."""
    import gc

    import uvicorn
    from drift_detector.__main__ import main

    frozen_when_serving = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: frozen_when_serving.append(gc.get_freeze_count()))
    args = ["--reference", str(reference_path), "--data-dir", str(tmp_path / "data")]
    try:
        assert main([*args, "--reports-dir", str(tmp_path / "reports")]) == 0
    finally:
        gc.unfreeze()
    assert frozen_when_serving and frozen_when_serving[0] > 10_000


def test_a_check_that_finishes_during_shutdown_is_logged_after_the_restart(tmp_path, reference_path):
    """Stopping joins the checker thread; a check it finishes then hands its window back to the event
    loop after the log is closed. That is no storage failure: the window stays closed and unchecked in
    the log. The next start finds the window's result in the history and logs the window checked,
    without a second check; had the process died before the result was kept, it checks it again."""
    import threading

    from conftest import sample_rows
    from drift_detector.config import load_settings
    from drift_detector.service import Service

    def args(data: str) -> list[str]:
        return ["--reference", str(reference_path), "--data-dir", str(tmp_path / data), "--window-size",
                "20", "--min-samples", "20", "--reports-dir", str(tmp_path / "reports"),
                "--reports-enabled=false"]  # fmt: skip

    async def live(data: str) -> Service:
        service = Service(load_settings(args(data)))
        await service.start()
        while not service.ready:
            await asyncio.sleep(0.05)
        return service

    async def checked_after_restart(data: str) -> list[int]:
        restarted = await live(data)
        for _ in range(200):
            if not restarted.state.closed:
                break
            await asyncio.sleep(0.05)
        assert not restarted.state.closed  # logged checked
        results = [r["window"]["seq"] for r in restarted.checker.recent(10)]
        await restarted.stop()
        return results

    async def run():
        service = await live("data")
        checking, release = threading.Event(), threading.Event()
        check = service.checker._check

        def slow_check(job):
            checking.set()
            release.wait(10)
            check(job)

        service.checker._check = slow_check
        await service.ingest({"rows": sample_rows(20, seed=3)})  # fills the window: it closes
        assert await asyncio.to_thread(checking.wait, 10)
        threading.Timer(0.2, release.set).start()  # finishes while stop() joins the checker
        await service.stop()
        await asyncio.sleep(0.2)  # the loop runs the hand-back the check scheduled
        assert service.wal.error is None and service._recovery is None
        assert list(service._replayed_state().closed) == [1]  # the log: closed, never checked

        shutil.copytree(tmp_path / "data", tmp_path / "died-mid-check")
        (tmp_path / "died-mid-check" / "history.jsonl").unlink()  # as if killed before the result was kept
        assert await checked_after_restart("data") == [1]  # one result: not checked twice
        assert await checked_after_restart("died-mid-check") == [1]  # checked after the restart

    asyncio.run(run())


def test_ingest_and_feedback_answer_after_an_fdatasync_under_the_default_policy(
    tmp_path, reference_path, monkeypatch
):
    """Callers of /v1/ingest and /v1/feedback retry a failed call, so under `interval` too their answer
    follows an fdatasync that covers their records (Service passes durable commits)."""
    from conftest import sample_rows
    from drift_detector.config import load_settings
    from drift_detector.service import Service

    args = ["--reference", str(reference_path), "--data-dir", str(tmp_path / "data")]
    args += ["--reports-dir", str(tmp_path / "reports"), "--reports-enabled=false"]
    service = Service(load_settings(args))
    assert service.settings.fsync == "interval"
    synced_up_to = record_fdatasyncs(service.wal, monkeypatch)
    rows = [{**row, "prediction": 0.5, "id": f"r{i}"} for i, row in enumerate(sample_rows(3, seed=1))]

    async def run():
        await service.start()
        while not service.ready:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the first chunk's zero-fill and its fdatasync are done
        for call, doc in ((service.ingest, {"rows": rows}), (service.feedback, [{"id": "r1", "label": 1}])):
            end = service.wal.bytes_in_segment
            await call(doc)
            assert service.wal.bytes_in_segment > end  # it logged records
            assert max(synced_up_to) >= service.wal.bytes_in_segment, call.__name__
        await service.stop()

    asyncio.run(run())
