"""The API behind Mangum, for Lambda (API Gateway HTTP API, payload format 2.0).

Mangum buffers the response: through API Gateway a streamed answer arrives in one piece,
with every event in order. Incremental delivery in the cloud would need Lambda response
streaming, which Mangum does not implement (docs/api.md, "Streaming").
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from mangum import Mangum

from service.api.app import create_app
from service.api.logs import build_logger, configure_process_logging
from service.wiring import Container

Handler = Any


def build_handler(
    container: Container, logger: Logger | None = None, process_logging: bool = True
) -> Handler:
    """`process_logging` routes the standard-library loggers to JSON too; tests keep theirs."""
    log = logger or build_logger(container.settings.log_level)
    if process_logging:
        configure_process_logging(log)
    asgi = Mangum(create_app(container, logger=log), lifespan="off")

    # inject_lambda_context adds the function name, cold start and Lambda request id to each line.
    @log.inject_lambda_context(clear_state=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        result: dict[str, Any] = asgi(event, context)
        return result

    return handler
