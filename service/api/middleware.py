"""The outermost request layer, as plain ASGI (no BaseHTTPMiddleware: it costs a task and a
queue per request and buffers streaming bodies).

Per request it: picks the request id (the client's `x-request-id` if well-formed, else API
Gateway's, else a new one), binds it to every log line and echoes it in the response
header; caps the body at MAX_BODY_BYTES (413); turns any unhandled exception into a JSON
500 that carries the request id and no trace; writes one JSON access line.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import HTTPException, status
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response
from service.api.logs import bind_request_id, unbind_request_id
from service.contract import REQUEST_ID_HEADER

# Client-supplied ids are echoed into logs and headers: accept only a safe, short alphabet.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        # An HTTPException, so FastAPI's body reader re-raises it instead of turning it into a 400.
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE, f"request body is larger than the {limit}-byte limit"
        )


def choose_request_id(supplied: str | None, scope: Scope) -> str:
    if supplied and _VALID_REQUEST_ID.match(supplied):
        return supplied
    # Under Mangum the API Gateway event is in the scope; its id also appears in the access logs.
    event: Any = scope.get("aws.event") or {}
    gateway_id = event.get("requestContext", {}).get("requestId") if isinstance(event, dict) else None
    if isinstance(gateway_id, str) and _VALID_REQUEST_ID.match(gateway_id):
        return gateway_id
    return uuid.uuid4().hex


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError(limit)
        return message

    return wrapped


def _declared_too_large(headers: Headers, limit: int) -> bool:
    length = headers.get("content-length", "")
    return length.isdigit() and int(length) > limit


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, logger: Logger, max_body_bytes: int) -> None:
        self.app = app
        self.logger = logger
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = choose_request_id(headers.get(REQUEST_ID_HEADER), scope)
        bind_request_id(self.logger, request_id)
        started = time.perf_counter()
        sent: dict[str, int] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            if _declared_too_large(headers, self.max_body_bytes):
                raise BodyTooLargeError(self.max_body_bytes)
            await self.app(scope, _limited(receive, self.max_body_bytes), send_with_id)
        except BodyTooLargeError as error:
            if "status" not in sent:
                await error_response(error.status_code, str(error.detail))(scope, receive, send_with_id)
        except Exception:
            # The trace goes to the log, with the request id; the client gets the id only.
            self.logger.exception("unhandled error")
            if "status" not in sent:
                await error_response(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error")(
                    scope, receive, send_with_id
                )
        finally:
            self.logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": sent.get("status", 0),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            unbind_request_id(self.logger)
