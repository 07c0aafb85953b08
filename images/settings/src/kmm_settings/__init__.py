"""Strict, table-driven settings shared by the three images (see loader.py for the rules)."""

from .kinds import Boolean, Choice, Duration, FilePath, Integer, ListOf, MappingOf, Number, Scalar, Text
from .loader import REQUIRED, Loaded, Setting, SettingError, Table

__all__ = [
    "REQUIRED",
    "Boolean",
    "Choice",
    "Duration",
    "FilePath",
    "Integer",
    "ListOf",
    "Loaded",
    "MappingOf",
    "Number",
    "Scalar",
    "Setting",
    "SettingError",
    "Table",
    "Text",
]
