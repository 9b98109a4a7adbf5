"""Process-wide wiring for the Lambda handlers, built once per cold start."""

from __future__ import annotations

from functools import lru_cache

from service.ingest.service import IngestService
from service.settings import get_settings
from service.wiring import Container


@lru_cache(maxsize=1)
def container() -> Container:
    return Container(get_settings())


def ingest_service() -> IngestService:
    return container().ingest_service
