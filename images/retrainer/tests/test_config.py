import os
import re
from pathlib import Path

import pytest
from helpers import TRAIN_IMAGE
from kmm_settings.reference import render_readme
from retrain_controller.cli import build_parser, main
from retrain_controller.config import (
    DEFAULTS,
    TABLE,
    ConfigError,
    load_settings,
    parse_duration,
    settings_from,
)

README = Path(__file__).resolve().parents[1] / "README.md"


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("0", 0),
        (300, 300),
        ("1.5h", 5400),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text, "k") == seconds


@pytest.mark.parametrize("text", ["15 minutes", "-5m", "m", "", "1y", True, "15m5"])
def test_bad_durations_name_the_key(text):
    with pytest.raises(ConfigError) as err:
        parse_duration(text, "sustainedFor")
    assert err.value.key == "sustainedFor"


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_precedence_flag_over_environment_over_file_over_default(tmp_path):
    config = write(
        tmp_path, f"threshold: 0.3\ncooldown: 2h\nmaxConcurrent: 4\njob:\n  image: {TRAIN_IMAGE}\n"
    )
    environ = {"RETRAINER_THRESHOLD": "0.4", "RETRAINER_COOLDOWN": "3h", "RETRAINER_CONFIG": config}
    _, loaded = TABLE.parse(build_parser(), ["check", "--threshold", "0.7"], environ)
    settings = settings_from(loaded)
    assert settings.threshold == 0.7  # flag
    assert settings.cooldown_seconds == 3 * 3600  # environment
    assert settings.max_concurrent == 4  # file
    assert settings.sustained_for_seconds == 900  # default


@pytest.mark.parametrize(
    "argv",
    [["--threshold", "0.1", "--dry-run", "check"], ["check", "--threshold", "0.1", "--dry-run"]],
)
def test_options_work_before_and_after_the_command(argv):
    args, loaded = TABLE.parse(build_parser(), argv, {})
    assert args.command == "check"
    assert loaded.values["threshold"] == 0.1 and loaded.values["dry_run"] is True


@pytest.mark.parametrize("argv", [["--help"], ["check", "--help"], ["watch", "--help"]])
def test_help_lists_every_flag_with_its_environment_twin(capsys, argv):
    with pytest.raises(SystemExit):
        main(argv)
    text = " ".join(capsys.readouterr().out.split())
    if argv[0] != "check":
        assert (
            "--interval" in text and "RETRAINER_WATCH_INTERVAL" in text and "RETRAINER_WATCH_PASSES" in text
        )
    for setting in TABLE.settings:
        if setting.name not in ("watch_interval", "watch_passes") or argv[0] == "watch":
            assert f"{setting.flag} VALUE" in text and f"[env {setting.env}]" in text
    for required in ("--config", "--prometheus-url", "--threshold", "--sustained-for", "--cooldown"):
        assert required in text
    assert "--training-namespace" in text and "--dry-run" in text and "--max-concurrent" in text


@pytest.mark.parametrize(
    ("yaml_text", "argv", "key"),
    [
        ("threshold: high\n", [], "threshold"),
        ("tresholds: 0.5\n", [], "tresholds"),
        ("prometheus:\n  urll: http://x\n", [], "prometheus.urll"),
        ("prometheus:\n  url: ftp://x\n", [], "prometheus.url"),
        ("cooldown: soon\n", [], "cooldown"),
        ("maxConcurrent: 0\n", [], "maxConcurrent"),
        ("minCoverage: 1.5\n", [], "minCoverage"),
        ("trainingNamespace: Not_A_Namespace\n", [], "trainingNamespace"),
        ("job:\n  namePrefix: Re_Train\n", [], "job.namePrefix"),
        ("job:\n  env: [{value: x}]\n", [], "job.env[0].name"),
        ("job:\n  labels: {team: 1}\n", [], "job.labels"),
        ("job:\n  backoffLimit: -1\n", [], "job.backoffLimit"),
        ("job:\n  volumes: {a: b}\n", [], "job.volumes"),
        ("job:\n  ttlSecondsAfterFinished: 60\n", [], "job.ttlSecondsAfterFinished"),
        ("sustainedFor: 30s\nevaluationStep: 1m\n", [], "sustainedFor"),
        ("", ["--threshold", "abc"], "threshold"),
        ("", ["--max-concurrent", "two"], "maxConcurrent"),
        ("", ["--at", "yesterday"], "at"),
        ("", ["--insecure-skip-verify=maybe"], "prometheus.insecureSkipVerify"),
        ("dryRun: sometimes\n", [], "dryRun"),
        ("watch:\n  passes: -1\n", [], "watch.passes"),
        ("job:\n  backoffLimit: 1.5\n", [], "job.backoffLimit"),
        ("- a list\n", [], "--config"),
        ("key: [unclosed\n", [], "--config"),
    ],
)
def test_invalid_config_exits_1_naming_the_key(tmp_path, capsys, yaml_text, argv, key):
    config = write(tmp_path, yaml_text)
    code = main(["check", "--config", config, "--job-image", TRAIN_IMAGE, *argv])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1
    assert err.startswith(f"retrain-controller: invalid config {key}: ")


