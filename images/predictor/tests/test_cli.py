"""The command line: flags and their environment twins, and refusing to start without a model."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
from conftest import MAKE_MODEL, run_cli
from monitored_predictor.cli import OWN_FLAGS


def test_help_lists_kserve_flags_and_ours_with_their_environment_twins():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for kserve_flag in ("--model_name", "--http_port", "--grpc_port", "--workers", "--enable_grpc"):
        assert kserve_flag in text
    for flag, env, _, _, _ in OWN_FLAGS:
        assert flag in text and f"[env {env}]" in text


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


def test_bad_values_are_refused_like_bad_flags(demo_model_dir):
    bad_env = run_cli("--model_dir", str(demo_model_dir), env={"MAX_BATCH_SIZE": "many"})
    assert bad_env.returncode == 2
    assert "--max_batch_size: expected a whole number of at least 1, got 'many'" in bad_env.stderr
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
