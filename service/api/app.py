"""The FastAPI app factory. Seams are arguments: tests pass a `Container` built from fakes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from service.api.auth import ApiKeyAuth, load_api_keys
from service.contract import REQUEST_ID_HEADER
from service.ingest.ledger import Status
from service.models import (
    DocumentStatus,
    HealthResponse,
    QueryRequest,
    QueryResponse,
    ReadyResponse,
    SearchRequest,
    SearchResponse,
)
from service.wiring import Container

VERSION = "0.1.0"
log = logging.getLogger("service.api")


def _too_long(field: str, limit: int) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "type": "string_too_long",
                "loc": ("body", field),
                "msg": f"{field} is too long: at most {limit} characters are allowed",
                "input": None,
                "ctx": {"max_length": limit},
            }
        ]
    )


def create_app(container: Container, api_keys: tuple[str, ...] | None = None) -> FastAPI:
    settings = container.settings
    auth = ApiKeyAuth(api_keys if api_keys is not None else load_api_keys(settings))
    app = FastAPI(
        title="rag-platform API",
        version=VERSION,
        description="Retrieval-augmented answers with citations over your documents.",
    )
    _install_middleware(app)
    protected = [Depends(auth)]

    @app.get("/health", tags=["ops"])
    def health() -> HealthResponse:
        return HealthResponse(status="ok", environment=settings.environment.value, version=VERSION)

    @app.get("/ready", tags=["ops"], responses={503: {"model": ReadyResponse}})
    def ready(response: Response) -> ReadyResponse:
        checks: dict[str, str] = {}
        for name, probe in (
            ("search", lambda: container.backend.ping()),
            ("embedder", _embedder_probe(container)),
        ):
            try:
                probe()
                checks[name] = "ok"
            except Exception as error:  # noqa: BLE001 - readiness reports, it never raises
                log.warning("readiness check %s failed: %s", name, error)
                checks[name] = f"failed: {type(error).__name__}"
        ok = all(v == "ok" for v in checks.values())
        if not ok:
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return ReadyResponse(status="ready" if ok else "not-ready", checks=checks)

    @app.post("/v1/query", tags=["rag"], dependencies=protected)
    async def query(body: QueryRequest) -> QueryResponse:
        if len(body.question) > settings.max_question_chars:
            raise _too_long("question", settings.max_question_chars)
        return await run_in_threadpool(container.query_service.answer, body)

    @app.post("/v1/search", tags=["rag"], dependencies=protected)
    async def search(body: SearchRequest) -> SearchResponse:
        if len(body.query) > settings.max_question_chars:
            raise _too_long("query", settings.max_question_chars)
        retrieval = await run_in_threadpool(
            container.retriever.search, body.query, body.top_k, body.mode, body.filters
        )
        return SearchResponse(hits=retrieval.hits, mode=retrieval.mode, timings_ms=retrieval.timings_ms)

    @app.get("/v1/documents", tags=["documents"], dependencies=protected)
    def documents(
        state: Annotated[Status | None, Query(description="Only documents in this state.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[DocumentStatus]:
        records = container.ledger.list(state, limit)
        return [
            DocumentStatus(
                document_id=r.document_id,
                status=r.status.value,
                source=r.source,
                chunks=len(r.chunk_ids),
                last_error=r.last_error,
                updated_at=r.updated_at,
            )
            for r in records
        ]

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(files("service.api").joinpath("static/index.html").read_text(encoding="utf-8"))

    return app


def _embedder_probe(container: Container) -> Callable[[], object]:
    return lambda: container.embedder.embed_query("ready")


def _install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        request.state.request_id = rid
        try:
            response = await call_next(request)
        except Exception:
            # Log the trace server-side; the client only ever sees a request id.
            log.exception("unhandled error", extra={"request_id": rid})
            response = JSONResponse(
                {"detail": "internal error", "request_id": rid},
                status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
            )
        response.headers[REQUEST_ID_HEADER] = rid
        return response
