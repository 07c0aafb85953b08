"""The KServe model: decode (preprocess), score and record (predict), encode (postprocess)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from kserve import Model
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import REGISTRY, CollectorRegistry

from .artifacts import ModelArtifacts, load_artifacts
from .inputs import BadInput, InputDecoder
from .monitoring import PROBABILITY_BUCKETS, REGRESSION_BUCKETS, PredictorMetrics

OUTPUT_NAME = "predictions"


class ModelError(InferenceError):
    """The estimator itself failed on input that passed validation (HTTP 500, reason model_error)."""

    error_reason = "model_error"


@dataclass(frozen=True)
class ServingSettings:
    max_batch_size: int = 1000
    allow_non_finite: bool = False
    return_all_scores: bool = False
    feature_mean_half_life: float = 1000.0
    prediction_buckets: tuple[float, ...] | None = None  # None: chosen by the output kind


@dataclass
class _Scored:
    """What travels from predict to postprocess."""

    outputs: np.ndarray
    v2_request: InferRequest | None


class MonitoredModel(Model):
    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        settings: ServingSettings | None = None,
        registry: CollectorRegistry = REGISTRY,
    ):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.settings = settings or ServingSettings()
        self.registry = registry
        self.artifacts: ModelArtifacts | None = None
        self.metrics: PredictorMetrics | None = None
        self.decoder: InputDecoder | None = None

    def load(self) -> bool:
        """Load the model directory; raises ModelLoadError (the server exits) instead of serving nothing."""
        artifacts = load_artifacts(self.model_dir)
        numeric_mask = artifacts.numeric_mask
        buckets = self.settings.prediction_buckets or (
            PROBABILITY_BUCKETS if artifacts.output_kind == "probability" else REGRESSION_BUCKETS
        )
        settings = self.settings
        self.decoder = InputDecoder(
            artifacts.feature_names, numeric_mask, settings.max_batch_size, settings.allow_non_finite
        )
        if self.metrics is None:
            self.metrics = PredictorMetrics(
                self.name,
                artifacts.feature_names,
                numeric_mask,
                buckets,
                self.settings.feature_mean_half_life,
                registry=self.registry,
            )
        self.artifacts = artifacts
        self.ready = True
        return self.ready

    # KServe calls these three in turn and times each into request_{pre,,post}process_seconds.
    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> tuple[np.ndarray, Any]:
        if isinstance(payload, InferRequest):
            _check_requested_outputs(payload)
            return self.decoder.from_v2(payload).values, payload
        return self.decoder.from_v1(payload).values, None

    def predict(self, payload: tuple[np.ndarray, Any], headers: dict[str, str] | None = None) -> _Scored:
        features, v2_request = payload
        outputs, scores = self._score(features)
        self.metrics.record_batch(features, scores, all_finite=not self.settings.allow_non_finite)
        return _Scored(outputs, v2_request)

    def postprocess(
        self, result: _Scored, headers: dict[str, str] | None = None, response_headers: dict | None = None
    ) -> dict | InferResponse:
        if result.v2_request is None:
            return {OUTPUT_NAME: result.outputs.tolist()}
        request = result.v2_request
        output = InferOutput(OUTPUT_NAME, list(result.outputs.shape), "FP64", result.outputs)
        request_id = request.id or (headers or {}).get("x-request-id") or uuid.uuid4().hex
        return InferResponse(
            request_id,
            self.name,
            [output],
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def _score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (the response values, one score per instance for the distribution metric)."""
        art = self.artifacts
        data = self._model_input(features) if art.needs_frame else features
        # Unless NaN/inf are let through, the decoder has refused them already: scikit-learn need not
        # scan the batch again in every pipeline step (a tenth of a small model's predict time).
        with sklearn.config_context(assume_finite=not self.settings.allow_non_finite):
            try:
                if art.output_kind == "probability":
                    proba = np.asarray(art.estimator.predict_proba(data), dtype=np.float64)
                    scores = proba[:, art.positive_index]
                    return (proba if self.settings.return_all_scores else scores), scores
                values = np.asarray(art.estimator.predict(data), dtype=np.float64)
            except Exception as exc:  # whatever the estimator raises is the model's failure, not the client's
                raise ModelError(f"the model failed: {type(exc).__name__}: {exc}") from exc
        if values.shape != (features.shape[0],):
            raise ModelError(f"the regressor returned shape {values.shape}, expected one value per instance")
        return values, values

    def _model_input(self, features: np.ndarray) -> pd.DataFrame:
        art = self.artifacts
        frame = pd.DataFrame(features, columns=list(art.feature_names))
        if not art.all_numeric:
            numeric = [n for n, t in zip(art.feature_names, art.feature_types, strict=True) if t == "numeric"]
            frame = frame.astype(dict.fromkeys(numeric, np.float64))
        return frame


def _check_requested_outputs(request: InferRequest) -> None:
    for requested in request.request_outputs or ():
        if requested.name != OUTPUT_NAME:
            raise BadInput(
                "invalid_request", f"unknown output {requested.name!r}, the model has {OUTPUT_NAME!r}"
            )
