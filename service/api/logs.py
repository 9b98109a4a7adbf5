"""Structured JSON logs (Powertools Logger) with the request id on every line.

The request id travels in a `ContextVar` through Powertools' `thread_safe_append_keys`
(https://docs.powertools.aws.dev/lambda/python/latest/core/logger/#thread-safe-methods):
`logger.append_keys` is process-global and would mix the ids of concurrent requests,
while a context variable follows each request into the thread pool that runs the sync
work (anyio copies the context into worker threads) and into the SSE generator.
"""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from typing import IO

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from service.contract import Env

REQUEST_ID_KEY = "request_id"
DEFAULT_SERVICE = "api"
# Standard-library loggers whose lines must come out as JSON too: the service's own
# modules, uvicorn's server messages (local platform) and Mangum's (Lambda).
_FOREIGN_LOGGERS = frozenset({"service", "pipelines", "uvicorn", "mangum"})

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(logger: Logger, request_id: str) -> None:
    _request_id.set(request_id)
    logger.thread_safe_append_keys(**{REQUEST_ID_KEY: request_id})


def unbind_request_id(logger: Logger) -> None:
    logger.thread_safe_remove_keys([REQUEST_ID_KEY])
    _request_id.set(None)


def build_logger(level: str = "INFO", service: str | None = None, stream: IO[str] | None = None) -> Logger:
    """A Powertools Logger; the service name comes from POWERTOOLS_SERVICE_NAME (infra sets `api`)."""
    name = service or os.environ.get(Env.POWERTOOLS_SERVICE_NAME.value) or DEFAULT_SERVICE
    return Logger(service=name, level=level, stream=stream, use_rfc3339=True, utc=True)


def configure_process_logging(logger: Logger) -> None:
    """Send every registered standard-library logger of interest through the JSON handler.

    uvicorn's access log is switched off: the request middleware writes one JSON access
    line per request, with the request id, instead.
    """
    for name in _FOREIGN_LOGGERS:
        logging.getLogger(name)  # register it, so the copy below finds it
    copy_config_to_registered_loggers(source_logger=logger, include=set(_FOREIGN_LOGGERS))
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
