"""Unauthenticated routes: liveness, readiness and the web page."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files

from aws_lambda_powertools import Logger
from fastapi import APIRouter, Response, status
from fastapi.responses import HTMLResponse

from service.api.security_headers import CSP_HEADER, page_policy
from service.models import HealthResponse, ReadyResponse
from service.wiring import Container

VERSION = "0.1.0"


def ops_router(container: Container, logger: Logger) -> APIRouter:
    router = APIRouter()
    settings = container.settings
    page_html = files("service.api").joinpath("static/index.html").read_text(encoding="utf-8")
    # The fixed headers come from SecurityHeadersMiddleware; the policy is the page's own.
    # The page may also call the sign-in's token endpoint (issue 15), and no other foreign URL.
    sign_in = (settings.auth_token_url,) if settings.auth_token_url else ()
    page_headers = {CSP_HEADER: page_policy(page_html, connect=sign_in)}

    @router.get("/health", tags=["ops"], summary="Liveness: the process answers.")
    def health() -> HealthResponse:
        return HealthResponse(status="ok", environment=settings.environment, version=VERSION)

    @router.get(
        "/ready",
        tags=["ops"],
        summary="Readiness: the search backend and the embedder answer.",
        responses={503: {"model": ReadyResponse, "description": "A dependency is not ready."}},
    )
    def ready(response: Response) -> ReadyResponse:
        checks: dict[str, str] = {}
        probes: tuple[tuple[str, Callable[[], object]], ...] = (
            ("search", container.backend.ping),
            ("embedder", lambda: container.embedder.embed_query("ready")),
        )
        for name, probe in probes:
            try:
                probe()
                checks[name] = "ok"
            except Exception as error:
                logger.warning("readiness check failed", extra={"check": name, "error": type(error).__name__})
                checks[name] = f"failed: {type(error).__name__}"
        ok = all(v == "ok" for v in checks.values())
        if not ok:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return ReadyResponse(status="ready" if ok else "not-ready", checks=checks)

    @router.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers=page_headers)

    return router