def test_missing_training_image_is_a_config_error(capsys):
    assert main(["check"]) == 1
    assert "invalid config job.image: the training image is required" in capsys.readouterr().err


def test_unreadable_token_and_ca_files_are_config_errors(tmp_path, capsys):
    assert main(["check", "--job-image", TRAIN_IMAGE, "--bearer-token-file", str(tmp_path / "none")]) == 1
    assert "invalid config prometheus.bearerTokenFile" in capsys.readouterr().err
    assert main(["check", "--job-image", TRAIN_IMAGE, "--ca-file", str(tmp_path / "none.pem")]) == 1
    assert "invalid config prometheus.caFile" in capsys.readouterr().err


def test_environment_booleans_are_checked(monkeypatch, capsys):
    monkeypatch.setenv("RETRAINER_DRY_RUN", "maybe")
    assert main(["check", "--job-image", TRAIN_IMAGE]) == 1
    assert capsys.readouterr().err == (
        "retrain-controller: invalid config dryRun: expected one of true/yes/on/1/false/no/off/0, "
        "got 'maybe' (from env RETRAINER_DRY_RUN)\n"
    )


def test_a_cross_key_problem_names_where_the_value_came_from(monkeypatch, capsys):
    monkeypatch.setenv("RETRAINER_JOB_TTL_SECONDS_AFTER_FINISHED", "60")
    assert main(["check", "--job-image", TRAIN_IMAGE]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "retrain-controller: invalid config job.ttlSecondsAfterFinished: must be >= cooldown"
    )
    assert err.endswith("(from env RETRAINER_JOB_TTL_SECONDS_AFTER_FINISHED)\n")


def test_every_config_key_has_a_flag_and_an_environment_variable():
    keys = {s.key: (s.flag, s.env) for s in TABLE.settings}
    assert keys["job.imagePullPolicy"] == ("--job-image-pull-policy", "RETRAINER_JOB_IMAGE_PULL_POLICY")
    assert keys["prometheus.caFile"] == ("--ca-file", "RETRAINER_CA_FILE")
    assert keys["watch.interval"] == ("--interval", "RETRAINER_WATCH_INTERVAL")
    assert keys["kubeconfig"] == ("--kubeconfig", "KUBECONFIG")


def test_a_mapping_setting_from_the_environment_is_yaml_and_resources_merge_with_the_default(monkeypatch):
    monkeypatch.setenv("RETRAINER_JOB_NODE_SELECTOR", "{pool: gpu}")
    monkeypatch.setenv("RETRAINER_JOB_RESOURCES", "{limits: {nvidia.com/gpu: '1'}}")
    _, loaded = TABLE.parse(build_parser(), ["check", "--job-image", TRAIN_IMAGE], os.environ)
    job = settings_from(loaded).job
    assert job["nodeSelector"] == {"pool": "gpu"}
    assert job["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert job["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


def test_the_readme_settings_table_is_current():
    text = README.read_text(encoding="utf-8")
    assert render_readme(TABLE, text) == text, "run `make settings-docs`"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- config-example -->\s*```yaml\n(.*?)```", text, re.S)
    assert match, "README.md must hold the config example after <!-- config-example -->"
    return match.group(1)


def test_the_readme_example_is_a_valid_config(tmp_path):
    settings = load_settings(write(tmp_path, readme_example()), {})
    assert settings.job["image"]


def test_the_readme_documents_every_config_key():
    text = README.read_text(encoding="utf-8")

    free_form = {
        "job.resources",
        "job.podSecurityContext",
        "job.securityContext",
        "job.labels",
        "job.annotations",
    }
    free_form |= {"job.podLabels", "job.podAnnotations", "job.nodeSelector", "job.affinity"}

    def keys(tree, prefix=""):
        for key, value in tree.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict) and dotted not in free_form:
                yield from keys(value, f"{dotted}.")
            else:
                yield dotted

    missing = [key for key in keys(DEFAULTS) if f"`{key}`" not in text]
    assert not missing, f"README.md does not document: {missing}"
