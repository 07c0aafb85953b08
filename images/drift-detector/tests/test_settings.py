"""Settings: every field has a flag, an environment variable and a config key; bad values stop the real
entry point with exit 2 and one line; the environment is honoured by the running service."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from drift_detector.config import TABLE, ConfigError, Settings, load_settings
from kmm_settings.reference import render_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def run_entry_point(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drift_detector", *argv],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
    )


def test_every_settings_field_has_exactly_one_table_row_with_the_same_default():
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert [s.name for s in TABLE.settings] == list(fields)
    defaults = Settings()
    for setting in TABLE.settings[1:]:  # reference is required: no default in the table
        assert setting.default == getattr(defaults, setting.name), setting.name
        assert setting.env == "DRIFT_DETECTOR_" + setting.name.upper() and setting.key == setting.name


def test_help_lists_every_flag_with_its_environment_variable():
    out = " ".join(run_entry_point("--help").stdout.split())
    for setting in TABLE.settings:
        assert f"{setting.flag} VALUE" in out and f"[env {setting.env}]" in out
    assert "[env DRIFT_DETECTOR_CONFIG]" in out


def test_flags_beat_environment_beats_yaml(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("window_size: 500\nmin_samples: 50\nfsync: interval\nstattests: {f_a: ks}\n")
    env = {"DRIFT_DETECTOR_WINDOW_SIZE": "700", "DRIFT_DETECTOR_REFERENCE": "/ref.parquet"}
    s = load_settings(["--config", str(config), "--min-samples", "60"], env)
    assert (s.window_size, s.min_samples, s.fsync, s.stattests) == (700, 60, "interval", {"f_a": "ks"})
    assert s.reference == Path("/ref.parquet")


def test_every_former_file_only_setting_now_has_an_environment_twin():
    env = {
        "DRIFT_DETECTOR_HTTP_HOST": "127.0.0.1",
        "DRIFT_DETECTOR_SEGMENT_COLUMNS": "color, region",
        "DRIFT_DETECTOR_THRESHOLDS": "{f_a: 0.2}",
        "DRIFT_DETECTOR_REPORTS_ENABLED": "off",
        "DRIFT_DETECTOR_POSITIVE_LABEL": "yes-label",
        "DRIFT_DETECTOR_WINDOW_MAX_AGE_SECONDS": "30",
    }
    s = load_settings(["--reference", "r.parquet"], env)
    assert s.http_host == "127.0.0.1" and s.segment_columns == ["color", "region"]
    assert s.thresholds == {"f_a": 0.2} and s.reports_enabled is False
    assert s.positive_label == "yes-label" and s.window_max_age_seconds == 30.0


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("windw_size: 3\n", "invalid config windw_size: unknown key"),
        ("fsync: sometimes\n", "invalid config fsync: expected one of always, interval, never"),
        ("window_size: 10\nmin_samples: 20\n", "invalid config min_samples: must not exceed"),
        ("column_types: {f_a: text}\n", "invalid config column_types: ['f_a']: expected one of numeric"),
        ("window_size: lots\n", "invalid config window_size: expected a whole number, got 'lots'"),
        ("range_tolerance: -0.1\n", "invalid config range_tolerance: must be >= 0"),
        ("multivariate_enabled: enabled\n", "invalid config multivariate_enabled: expected one of true/"),
        ("reports_enabled: flase\n", "invalid config reports_enabled: expected one of true/"),
        ("segment_columns: {a: 1}\n", "invalid config segment_columns: expected a list"),
    ],
)
def test_bad_config_names_the_key_and_the_file(tmp_path, yaml_text, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_settings(["--config", str(config), "--reference", "r.parquet"], {})
    assert str(err.value).startswith(message) and "(from config file " in str(err.value)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"DRIFT_DETECTOR_HTTP_PORT": "80a"},
            "drift_detector: invalid config http_port: expected a whole number, got '80a' "
            "(from env DRIFT_DETECTOR_HTTP_PORT)",
        ),
        (
            {"DRIFT_DETECTOR_MULTIVARIATE_ENABLED": "ture"},
            "drift_detector: invalid config multivariate_enabled: expected one of "
            "true/yes/on/1/false/no/off/0, got 'ture' (from env DRIFT_DETECTOR_MULTIVARIATE_ENABLED)",
        ),
        (
            {"DRIFT_DETECTOR_WINDOW_SIZE": "²"},
            "drift_detector: invalid config window_size: expected a whole number, got '²' "
            "(from env DRIFT_DETECTOR_WINDOW_SIZE)",
        ),
    ],
)
def test_the_entry_point_refuses_a_bad_environment_value_with_exit_2_and_one_line(tmp_path, env, line):
    proc = run_entry_point("--reference", "r.parquet", "--data-dir", str(tmp_path), env=env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line]


def test_the_entry_point_without_reference_says_how_to_give_it():
    proc = run_entry_point()
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "drift_detector: invalid config reference: is required "
        "(flag --reference, env DRIFT_DETECTOR_REFERENCE or config key reference)"
    ]


def test_the_service_binds_the_address_from_the_environment_over_the_config_file(make_server, monkeypatch):
    """The demo sets DRIFT_DETECTOR_HTTP_HOST=127.0.0.1; this binds 127.0.0.2 to tell it from a wildcard."""
    monkeypatch.setenv("DRIFT_DETECTOR_HTTP_HOST", "127.0.0.2")
    server = make_server()  # its config file says http_host: 127.0.0.1
    server.url = f"http://127.0.0.2:{server.port}"
    server.client = httpx.Client(base_url=server.url, timeout=30)
    server.start()
    assert server.client.get("/healthz").status_code == 200
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", server.port))


def test_the_readme_settings_table_is_current():
    text = README.read_text(encoding="utf-8")
    assert render_readme(TABLE, text) == text, "run `make settings-docs`"
