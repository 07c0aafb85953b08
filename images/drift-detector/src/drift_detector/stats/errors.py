"""The one error type the statistics engine raises for bad reference or current data."""

from __future__ import annotations


class DriftInputError(ValueError):
    """Data the engine cannot test; ``str(err)`` is a message fit for an API response.

    ``column`` names the offending column when there is one.
    """

    def __init__(self, message: str, *, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column
