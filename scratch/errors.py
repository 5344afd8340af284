"""The spec's error type: a leaf module, so every part of scratch can raise it without importing the spec."""
from __future__ import annotations


class SpecError(ValueError):
    """A spec (or the data that goes with it) is invalid. The message starts with the field's path."""

    def __init__(self, field_path: str, message: str):
        self.field = field_path
        super().__init__(f"{field_path}: {message}" if field_path else message)
