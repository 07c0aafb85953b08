"""Unit tests of request decoding beyond what the HTTP tests cover."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest
from monitored_predictor.inputs import BadInput, InputDecoder

NAMES = ("a", "b", "c")


def decoder(mask=(True, True, True), **kwargs):
    options = {"max_batch_size": 10, "allow_non_finite": False, **kwargs}
    return InputDecoder(NAMES, np.array(mask), options["max_batch_size"], options["allow_non_finite"])


def reason_of(call):
    with pytest.raises(BadInput) as caught:
        call()
    return caught.value.error_reason


def test_integers_and_booleans_become_floats():
    values = decoder().from_v1({"instances": [[1, 2, 3], [True, False, 1.5]]}).values
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [[1, 2, 3], [1, 0, 1.5]])


def test_raw_json_bytes_are_decoded():
    np.testing.assert_array_equal(decoder().from_v1(b'{"instances": [[1, 2, 3]]}').values, [[1, 2, 3]])
    assert reason_of(lambda: decoder().from_v1(b"{oops")) == "malformed_json"


def test_null_is_nan_when_non_finite_values_are_allowed():
    values = decoder(allow_non_finite=True).from_v1({"instances": [[None, 2, 3]]}).values
    assert np.isnan(values[0, 0]) and values[0, 1] == 2


def test_mixed_objects_and_lists_are_refused():
    body = {"instances": [{"a": 1, "b": 2, "c": 3}, [1, 2, 3]]}
    assert reason_of(lambda: decoder().from_v1(body)) == "invalid_request"


def test_categorical_columns_keep_strings_and_check_numbers():
    mixed = decoder(mask=(True, False, True))
    values = mixed.from_v1({"instances": [{"a": 1, "b": "x", "c": 2.5}]}).values
    assert values.dtype == object and values.tolist() == [[1.0, "x", 2.5]]
    assert reason_of(lambda: mixed.from_v1({"instances": [["1", "x", 2]]})) == "non_numeric"
    assert reason_of(lambda: mixed.from_v1({"instances": [[float("inf"), "x", 2]]})) == "non_finite"
    assert reason_of(lambda: mixed.from_v1({"instances": [[1, None, 2]]})) == "invalid_request"
    assert reason_of(lambda: mixed.from_v1({"instances": [[1, "x"]]})) == "wrong_feature_count"


def test_v2_binary_tensor_extension():
    tensor = InferInput("x", [2, 3], "FP32")
    tensor.set_data_from_numpy(np.arange(6, dtype=np.float32).reshape(2, 3), binary_data=True)
    request = InferRequest("demo", [tensor])
    np.testing.assert_array_equal(decoder().from_v2(request).values, np.arange(6).reshape(2, 3))


def test_v2_bool_and_int_tensors_per_feature():
    inputs = [
        InferInput("a", [2], "BOOL", [True, False]),
        InferInput("b", [2], "INT64", [4, 5]),
        InferInput("c", [2], "FP64", [0.5, 1.5]),
    ]
    values = decoder().from_v2(InferRequest("demo", inputs)).values
    np.testing.assert_array_equal(values, [[1, 4, 0.5], [0, 5, 1.5]])


def test_v2_unknown_datatype_is_invalid():
    request = InferRequest("demo", [InferInput("x", [1, 3], "COMPLEX", [1, 2, 3])])
    assert reason_of(lambda: decoder().from_v2(request)) == "invalid_request"
