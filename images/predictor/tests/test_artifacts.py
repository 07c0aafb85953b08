"""Unit tests of loading a model directory: every reason a directory cannot be served."""

from __future__ import annotations

import json
import shutil

import joblib
import pytest
from monitored_predictor.artifacts import ModelLoadError, load_artifacts


@pytest.fixture
def model_dir(tmp_path, demo_model_dir):
    target = tmp_path / "model"
    shutil.copytree(demo_model_dir, target)
    return target


def write_schema(model_dir, schema):
    (model_dir / "schema.json").write_text(json.dumps(schema))


def test_demo_directory_loads(model_dir, feature_names):
    art = load_artifacts(model_dir)
    assert art.feature_names == tuple(feature_names)
    assert art.output_kind == "probability"
    assert art.classes == (0, 1) and art.positive_index == 1
    assert not art.needs_frame and art.all_numeric


def test_without_schema_names_come_from_the_estimator(model_dir, regression_model_dir):
    (model_dir / "schema.json").unlink()
    assert load_artifacts(model_dir).feature_names == tuple(f"f{i}" for i in range(30))
    art = load_artifacts(regression_model_dir)
    assert art.feature_names == ("alpha", "beta", "gamma")
    assert art.output_kind == "regression" and art.needs_frame


def test_positive_class_is_configurable(model_dir, demo_model_dir):
    schema = json.loads((demo_model_dir / "schema.json").read_text())
    schema["output"]["positive_class"] = 0
    write_schema(model_dir, schema)
    assert load_artifacts(model_dir).positive_index == 0


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: shutil.rmtree(d), "does not exist"),
        (lambda d: (d / "model.joblib").unlink(), "model.joblib not found"),
        (lambda d: (d / "model.joblib").write_bytes(b"not a pickle"), "cannot load"),
        (lambda d: joblib.dump({"a": 1}, d / "model.joblib"), "has no predict()"),
        (lambda d: (d / "schema.json").write_text("{"), "cannot read"),
        (lambda d: write_schema(d, []), "must hold a JSON object"),
        (lambda d: write_schema(d, {"features": []}), "non-empty list"),
        (lambda d: write_schema(d, {"features": [{"type": "numeric"}] * 30}), "needs a 'name'"),
        (lambda d: write_schema(d, {"features": [{"name": "a", "type": "text"}]}), "unknown feature type"),
        (lambda d: write_schema(d, {"features": [{"name": "a"}, {"name": "a"}]}), "unique"),
        (lambda d: write_schema(d, {"features": [{"name": "a"}]}), "expects 30"),
        (lambda d: write_schema(d, {"output": {"kind": "ranking"}}), "not one of"),
        (lambda d: write_schema(d, {"output": {"positive_class": 7}}), "positive_class 7"),
    ],
)
def test_unservable_directories_give_one_line_reasons(model_dir, breakage, message):
    breakage(model_dir)
    with pytest.raises(ModelLoadError) as caught:
        load_artifacts(model_dir)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_schema_must_match_fitted_feature_names(regression_model_dir, tmp_path):
    shutil.copytree(regression_model_dir, tmp_path / "m")
    write_schema(tmp_path / "m", {"features": [{"name": n} for n in ("beta", "alpha", "gamma")]})
    with pytest.raises(ModelLoadError, match="feature_names_in_"):
        load_artifacts(tmp_path / "m")


def test_probability_needs_predict_proba(regression_model_dir, tmp_path):
    shutil.copytree(regression_model_dir, tmp_path / "m")
    write_schema(tmp_path / "m", {"output": {"kind": "probability"}})
    with pytest.raises(ModelLoadError, match="predict_proba"):
        load_artifacts(tmp_path / "m")


def test_unfitted_estimator_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    joblib.dump(LogisticRegression(), tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError, match="n_features_in_"):
        load_artifacts(tmp_path)
