"""Error bodies and handlers: every error is JSON with a request id, and never a stack trace."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from service.api.logs import current_request_id
from service.embed.protocol import EmbeddingError
from service.generate.protocol import GenerationError
from service.search.protocol import SearchBackendError

# Seconds a client should wait after a 503 from a throttled or busy dependency.
RETRY_AFTER_BUSY_SECONDS = 2


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong, for a person to read.")
    request_id: str | None = Field(
        None, description="Quote it when reporting a problem; it is in every log line."
    )


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='Where the bad value is, e.g. ["body", "question"].')
    field: str = Field(description="The offending field, dotted, e.g. `filters.tags`.")
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[FieldError]
    request_id: str | None = None


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(detail=detail, request_id=current_request_id())
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def error_response(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return _error(status_code, detail, headers)


def too_long(field: str, limit: int) -> RequestValidationError:
    """The over-long question error: a 422 naming the field and the limit."""
    return RequestValidationError(
        [
            {
                "type": "string_too_long",
                "loc": ("body", field),
                "msg": f"{field} is too long: at most {limit} characters are allowed",
            }
        ]
    )


def _field_error(item: dict[str, Any]) -> FieldError:
    loc = [part if isinstance(part, int) else str(part) for part in item.get("loc", ())]
    # Drop the "body"/"query" prefix so the field reads as the client wrote it.
    named = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return FieldError(
        loc=loc, field=".".join(named), msg=str(item.get("msg", "")), type=str(item.get("type", ""))
    )


async def _validation(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    # Pydantic's `input` is left out on purpose: it would echo an over-long body back.
    body = ValidationErrorResponse(
        detail=[_field_error(dict(e)) for e in error.errors()], request_id=current_request_id()
    )
    return JSONResponse(body.model_dump(), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _http(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return _error(error.status_code, str(error.detail), dict(error.headers or {}))


async def _dependency(_: Request, error: Exception) -> JSONResponse:
    """A throttled or unreachable model or search engine: 503 with Retry-After when a retry may work."""
    if getattr(error, "transient", False):
        return _error(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "a dependency is busy or unavailable; retry shortly",
            {"Retry-After": str(RETRY_AFTER_BUSY_SECONDS)},
        )
    return _error(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    for dependency_error in (EmbeddingError, GenerationError, SearchBackendError):
        app.add_exception_handler(dependency_error, _dependency)
    # Starlette's HTTPException: FastAPI's subclasses it, and routing raises it for 404 and 405.
    app.add_exception_handler(HTTPException, _http)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations for the error statuses a route can return."""
    described = {
        400: "The body could not be read, e.g. it is not UTF-8.",
        401: "Missing or invalid API key in the x-api-key header.",
        403: "The key may not do this in the workspace asked for (`detail` is `forbidden`, nothing more).",
        413: "The request body is larger than MAX_BODY_BYTES.",
        422: "A field failed validation; `detail` names each one.",
        429: "Too many requests for this API key; wait `Retry-After` seconds.",
        500: "Internal error; the body carries the request id, never a trace.",
        503: "A dependency (model or search engine) is busy; retry after `Retry-After` seconds.",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model: type[BaseModel] = ValidationErrorResponse if code == 422 else ErrorResponse
        entry: dict[str, Any] = {"model": model, "description": described[code]}
        if code in (429, 503):
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                }
            }
        out[code] = entry
    return out
