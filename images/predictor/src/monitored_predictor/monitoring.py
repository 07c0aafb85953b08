"""The predictor's Prometheus metrics (DESIGN.md metric contract), cheap enough for the request path.

Counters and the latency histogram are prometheus_client objects with their label children bound once
at start-up. The score histogram and the feature means are numpy-backed and exposed by a custom
collector: a request only appends its arrays to a pending list (no per-instance or per-feature Python
loop); the list is folded in with a few vectorised operations every FOLD_EVERY batches and before each
scrape, so /metrics always shows every instance answered so far.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .inputs import ERROR_REASONS

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Scores are probabilities: 20 equal-width buckets resolve shifts of 0.05.
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
FOLD_EVERY = 64  # pending batches kept before folding; bounds the memory held between scrapes
# Regression values have no known scale: symmetric decades from 0.001 to 1e6.
REGRESSION_BUCKETS = tuple(
    sorted([-(10.0**e) for e in range(-3, 7)] + [0.0] + [10.0**e for e in range(-3, 7)])
)


class BatchHistogram:
    """A histogram updated with a whole array at once (one searchsorted + bincount per batch)."""

    def __init__(self, upper_bounds: Sequence[float]):
        bounds = sorted(float(b) for b in upper_bounds if not math.isinf(b))
        if not bounds:
            raise ValueError("a histogram needs at least one finite bucket bound")
        self.bounds = np.array(bounds, dtype=np.float64)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # last slot is +Inf
        self.total = 0.0

    def observe_many(self, values: np.ndarray) -> None:
        # side="left": a value equal to a bound falls into that bucket (le is inclusive)
        slots = np.searchsorted(self.bounds, values, side="left")
        self.counts += np.bincount(slots, minlength=len(self.counts))
        self.total += float(values.sum())

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = np.cumsum(self.counts)
        labels = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        return list(zip(labels, cumulative.tolist(), strict=True))


class FeatureMeans:
    """Exponentially weighted mean of every numeric feature, with a half-life counted in instances.

    After the instances x_1..x_t, the mean of a feature is sum(w_i * x_i) / sum(w_i) with
    w_i = 0.5 ** ((t - i) / half_life): the newest instance weighs 1, the one `half_life` instances
    older weighs 0.5. Dividing by the weight sum makes it exact from the first instance (no warm-up
    bias). Missing values (NaN, when they are allowed in) carry no weight for their feature.
    """

    def __init__(self, n_features: int, half_life: float):
        if half_life <= 0:
            raise ValueError("the feature mean half-life must be positive")
        self.decay = 0.5 ** (1.0 / half_life)
        self.weighted_sum = np.zeros(n_features)
        self.weight = np.zeros(n_features)

    def update(self, matrix: np.ndarray, all_finite: bool) -> None:
        """Fold in a batch; `all_finite` lets the caller skip a NaN scan it has already done."""
        batch_decay, weights, weight_sum = self._weights(matrix.shape[0])
        self.weighted_sum *= batch_decay
        self.weight *= batch_decay
        if all_finite:
            self.weighted_sum += weights @ matrix
            self.weight += weight_sum
        else:
            finite = np.isfinite(matrix)
            self.weighted_sum += weights @ np.where(finite, matrix, 0.0)
            self.weight += weights @ finite

    def means(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.weighted_sum / self.weight

    def _weights(self, n: int) -> tuple[float, np.ndarray, float]:
        # Row i of an n-row fold is n-1-i instances older than the newest row.
        weights = self.decay ** np.arange(n - 1, -1, -1, dtype=np.float64)
        return self.decay**n, weights, float(weights.sum())


class PredictorMetrics(Collector):
    """All model_* series of one served model; every series carries model_name."""

    def __init__(
        self,
        model_name: str,
        feature_names: Sequence[str],
        numeric_mask: np.ndarray,
        prediction_buckets: Sequence[float],
        feature_mean_half_life: float,
        registry: CollectorRegistry = REGISTRY,
    ):
        self.model_name = model_name
        self._lock = threading.Lock()
        self._numeric_index = np.flatnonzero(numeric_mask)
        self._all_numeric = bool(numeric_mask.all())
        self._numeric_names = [feature_names[i] for i in self._numeric_index]
        self._scores = BatchHistogram(prediction_buckets)
        self._means = FeatureMeans(len(self._numeric_index), feature_mean_half_life)
        self._pending: list[tuple[np.ndarray, np.ndarray, bool]] = []

        labels = ["model_name"]
        self.predictions = Counter(
            "model_predictions", "Instances the model scored successfully.", labels, registry=registry
        ).labels(model_name)
        self.latency = Histogram(
            "model_prediction_latency_seconds",
            "Time per successful prediction request, from receiving it to sending the response headers.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(model_name)
        errors = Counter(
            "model_prediction_errors",
            "Prediction requests answered with an error, by reason.",
            [*labels, "reason"],
            registry=registry,
        )
        self.errors = {reason: errors.labels(model_name, reason) for reason in ERROR_REASONS}
        registry.register(self)

    def record_batch(self, features: np.ndarray, scores: np.ndarray, all_finite: bool) -> None:
        """Count the instances; queue the scores and features for the distribution and the means.

        `all_finite`: the features are known to hold no NaN/inf (the decoder rejected them).
        """
        numeric = features if self._all_numeric else features[:, self._numeric_index].astype(np.float64)
        with self._lock:
            self._pending.append((numeric, scores, all_finite))
            if len(self._pending) >= FOLD_EVERY:
                self._fold()
        self.predictions.inc(scores.shape[0])

    def _fold(self) -> None:
        """Fold the pending batches, in arrival order, into the histogram and the means (lock held)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        if len(pending) == 1:
            numeric, scores, all_finite = pending[0]
        else:
            numeric = np.concatenate([p[0] for p in pending])
            scores = np.concatenate([p[1] for p in pending])
            all_finite = all(p[2] for p in pending)
        finite = np.isfinite(scores)
        # A NaN or inf prediction would turn the histogram's _sum into NaN/inf for good: leave it out.
        self._scores.observe_many(scores if finite.all() else scores[finite])
        if numeric.shape[1]:
            self._means.update(numeric, all_finite)

    def record_error(self, reason: str) -> None:
        self.errors.get(reason, self.errors["internal_error"]).inc()

    # --- Collector: the two numpy-backed metrics --------------------------------------------------
    def collect(self) -> Iterable[Metric]:
        with self._lock:
            self._fold()
            buckets = self._scores.buckets()
            total = self._scores.total
            means = self._means.means()
        distribution = HistogramMetricFamily(
            "model_prediction_distribution",
            "Predicted positive-class probabilities or regression values, one observation per instance.",
            labels=["model_name"],
        )
        distribution.add_metric([self.model_name], buckets, total)
        yield distribution
        feature_mean = GaugeMetricFamily(
            "model_feature_mean",
            "Exponentially weighted mean of each numeric input feature (half-life in instances, see README).",
            labels=["model_name", "feature_name"],
        )
        for name, value in zip(self._numeric_names, means.tolist(), strict=True):
            if not math.isnan(value):  # no instance seen yet: no series rather than NaN
                feature_mean.add_metric([self.model_name, name], value)
        yield feature_mean

    def describe(self) -> Iterable[Metric]:
        # Names only, so registering checks for clashes without computing values.
        yield HistogramMetricFamily("model_prediction_distribution", "", labels=["model_name"])
        yield GaugeMetricFamily("model_feature_mean", "", labels=["model_name", "feature_name"])
