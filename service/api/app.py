"""The FastAPI app factory. Seams are arguments: tests pass a `Container` built from fakes,
their own keys, clock and logger.

Layers, outermost first: request context (request id, JSON access log, body limit, 500s),
security headers (service/api/security_headers.py), CORS, then the routes. The protected
routes depend on the API key, then the rate limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.api.auth import Authenticator, load_api_keys
from service.api.auth_wiring import build_authenticator
from service.api.docs import docs_router
from service.api.errors import install_error_handlers
from service.api.guard import Guard
from service.api.logs import build_logger
from service.api.middleware import RequestContextMiddleware
from service.api.ratelimit import TokenBucketLimiter
from service.api.routes_auth import auth_router
from service.api.routes_ops import VERSION, ops_router
from service.api.routes_rag import fix_stream_schema, rag_router
from service.api.security_headers import SecurityHeadersMiddleware
from service.contract import API_KEY_HEADER, AUTHORIZATION_HEADER, REQUEST_ID_HEADER
from service.wiring import Container

DESCRIPTION = """Retrieval-augmented answers with citations over your documents.

Every route except /health, /ready, /auth/config, /docs, /openapi.json, the web page (/) and its
sign-in script (and, on the local platform only, its development issuer under /dev-issuer/)
needs an API key in the `x-api-key` header, or a signed-in user's `Authorization: Bearer` token
when sign-in is configured (docs/access-control.md). Every response carries an `x-request-id` header.
See docs/api.md for streaming, conversation history, errors and limits."""


def create_app(
    container: Container,
    api_keys: tuple[str, ...] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    logger: Logger | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """`api_keys` are the bootstrap keys (default: from the settings); `authenticator` replaces
    the whole credential check (tests pass one with their own key store, pepper and JWKS)."""
    settings = container.settings
    log = logger or build_logger(settings.log_level)
    if authenticator is None:
        bootstrap = api_keys if api_keys is not None else load_api_keys(settings)
        authenticator = build_authenticator(settings, bootstrap)
    guard = Guard(authenticator, TokenBucketLimiter(settings.rate_limit_per_minute, clock=clock))

    # /docs comes from the bundled Swagger UI (service/api/docs.py), never from a CDN.
    app = FastAPI(
        title="rag-platform API", version=VERSION, description=DESCRIPTION, docs_url=None, redoc_url=None
    )
    install_error_handlers(app)
    app.include_router(docs_router(app.title, app.openapi_url or "/openapi.json"))
    app.include_router(ops_router(container, log))
    app.include_router(auth_router(settings))
    app.include_router(rag_router(container, guard, log))
    # add_middleware wraps what is there, so the last one added is the outermost.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["content-type", API_KEY_HEADER, AUTHORIZATION_HEADER, REQUEST_ID_HEADER],
        expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, logger=log, max_body_bytes=settings.max_body_bytes)
    _honest_openapi(app)
    return app


def _honest_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = fix_stream_schema(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
