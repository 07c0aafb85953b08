import math

from helpers import existing_job, make_settings, obs, queries
from retrain_controller.decision import CREATE, SKIP, decide, job_is_active
from retrain_controller.naming import job_name

NOW = 1_800_000_000.0  # a fixed decision time
HOUR = 3600


def run(observations, jobs=(), **overrides):
    settings = make_settings(**overrides)
    decisions = decide(list(observations), list(jobs), settings, queries(settings), NOW)
    return {(d.model_namespace, d.model_name): d for d in decisions}, settings


def test_sustained_drift_over_the_threshold_creates_one_job():
    decisions, settings = run([obs("m", 0.8)])
    decision = decisions[("ml", "m")]
    assert (decision.action, decision.reason) == (CREATE, "drift_sustained")
    bucket = math.floor(NOW / settings.cooldown_seconds)
    assert decision.job_name == job_name("retrain", "ml", "m", bucket)
    assert decision.manifest["metadata"]["name"] == decision.job_name


def test_threshold_is_inclusive():
    decisions, _ = run([obs("m", 0.5)], threshold=0.5)
    assert decisions[("ml", "m")].action == CREATE


def test_missing_and_nan_values_are_skipped_with_their_reason():
    decisions, _ = run([obs("gone", None), obs("nan", math.nan), obs("inf", math.inf)])
    assert (decisions[("ml", "inf")].action, decisions[("ml", "inf")].reason) == (SKIP, "value_nan")
    assert (decisions[("ml", "gone")].action, decisions[("ml", "gone")].reason) == (SKIP, "value_missing")
    assert (decisions[("ml", "nan")].action, decisions[("ml", "nan")].reason) == (SKIP, "value_nan")


def test_below_threshold_and_not_sustained_are_told_apart():
    decisions, _ = run([obs("calm", 0.2), obs("spike", 0.1, current=0.9)])
    assert decisions[("ml", "calm")].reason == "below_threshold"
    assert decisions[("ml", "spike")].reason == "not_sustained"
    assert all(d.action == SKIP for d in decisions.values())


def test_too_little_history_is_not_sustained_drift():
    decisions, _ = run([obs("new", 0.9, samples=6, expected=15)], minCoverage=0.9)
    assert (decisions[("ml", "new")].action, decisions[("ml", "new")].reason) == (
        SKIP,
        "insufficient_history",
    )
    decisions, _ = run([obs("gappy", 0.9, samples=14, expected=15)], minCoverage=0.9)
    assert decisions[("ml", "gappy")].action == CREATE


def test_history_is_not_required_when_sustained_for_is_zero():
    decisions, _ = run([obs("m", 0.9, samples=1, expected=1)], sustainedFor="0")
    assert decisions[("ml", "m")].action == CREATE


def test_an_active_job_for_the_model_blocks_a_second_one():
    settings = make_settings()
    running = existing_job(settings, "m", name="retrain-m-running", started="2020-01-01T00:00:00Z")
    decisions, _ = run([obs("m", 0.9)], [running])
    decision = decisions[("ml", "m")]
    assert (decision.action, decision.reason, decision.job_name) == (SKIP, "job_active", "retrain-m-running")


def test_a_job_not_yet_started_counts_as_active():
    job = {"metadata": {"name": "j", "creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {}}
    assert job_is_active(job)
    job["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    assert not job_is_active(job)


def test_a_finished_job_within_the_cooldown_blocks_and_after_it_does_not():
    settings = make_settings(cooldown="6h")
    recent = existing_job(settings, "m", started=_ago(2 * HOUR), finished="Complete")
    decisions, _ = run([obs("m", 0.9)], [recent], cooldown="6h")
    assert (decisions[("ml", "m")].action, decisions[("ml", "m")].reason) == (SKIP, "cooldown")
    assert decisions[("ml", "m")].detail == "last retrain started 7200s ago, 14400s left"
    old = existing_job(settings, "m", started=_ago(7 * HOUR), finished="Failed")
    decisions, _ = run([obs("m", 0.9)], [old], cooldown="6h")
    assert decisions[("ml", "m")].action == CREATE


def test_cooldown_uses_the_latest_of_several_jobs():
    settings = make_settings(cooldown="6h")
    jobs = [
        existing_job(settings, "m", name="a", started=_ago(30 * HOUR), finished="Complete"),
        existing_job(settings, "m", name="b", started=_ago(HOUR), finished="Failed"),
    ]
    decisions, _ = run([obs("m", 0.9)], jobs, cooldown="6h")
    assert (decisions[("ml", "m")].reason, decisions[("ml", "m")].job_name) == ("cooldown", "b")


def test_jobs_of_other_models_and_namespaces_do_not_block():
    settings = make_settings()
    jobs = [
        existing_job(settings, "other-model", started=_ago(60), name="x"),
        existing_job(settings, "m", namespace="elsewhere", started=_ago(60), name="y"),
    ]
    decisions, _ = run([obs("m", 0.9)], jobs, maxConcurrent=5)
    assert decisions[("ml", "m")].action == CREATE


def test_max_concurrent_counts_running_jobs_and_jobs_created_in_this_pass():
    settings = make_settings()
    running = existing_job(settings, "busy", started=_ago(60), name="busy-job")
    observations = [obs("low", 0.6), obs("high", 0.95), obs("mid", 0.7)]
    decisions, _ = run(observations, [running], maxConcurrent=2)
    # One slot is taken by busy-job, the free one goes to the most drifted model.
    assert decisions[("ml", "high")].action == CREATE
    assert decisions[("ml", "mid")].reason == "max_concurrent"
    assert decisions[("ml", "low")].reason == "max_concurrent"


def test_finished_jobs_do_not_count_against_max_concurrent():
    settings = make_settings()
    done = existing_job(settings, "other", started=_ago(10 * HOUR), finished="Complete")
    decisions, _ = run([obs("m", 0.9)], [done], maxConcurrent=1)
    assert decisions[("ml", "m")].action == CREATE


def test_two_overlapping_runs_in_one_bucket_choose_the_same_name():
    first, _ = run([obs("m", 0.9)])
    second, _ = run([obs("m", 0.9)])
    assert first[("ml", "m")].job_name == second[("ml", "m")].job_name


def test_same_model_name_in_two_namespaces_gets_two_jobs():
    decisions, _ = run([obs("m", 0.9, namespace="a"), obs("m", 0.9, namespace="b")], maxConcurrent=2)
    assert decisions[("a", "m")].action == decisions[("b", "m")].action == CREATE
    assert decisions[("a", "m")].job_name != decisions[("b", "m")].job_name


def _ago(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(NOW - seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
