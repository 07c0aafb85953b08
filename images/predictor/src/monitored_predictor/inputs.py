"""Turning v1 and v2 request bodies into one feature matrix, rejecting bad input with a named reason.

The fast path (all-numeric schema, well-formed numbers) is a single `np.asarray` plus one `isfinite`
check; the per-element diagnosis only runs once a request has already failed that path.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

# Values of model_prediction_errors_total{reason}; every one is created at start-up with value 0.
BAD_INPUT_REASONS = (
    "malformed_json",
    "invalid_request",
    "empty_batch",
    "batch_too_large",
    "wrong_feature_count",
    "wrong_shape",
    "unknown_feature",
    "missing_feature",
    "non_numeric",
    "non_finite",
)
# Refused by the HTTP layer before any decoding (http_hooks.py).
HTTP_REASONS = ("body_too_large", "method_not_allowed")
ERROR_REASONS = (*BAD_INPUT_REASONS, *HTTP_REASONS, "model_error", "internal_error")

NUMERIC_V2_TYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
)


class BadInput(InvalidInput):
    """A request the model cannot answer; `reason` is the metric label, the message names the problem."""

    def __init__(self, reason: str, message: str):
        assert reason in BAD_INPUT_REASONS, reason
        super().__init__(message)
        self.error_reason = reason


@dataclass(frozen=True)
class FeatureBatch:
    """Rows in schema order: float64 for an all-numeric schema, object dtype when categoricals exist."""

    values: np.ndarray


class InputDecoder:
    """Validates request bodies against the feature list of the loaded model."""

    def __init__(
        self,
        feature_names: tuple[str, ...],
        numeric_mask: np.ndarray,
        max_batch_size: int,
        allow_non_finite: bool,
    ):
        self.names = feature_names
        self.name_set = frozenset(feature_names)
        self.n_features = len(feature_names)
        self.numeric_mask = numeric_mask
        self.all_numeric = bool(numeric_mask.all())
        self.max_batch_size = max_batch_size
        self.allow_non_finite = allow_non_finite
        self._pick = operator.itemgetter(*feature_names)
        self._single = self.n_features == 1
        self._expected = f"expected {self.n_features} features"

    # --- v1 ---------------------------------------------------------------------------------------
    def from_v1(self, body: Any) -> FeatureBatch:
        if isinstance(body, (bytes, str)):  # KServe passes the raw body on when Content-Type is not JSON
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadInput("malformed_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(body, dict) or "instances" not in body:
            raise BadInput("invalid_request", "the body must be a JSON object with an 'instances' list")
        instances = body["instances"]
        if not isinstance(instances, list):
            raise BadInput("invalid_request", "'instances' must be a list")
        self._check_batch_size(len(instances))
        if isinstance(instances[0], dict):
            rows = [self._row_from_object(i, row) for i, row in enumerate(instances)]
        else:
            rows = instances
        return FeatureBatch(self._matrix(rows))

    def _row_from_object(self, index: int, row: Any) -> Any:
        if not isinstance(row, dict):
            raise BadInput("invalid_request", f"instance {index}: mix of objects and lists in one batch")
        if row.keys() != self.name_set:
            unknown = sorted(row.keys() - self.name_set)
            if unknown:
                raise BadInput("unknown_feature", f"instance {index}: unknown feature(s) {unknown}")
            missing = [n for n in self.names if n not in row]
            raise BadInput("missing_feature", f"instance {index}: missing feature(s) {missing}")
        picked = self._pick(row)
        return [picked] if self._single else picked

    # --- v2 ---------------------------------------------------------------------------------------
    def from_v2(self, request: InferRequest) -> FeatureBatch:
        inputs = request.inputs
        if not inputs:
            raise BadInput("invalid_request", "'inputs' must hold at least one tensor")
        for tensor in inputs:
            if len(tensor.shape) not in (1, 2):
                raise BadInput(
                    "wrong_shape",
                    f"tensor {tensor.name!r} has shape {list(tensor.shape)}: send one [N, {self.n_features}] "
                    "tensor or one [N] tensor per feature named by feature name",
                )
        if len(inputs) == 1 and len(inputs[0].shape) == 2:
            return FeatureBatch(self._from_matrix_tensor(inputs[0]))
        return FeatureBatch(self._from_feature_tensors(inputs))

    def _from_matrix_tensor(self, tensor: InferInput) -> np.ndarray:
        n_rows, n_cols = tensor.shape
        self._check_batch_size(n_rows)
        if n_cols != self.n_features:
            raise BadInput(
                "wrong_feature_count",
                f"tensor {tensor.name!r} has {n_cols} columns, expected {self.n_features} features",
            )
        self._check_datatype(tensor)
        flat = self._flat_values(tensor, n_rows * n_cols)
        return self._matrix(flat.reshape(n_rows, n_cols))

    def _from_feature_tensors(self, tensors: list[InferInput]) -> np.ndarray:
        by_name = {t.name: t for t in tensors}
        if len(by_name) != len(tensors):
            raise BadInput("invalid_request", "tensor names must be unique")
        unknown = sorted(by_name.keys() - self.name_set)
        if unknown:
            raise BadInput(
                "unknown_feature",
                f"unknown feature tensor(s) {unknown}: send one [N, {self.n_features}] tensor "
                "or one [N] tensor per feature named by feature name",
            )
        missing = [n for n in self.names if n not in by_name]
        if missing:
            raise BadInput("missing_feature", f"missing feature tensor(s) {missing}")
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise BadInput(
                "invalid_request", f"feature tensors must all have one shape [N], got {sorted(shapes)}"
            )
        n_rows = next(iter(shapes))[0]
        self._check_batch_size(n_rows)
        for tensor in tensors:
            self._check_datatype(tensor)
        columns = [self._flat_values(by_name[name], n_rows) for name in self.names]
        if not all(c.dtype.kind in "fiub" for c in columns):
            columns = [c.astype(object) for c in columns]  # keep numbers numbers next to strings
        return self._matrix(np.stack(columns, axis=1))

    def _check_datatype(self, tensor: InferInput) -> None:
        if tensor.datatype == "BYTES" and self.all_numeric:
            raise BadInput("non_numeric", f"tensor {tensor.name!r} is BYTES; the model takes numbers")
        if tensor.datatype not in NUMERIC_V2_TYPES and tensor.datatype != "BYTES":
            raise BadInput("invalid_request", f"tensor {tensor.name!r}: unknown datatype {tensor.datatype!r}")

    @staticmethod
    def _flat_values(tensor: InferInput, expected: int) -> np.ndarray:
        if tensor.data is None:  # binary tensor extension: KServe keeps the raw bytes
            values = tensor.as_numpy().reshape(-1)
        else:
            try:
                values = np.asarray(tensor.data).reshape(-1)
            except ValueError:  # ragged nesting
                values = None
            if values is None or values.dtype.kind not in "fiub":  # keep each value's own type for diagnosis
                values = np.asarray(_flatten(tensor.name, tensor.data, len(tensor.shape)), dtype=object)
        if values.size != expected:
            raise BadInput(
                "invalid_request",
                f"tensor {tensor.name!r}: {values.size} values, shape {tensor.shape} needs {expected}",
            )
        if tensor.datatype == "BOOL":
            values = values.astype(np.float64)
        return values

    # --- shared -----------------------------------------------------------------------------------
    def _check_batch_size(self, n_rows: int) -> None:
        if n_rows == 0:
            raise BadInput("empty_batch", "the batch holds no instances")
        if n_rows > self.max_batch_size:
            raise BadInput(
                "batch_too_large", f"the batch holds {n_rows} instances, max {self.max_batch_size}"
            )

    def _matrix(self, rows: Any) -> np.ndarray:
        """Rows -> [N, F] matrix; the fast path is one conversion, the slow path names the culprit."""
        if not self.all_numeric:
            return self._mixed_matrix(rows)
        try:
            matrix = np.asarray(rows)
        except ValueError:  # ragged rows
            matrix = None
        if matrix is None or matrix.dtype.kind not in "fiub":
            matrix = self._diagnose(rows)
        elif matrix.dtype != np.float64:
            matrix = matrix.astype(np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            self._raise_shape(matrix)
        if not self.allow_non_finite and not np.isfinite(matrix).all():
            row, col = np.argwhere(~np.isfinite(matrix))[0]
            raise BadInput(
                "non_finite",
                f"instance {row}: feature {self.names[col]!r} is {matrix[row, col]} (NaN/inf/null refused)",
            )
        return matrix

    def _raise_shape(self, matrix: np.ndarray) -> None:
        if matrix.ndim == 1:
            raise BadInput(
                "wrong_feature_count", f"each instance must hold {self.n_features} values, got single numbers"
            )
        if matrix.ndim != 2:
            raise BadInput("invalid_request", f"instances must be flat lists of {self.n_features} values")
        raise BadInput("wrong_feature_count", f"instances have {matrix.shape[1]} values, {self._expected}")

    def _diagnose(self, rows: Any) -> np.ndarray:
        """Slow path after the fast conversion failed: ragged rows, strings, nulls (-> NaN)."""
        if isinstance(rows, np.ndarray):
            rows = rows.tolist()
        out = []
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple, np.ndarray)):
                row = [row]
            if len(row) != self.n_features:
                raise BadInput("wrong_feature_count", f"instance {i} has {len(row)} values, {self._expected}")
            out.append([self._number(i, j, v) for j, v in enumerate(row)])
        return np.asarray(out, dtype=np.float64)

    def _number(self, row: int, col: int, value: Any) -> float:
        if value is None:
            return np.nan
        if not isinstance(value, (int, float, np.number, np.bool_)):  # bool is an int: 0/1
            raise BadInput(
                "non_numeric", f"instance {row}: feature {self.names[col]!r} is {value!r}, expected a number"
            )
        return float(value)

    def _mixed_matrix(self, rows: Any) -> np.ndarray:
        matrix = np.empty((len(rows), self.n_features), dtype=object)
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple, np.ndarray)) or len(row) != self.n_features:
                size = len(row) if isinstance(row, (list, tuple, np.ndarray)) else 1
                raise BadInput("wrong_feature_count", f"instance {i} has {size} values, {self._expected}")
            for j, value in enumerate(row):
                if self.numeric_mask[j]:
                    value = self._number(i, j, value)
                    if not self.allow_non_finite and not np.isfinite(value):
                        raise BadInput("non_finite", f"instance {i}: feature {self.names[j]!r} is {value}")
                elif value is None or not isinstance(value, (str, int, float, np.generic)):
                    raise BadInput("invalid_request", f"instance {i}: feature {self.names[j]!r} is {value!r}")
                matrix[i, j] = value
        return matrix


def _flatten(name: str, data: Any, max_depth: int) -> list:
    """Nested lists -> one flat list, without recursion: a hostile body may nest thousands deep.

    OIP `data` is flat or nested as its shape, so nesting deeper than the shape's rank is refused.
    """
    if not isinstance(data, list):
        return [data]
    flat: list = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) == max_depth:
                    raise BadInput(
                        "wrong_shape", f"tensor {name!r}: data nested deeper than its {max_depth}-d shape"
                    )
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat
