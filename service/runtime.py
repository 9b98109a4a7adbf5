"""Process-wide wiring, built once per process and shared by every entry point.

The Lambda handlers (once per cold start), the local API (uvicorn's factory) and the worker
all take their container from here. It lives outside `handlers/`, so nothing but AWS's entry
points imports from there.
"""

from __future__ import annotations

from functools import lru_cache

from service.ingest.service import IngestService
from service.settings import get_settings
from service.wiring import Container

_installed: list[Container] = []


@lru_cache(maxsize=1)
def _from_environment() -> Container:
    # Init fails naming a missing variable, rather than every request failing after it.
    return Container(get_settings().require_serving())


def container() -> Container:
    """The container `install` put in place, else the one built from the environment."""
    return _installed[-1] if _installed else _from_environment()


def install(replacement: Container | None) -> None:
    """Run the handlers on `replacement` (benchmarks, harnesses); None restores the default."""
    _installed.clear()
    if replacement is not None:
        _installed.append(replacement)


def ingest_service() -> IngestService:
    return container().ingest_service
