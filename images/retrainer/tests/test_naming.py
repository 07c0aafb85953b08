import re

import pytest
from retrain_controller.naming import (
    MAX_DNS_LABEL,
    is_dns_1123_label,
    is_label_value,
    job_name,
    label_value,
)

NASTY = [
    "sustained",
    "Fraud_Model.v2/EU",
    "ünïcode-ñame",
    "---",
    "",
    "a" * 300,
    "UPPER CASE with spaces",
    "model.with.dots",
    "x",
    "9starts-with-digit",
    "ends-with-dash-",
    "emoji-🚀-model",
    "tab\tnewline\n",
]


@pytest.mark.parametrize("model", NASTY)
def test_job_name_is_a_dns_1123_label_for_any_model_name(model):
    name = job_name("retrain", "ml", model, 123)
    assert is_dns_1123_label(name), name
    assert len(name) <= MAX_DNS_LABEL
    assert name.startswith("retrain-")
    assert re.fullmatch(r"retrain-([a-z0-9-]+-)?[0-9a-f]{10}", name)


def test_job_name_keeps_a_readable_model_part():
    assert job_name("retrain", "ml", "Fraud_Model.v2/EU", 1).startswith("retrain-fraud-model-v2-eu-")


def test_job_name_is_deterministic_per_model_and_bucket():
    assert job_name("retrain", "ml", "m", 7) == job_name("retrain", "ml", "m", 7)
    assert job_name("retrain", "ml", "m", 7) != job_name("retrain", "ml", "m", 8)


def test_models_that_sanitise_alike_still_get_different_names():
    names = {
        job_name("retrain", "ml", "Model_A", 1),
        job_name("retrain", "ml", "model-a", 1),
        job_name("retrain", "ml", "model.a", 1),
        job_name("retrain", "other", "model-a", 1),
    }
    assert len(names) == 4


def test_long_names_are_truncated_without_a_trailing_dash():
    name = job_name("retrain", "ml", "b" * 52 + "-" + "c" * 20, 1)
    assert len(name) == MAX_DNS_LABEL
    assert is_dns_1123_label(name)


def test_prefix_is_honoured():
    assert job_name("fit", "ml", "m", 1).startswith("fit-m-")


@pytest.mark.parametrize("value", ["sustained", "Model_A.v2", "a" * 63])
def test_valid_label_values_are_kept_verbatim(value):
    assert label_value(value) == value


@pytest.mark.parametrize("value", [v for v in NASTY if not is_label_value(v)] + ["-x-", "a" * 64])
def test_invalid_label_values_are_sanitised_and_hashed(value):
    cleaned = label_value(value)
    assert is_label_value(cleaned), cleaned
    assert cleaned != value
    assert re.search(r"[0-9a-f]{10}$", cleaned)


def test_sanitised_label_values_do_not_collide():
    assert label_value("a/b") != label_value("a b")
    assert label_value("a" * 64) != label_value("a" * 65)


@pytest.mark.parametrize("prefix", ["r", "retrain", "a-twenty-char-prefix"])
def test_any_allowed_prefix_leaves_a_valid_name(prefix):
    name = job_name(prefix, "ml", "m" * 200, 1)
    assert is_dns_1123_label(name) and name.startswith(prefix + "-")
