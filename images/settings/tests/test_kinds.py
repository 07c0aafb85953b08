"""Every kind, table-driven: what it accepts from text (flag, environment) and from YAML, what it refuses."""

from pathlib import Path

import pytest
from kmm_settings import Boolean, Choice, Duration, FilePath, Integer, ListOf, MappingOf, Number, Scalar, Text

ACCEPTED = [
    (Boolean(), "true", True),
    (Boolean(), "Yes", True),
    (Boolean(), " on ", True),
    (Boolean(), "1", True),
    (Boolean(), "FALSE", False),
    (Boolean(), "off", False),
    (Boolean(), True, True),
    (Boolean(), 0, False),
    (Integer(), "42", 42),
    (Integer(), "-3", -3),
    (Integer(), 7, 7),
    (Integer(min=1, max=10), "10", 10),
    (Integer(nullable=True), None, None),
    (Integer(nullable=True), "null", None),
    (Number(), "0.25", 0.25),
    (Number(), 3, 3.0),
    (Number(min=0), "0", 0.0),
    (Number(above=0, below=1), 0.65, 0.65),
    (Choice(("always", "never")), "never", "never"),
    (Text(), "", ""),
    (Text(numbers=True), 3, "3"),
    (FilePath(), "/data/x.parquet", Path("/data/x.parquet")),
    (FilePath(optional=True), "", None),
    (Duration(), "90s", 90.0),
    (Duration(), "1h30m", 5400.0),
    (Duration(), "250ms", 0.25),
    (Duration(), "300", 300.0),
    (Duration(), 45, 45.0),
    (ListOf(Text()), "a, b,c", ["a", "b", "c"]),
    (ListOf(Text()), "", []),
    (ListOf(Text()), "[a, '']", ["a", ""]),
    (ListOf(Number()), "0.5,1", [0.5, 1.0]),
    (ListOf(Number()), [1, 2.5], [1.0, 2.5]),
    (MappingOf(Number()), "{age: 0.2}", {"age": 0.2}),
    (MappingOf(Number()), {"age": "0.3"}, {"age": 0.3}),
    (MappingOf(), '{"a": {"b": [1]}}', {"a": {"b": [1]}}),
    (MappingOf(), "", {}),
    (Scalar(), "1", 1),
    (Scalar(), "'1'", "1"),
    (Scalar(), "yes-please", "yes-please"),
]

REFUSED = [
    (Boolean(), "maybe", "expected one of true/yes/on/1/false/no/off/0, got 'maybe'"),
    (Boolean(), "", "expected one of"),
    (Boolean(), 2, "got 2"),
    (Boolean(), 1.0, "got 1.0"),
    (Integer(), "1.5", "expected a whole number, got '1.5'"),
    (Integer(), "²", "expected a whole number, got '²'"),
    (Integer(), "١٢", "expected a whole number"),  # Arabic-Indic digits: int() would take them
    (Integer(), 3.0, "expected a whole number, got 3.0"),
    (Integer(), True, "expected a whole number, got True"),
    (Integer(), None, "expected a whole number, got None"),
    (Integer(min=1), "0", "must be >= 1, got 0"),
    (Integer(min=1, max=10), 11, "must be >= 1 and <= 10, got 11"),
    (Number(), "nan", "expected a finite number, got nan"),
    (Number(), "inf", "expected a finite number"),
    (Number(), "high", "expected a finite number, got 'high'"),
    (Number(), False, "expected a finite number, got False"),
    (Number(min=0), "-0.1", "must be >= 0, got -0.1"),
    (Number(above=0, below=1), 1, "must be > 0 and < 1, got 1"),
    (Number(above=0, below=1), 0, "must be > 0 and < 1, got 0"),
    (Choice(("always", "never")), "Always", "expected one of always, never, got 'Always'"),
    (Text(), 5, "expected a string, got 5"),
    (Text(), ["a"], "expected a string"),
    (Text(non_empty=True), "  ", "must not be empty"),
    (FilePath(), "", "expected a path"),
    (FilePath(), 5, "expected a path, got 5"),
    (Duration(), "15 minutes", "expected a duration like 90s"),
    (Duration(), "-5m", "expected a duration"),
    (Duration(), "1y", "expected a duration"),
    (Duration(), True, "expected a duration"),
    (Duration(min=60), "30s", "must be at least 60s, got '30s'"),
    (ListOf(Text()), "[unclosed", "expected a YAML list"),
    (ListOf(Text()), {"a": 1}, "expected a list"),
    (ListOf(Number()), "1,x", "list item: expected a finite number, got 'x'"),
    (MappingOf(), "[1, 2]", "expected a mapping with string keys"),
    (MappingOf(Text()), {"team": 1}, "['team']: expected a string, got 1"),
    (Scalar(), "[1]", "expected a string, number or boolean, got [1]"),
    (Scalar(), {"a": 1}, "expected a string, number or boolean"),
]


@pytest.mark.parametrize(("kind", "raw", "value"), ACCEPTED)
def test_accepted_values_parse_to_their_type(kind, raw, value):
    parsed = kind.parse(raw)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(("kind", "raw", "reason"), REFUSED)
def test_refused_values_give_a_reason(kind, raw, reason):
    with pytest.raises(ValueError) as err:
        kind.parse(raw)
    assert reason in str(err.value)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (Integer(min=1), "integer >= 1"),
        (Number(above=0, below=1), "number > 0 and < 1"),
        (Duration(min=1), "duration >= 1s"),
        (ListOf(Text()), "list of string"),
        (Choice(("a", "b")), "a | b"),
        (Integer(nullable=True), "integer or null"),
    ],
)
def test_each_kind_describes_itself_for_the_reference_table(kind, text):
    assert kind.describe() == text
