"""The chart passes each image exactly what that image accepts: the real argument parsers and config
loaders of the three packages (installed in .venv) read the rendered args and config files."""

from __future__ import annotations

import pytest
import yaml
from conftest import SCENARIOS


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def config_map(docs, suffix):
    return next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith(suffix))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_drift_detector_accepts_its_args_and_config(scenario, scenario_docs, tmp_path):
    from drift_detector.config import load_settings

    docs = scenario_docs[scenario]
    (deployment,) = by_kind(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "drift_detector"]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_map(docs, "-drift-detector")["data"]["config.yaml"])
    args = [a if not a.startswith("--config=") else f"--config={config_file}" for a in container["args"]]
    settings = load_settings(args, environ={})
    model = by_kind(docs, "InferenceService")
    expected_model = model[0]["metadata"]["name"] if model else "fraud-detector"
    assert settings.model_name == expected_model
    assert settings.http_port == container["ports"][0]["containerPort"] == 8080
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert str(settings.data_dir) == mounts["data"]
    assert str(settings.reports_dir) == mounts["reports"]
    reference_mount = mounts.get("reference", mounts["data"])
    assert str(settings.reference).startswith(reference_mount + "/")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_retrainer_accepts_its_config(scenario, scenario_docs, tmp_path):
    from retrain_controller.cli import build_parser
    from retrain_controller.config import TABLE, load_settings

    docs = scenario_docs[scenario]
    cronjobs = [d for d in by_kind(docs, "CronJob") if d["metadata"]["name"].endswith("-retrainer")]
    if not cronjobs:
        pytest.skip("retrainer disabled in this scenario")
    container = cronjobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "retrain_controller"]
    build_parser().parse_args(TABLE.normalize_argv(container["args"]))  # SystemExit on an unknown flag
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_map(docs, "-retrainer")["data"]["config.yaml"])
    settings = load_settings(str(config_file))
    (role,) = [d for d in by_kind(docs, "Role") if d["metadata"]["name"].endswith("-retrainer")]
    assert settings.training_namespace == role["metadata"]["namespace"]
    assert settings.release == "kmm"
    assert settings.job["image"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_predictor_accepts_the_serving_runtime_args(scenario, scenario_docs):
    from monitored_predictor.cli import parse_args

    docs = scenario_docs[scenario]
    runtimes = by_kind(docs, "ServingRuntime")
    if not runtimes:
        pytest.skip("no ServingRuntime in this scenario")
    (model,) = by_kind(docs, "InferenceService")
    container = runtimes[0]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "monitored_predictor"]
    # KServe fills in {{.Name}} with the InferenceService name.
    args = [a.replace("{{.Name}}", model["metadata"]["name"]) for a in container["args"]]
    parsed = parse_args(args)
    assert parsed.model_name == model["metadata"]["name"]
    assert parsed.model_dir == "/mnt/models"
    assert parsed.http_port == 8080
    assert model["spec"]["predictor"]["model"]["runtime"] == runtimes[0]["metadata"]["name"]


def test_retrainer_config_defaults_to_the_bundled_prometheus(scenario_docs):
    cm = config_map(scenario_docs["all-features"], "-retrainer")
    config = yaml.safe_load(cm["data"]["config.yaml"])
    # kube-prometheus-stack names its Prometheus Service <fullname, cut to 26>-prometheus, port 9090.
    assert config["prometheus"]["url"] == "http://platform-prometheus.models.svc.cluster.local:9090"


def test_drift_detector_config_schema_lists_exactly_the_settings_file_keys():
    """values.schema.json's driftDetector.config knows every drift detector setting the chart does not
    already pass as a flag (those come from other values and the pod's mounts)."""
    import json

    from chartlib import CHART_DIR
    from drift_detector.config import TABLE

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    config = schema["properties"]["driftDetector"]["properties"]["config"]
    chart_flags = {
        "reference",
        "model_name",
        "http_port",
        "data_dir",
        "reports_dir",
        "window_size",
        "min_samples",
    }
    settings = {s.key for s in TABLE.settings} - chart_flags
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == settings


@pytest.mark.parametrize("engine", ["local", "spark"])
def test_drift_detector_batch_mode_accepts_the_batch_job_args(engine, tmp_path):
    """The batch job's arguments after `batch` parse as the batch CLI does: its own flags, the rest with
    the service's settings loader (the drift detector's ConfigMap as --config)."""
    batch = pytest.importorskip(
        "drift_detector.batch.cli",
        reason="the drift detector's batch CLI is not in this worktree's .venv yet",
    )
    from chartlib import render_chart
    from drift_detector.config import load_settings

    values = {"batchDrift.engine": engine}
    docs = render_chart(
        values_files=["charts/kserve-model-monitoring/ci/blob-batch-values.yaml"], set_values=values
    )
    (cronjob,) = [d for d in by_kind(docs, "CronJob") if d["metadata"]["name"].endswith("-drift-batch")]
    args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    args = args[args.index("batch") + 1 :]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config_map(docs, "-drift-detector")["data"]["config.yaml"])
    args = [a if not a.startswith("--config=") else f"--config={config_file}" for a in args]
    parsed, service_args = batch.build_parser().parse_known_args(args)
    assert parsed.engine == engine
    assert parsed.logs.startswith("s3://payload-logs/kserve/")
    if engine == "spark":
        assert parsed.spark_master.startswith("k8s://https://kubernetes.default.svc")
    settings = load_settings(service_args, environ={})  # refuses an unknown flag or config key
    assert settings.window_size == 2000
    assert str(settings.reference).startswith("/var/lib/drift-batch/reference/")
