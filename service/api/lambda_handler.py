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
from service.api.origin import OriginGuard, secrets_manager_guard
from service.wiring import Container

Handler = Any


def build_handler(
    container: Container,
    logger: Logger | None = None,
    process_logging: bool = True,
    origin_guard: OriginGuard | None = None,
) -> Handler:
    """`process_logging` routes the standard-library loggers to JSON too; tests keep theirs.

    With `ORIGIN_VERIFY_SECRET_ARN` set (the edge is on), requests that did not come
    through CloudFront get a 403 before the app runs (`service.api.origin`).
    """
    log = logger or build_logger(container.settings.log_level)
    if process_logging:
        configure_process_logging(log)
    asgi = Mangum(create_app(container, logger=log), lifespan="off")
    secret_arn = container.settings.origin_verify_secret_arn
    guard = origin_guard or (secrets_manager_guard(secret_arn) if secret_arn else None)

    # inject_lambda_context adds the function name, cold start and Lambda request id to each line.
    @log.inject_lambda_context(clear_state=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        rejected = guard.rejection(event) if guard is not None else None
        if rejected is not None:
            log.warning("request bypassed the edge", extra={"path": event.get("rawPath")})
            return rejected
        result: dict[str, Any] = asgi(event, context)
        return result

    return handler
