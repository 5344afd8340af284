"""The spec's error type: a leaf module, so every part of scratch can raise it without importing the spec."""
from __future__ import annotations

# A message is one line a person reads: a hostile value (10,000 digits, a key of a megabyte) is cut.
MAX_FIELD_CHARS = 120
MAX_MESSAGE_CHARS = 400


def shown(value, limit: int = 60) -> str:
    """repr(value), cut to ``limit`` characters with its length named: what a message may echo."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int beyond the str-conversion limit, a deep list
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit - 20]}... ({len(text)} chars)"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line, whatever the value held
    return text if len(text) <= limit else text[:limit - 3] + "..."


class SpecError(ValueError):
    """A spec (or the data that goes with it) is invalid. The message starts with the field's path."""

    def __init__(self, field_path: str, message: str):
        self.field = _cut(field_path, MAX_FIELD_CHARS)
        message = _cut(message, MAX_MESSAGE_CHARS)
        super().__init__(f"{self.field}: {message}" if self.field else message)
