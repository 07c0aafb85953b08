"""The command line: KServe's flags, our settings (flag, environment, config key), refusing bad values
and refusing to start without a model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import MAKE_MODEL, run_cli
from kmm_settings.reference import render_readme
from monitored_predictor.cli import TABLE, SettingError, parse_args

README = Path(__file__).resolve().parents[1] / "README.md"


def test_help_lists_kserve_flags_and_ours_with_their_environment_twins():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for kserve_flag in ("--model_name", "--http_port", "--grpc_port", "--workers", "--enable_grpc"):
        assert kserve_flag in text
    for setting in TABLE.settings:
        assert setting.flag in text and f"[env {setting.env}]" in text
    assert "[env PREDICTOR_CONFIG]" in text


def test_missing_model_directory_exits_with_one_line_reason(tmp_path):
    result = run_cli("--model_dir", str(tmp_path / "absent"), "--enable_grpc", "false")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"monitored_predictor: cannot serve: model directory {tmp_path / 'absent'} does not exist"
    ]


def test_unreadable_model_exits_with_one_line_reason(tmp_path):
    (tmp_path / "model.joblib").write_bytes(b"\x80\x04garbage")
    result = run_cli(env={"MODEL_DIR": str(tmp_path)})  # the environment twin of --model_dir
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"monitored_predictor: cannot serve: cannot load {tmp_path / 'model.joblib'}: ")


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"MAX_BATCH_SIZE": "many"},
            "invalid config max_batch_size: expected a whole number, got 'many' (from env MAX_BATCH_SIZE)",
        ),
        (
            {"ALLOW_NON_FINITE": "sure"},
            "invalid config allow_non_finite: expected one of true/yes/on/1/false/no/off/0, got 'sure' "
            "(from env ALLOW_NON_FINITE)",
        ),
        (
            {"PREDICTION_BUCKETS": "0.5,0.5"},
            "invalid config prediction_buckets: bucket bounds must be distinct, got [0.5, 0.5] "
            "(from env PREDICTION_BUCKETS)",
        ),
    ],
)
def test_the_entry_point_refuses_a_bad_environment_value_with_exit_2_and_one_line(demo_model_dir, env, line):
    result = run_cli("--model_dir", str(demo_model_dir), env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"monitored_predictor: {line}"]


def test_settings_come_from_flag_then_environment_then_config_file(tmp_path):
    config = tmp_path / "predictor.yaml"
    config.write_text(
        "max_batch_size: 10\nreturn_all_scores: yes\nprediction_buckets: [0.9, 0.1]\nhttp_host: ::1\n"
    )
    env = {"PREDICTOR_CONFIG": str(config), "MAX_BATCH_SIZE": "20", "HTTP_HOST": ""}
    args = parse_args(["--max_batch_size", "30", "--model_name", "m"], env)
    assert (args.max_batch_size, args.return_all_scores, args.http_host) == (30, True, "::1")
    assert args.prediction_buckets == (0.1, 0.9) and args.model_name == "m"
    assert parse_args([], env).max_batch_size == 20


def test_an_unknown_config_key_is_refused(tmp_path):
    config = tmp_path / "predictor.yaml"
    config.write_text("max_batch: 10\n")
    with pytest.raises(
        SettingError, match=r"^invalid config max_batch: unknown key \(known: allow_non_finite, "
    ):
        parse_args(["--config", str(config)], {})


def test_the_readme_settings_table_is_current():
    text = README.read_text(encoding="utf-8")
    assert render_readme(TABLE, text) == text, "run `make settings-docs`"


def test_workers_must_stay_1(demo_model_dir):
    workers = run_cli("--model_dir", str(demo_model_dir), "--workers", "2")
    assert workers.returncode == 2
    assert "--workers must be 1" in workers.stderr


def test_make_model_writes_the_contract_files_deterministically(demo_dir, tmp_path, feature_names):
    again = subprocess.run(
        [sys.executable, str(MAKE_MODEL), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert "holdout.parquet" in again.stdout
    schema = json.loads((tmp_path / "model" / "schema.json").read_text())
    assert len(schema["features"]) == 30 and all(f["type"] == "numeric" for f in schema["features"])
    assert schema["output"] == {"kind": "probability", "classes": [0, 1], "positive_class": 1}
    assert feature_names[0] == "mean_radius" and "worst_concave_points" in feature_names

    reference = pd.read_parquet(tmp_path / "reference.parquet")
    holdout = pd.read_parquet(tmp_path / "holdout.parquet")
    assert list(reference.columns) == [*feature_names, "prediction", "target"]
    assert list(holdout.columns) == [*feature_names, "target"]
    assert len(reference) + len(holdout) == 569  # the whole bundled data set
    assert reference["prediction"].between(0, 1).all() and set(reference["target"]) == {0, 1}
    pd.testing.assert_frame_equal(reference, pd.read_parquet(demo_dir / "reference.parquet"))
    pd.testing.assert_frame_equal(holdout, pd.read_parquet(demo_dir / "holdout.parquet"))
