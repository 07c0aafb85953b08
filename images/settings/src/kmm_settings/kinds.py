"""Value kinds of the settings table: each one turns a raw value into a typed one or refuses it.

A raw value is text when it comes from a flag or an environment variable, and whatever YAML made of
it when it comes from the config file. Every kind accepts both and is strict about both: a word that is
not on the boolean list, a float where a whole number belongs, a number out of bounds or a unicode
digit is refused with a reason (ValueError), never coerced to something else.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]+")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _refuse(expected: str, value: Any) -> ValueError:
    return ValueError(f"expected {expected}, got {value!r}")


@dataclass(frozen=True)
class Text:
    """A string. YAML numbers are refused (quote them) unless `numbers` says they are fine as text."""

    non_empty: bool = False
    numbers: bool = False

    def parse(self, value: Any) -> str:
        if self.numbers and isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _refuse("a string", value)
        if self.non_empty and not value.strip():
            raise ValueError("must not be empty")
        return value

    def describe(self) -> str:
        return "non-empty string" if self.non_empty else "string"


@dataclass(frozen=True)
class Boolean:
    """true/false, yes/no, on/off, 1/0 (any case); every other word is refused."""

    def parse(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, str | int) else None
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise _refuse("one of " + "/".join(TRUE_WORDS + FALSE_WORDS), value)

    def describe(self) -> str:
        return "boolean"


def _bounds_text(low: Any, high: Any, low_open: bool = False, high_open: bool = False) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Integer:
    """A whole number in ASCII digits within [min, max]; `nullable` also takes null."""

    min: int | None = None
    max: int | None = None
    nullable: bool = False

    def parse(self, value: Any) -> int | None:
        if self.nullable and (value is None or value == "null"):
            return None
        if isinstance(value, str) and _ASCII_INTEGER.fullmatch(value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _refuse("a whole number", value)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ValueError(f"must be {_bounds_text(self.min, self.max)}, got {value}")
        return value

    def describe(self) -> str:
        bounds = _bounds_text(self.min, self.max)
        return "integer" + (f" {bounds}" if bounds else "") + (" or null" if self.nullable else "")


@dataclass(frozen=True)
class Number:
    """A finite number; `min`/`max` are inclusive bounds, `above`/`below` exclusive ones."""

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None

    def parse(self, value: Any) -> float:
        if isinstance(value, str) and value.strip().isascii():
            with contextlib.suppress(ValueError):
                value = float(value.strip())
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _refuse("a finite number", value)
        value = float(value)
        low_ok = (self.min is None or value >= self.min) and (self.above is None or value > self.above)
        high_ok = (self.max is None or value <= self.max) and (self.below is None or value < self.below)
        if not (low_ok and high_ok):
            raise ValueError(f"must be {self._bounds()}, got {value:g}")
        return value

    def _bounds(self) -> str:
        low, low_open = (self.above, True) if self.above is not None else (self.min, False)
        high, high_open = (self.below, True) if self.below is not None else (self.max, False)
        return _bounds_text(low, high, low_open, high_open)

    def describe(self) -> str:
        return "number" + (f" {self._bounds()}" if self._bounds() else "")


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words, exactly as written."""

    options: tuple[str, ...]

    def parse(self, value: Any) -> str:
        if value not in self.options:
            raise _refuse("one of " + ", ".join(self.options), value)
        return value

    def describe(self) -> str:
        return " | ".join(self.options)


@dataclass(frozen=True)
class FilePath:
    """A filesystem path (not checked for existence here); `optional` turns an empty one into None."""

    optional: bool = False

    def parse(self, value: Any) -> Path | None:
        if self.optional and value in (None, ""):
            return None
        if isinstance(value, Path):  # a default written as a Path
            return value
        if not isinstance(value, str) or not value:
            raise _refuse("a path", value)
        return Path(value)

    def describe(self) -> str:
        return "path"


@dataclass(frozen=True)
class Duration:
    """'90s', '15m', '1h30m', '2d', '1w' or a number of seconds; parsed to seconds (float)."""

    min: float = 0.0

    def parse(self, value: Any) -> float:
        seconds = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str):
            raw = value.strip()
            if re.fullmatch(r"[0-9]+(\.[0-9]+)?", raw):
                seconds = float(raw)
            elif raw and _DURATION_PART.sub("", raw) == "":
                seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(raw))
        if seconds is None or not math.isfinite(seconds):
            raise _refuse("a duration like 90s, 15m, 6h or 1h30m", value)
        if seconds < self.min:
            raise ValueError(f"must be at least {self.min:g}s, got {value!r}")
        return seconds

    def describe(self) -> str:
        return "duration" + (f" >= {self.min:g}s" if self.min else "")


def _flow_yaml(text: str, container: str) -> Any:
    """A list or mapping written as YAML flow text on a flag or in the environment."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise _refuse(f"a YAML {container}", text) from None


@dataclass(frozen=True)
class ListOf:
    """A list of `item`; as text, comma-separated words or a YAML flow list ([a, b])."""

    item: Any

    def parse(self, value: Any) -> list[Any]:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = _flow_yaml(text, "list")
            else:
                value = [part.strip() for part in text.split(",")] if text else []
        if not isinstance(value, list):
            raise _refuse("a list", value)
        try:
            return [self.item.parse(item) for item in value]
        except ValueError as err:
            raise ValueError(f"list item: {err}") from None

    def describe(self) -> str:
        return f"list of {self.item.describe()}"


@dataclass(frozen=True)
class MappingOf:
    """A mapping of string keys to `value` (None: anything, passed on as it is); as text, YAML flow."""

    value: Any = None

    def parse(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = _flow_yaml(value, "mapping") if value.strip() else {}
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise _refuse("a mapping with string keys", value)
        if self.value is None:
            return value
        parsed = {}
        for key, item in value.items():
            try:
                parsed[key] = self.value.parse(item)
            except ValueError as err:
                raise ValueError(f"[{key!r}]: {err}") from None
        return parsed

    def describe(self) -> str:
        return "mapping" + (f" of {self.value.describe()}" if self.value is not None else "")


@dataclass(frozen=True)
class Scalar:
    """A string, number or boolean; text is read as YAML, so `1` is the number 1 and `"1"` the string."""

    def parse(self, value: Any) -> Any:
        if isinstance(value, str):
            with contextlib.suppress(yaml.YAMLError):
                value = yaml.safe_load(value) if value.strip() else value
        if not isinstance(value, str | int | float | bool):
            raise _refuse("a string, number or boolean", value)
        return value

    def describe(self) -> str:
        return "scalar"
