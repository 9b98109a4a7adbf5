"""Ingestion failures, split by what a retry can do about them."""

from __future__ import annotations


class PermanentIngestError(Exception):
    """Retrying cannot help (unparseable, unsupported type, too large): send to the DLQ with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientIngestError(Exception):
    """A retry may succeed (throttling, 429/5xx, timeouts)."""
